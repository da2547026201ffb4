// GSS acceptor for winrm-sim (see acceptor.h).
#include "acceptor.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/base64.h"
#include "common/strings.h"
#include "winrm/message_encryption.h"

namespace sim {

namespace {
constexpr std::size_t kMaxConnections = 4096;  // contexts of vanished connections are evicted
}

struct NegotiateAcceptor::ConnectionState {
  std::mutex mutex;  // one request at a time per connection anyway
  winrm::gss::Context ctx;
  bool established = false;
  bool ntlm = false;
  std::string protocol{winrm::gss::kSpnegoEncrypted};
  std::string client;
};

std::optional<CbtMode> parse_cbt_mode(std::string_view text) {
  if (text == "none") return CbtMode::kNone;
  if (text == "relaxed") return CbtMode::kRelaxed;
  if (text == "strict") return CbtMode::kStrict;
  return std::nullopt;
}

std::optional<std::string> tls_end_point_from_pem(const std::string& cert_path) {
  FILE* file = std::fopen(cert_path.c_str(), "r");
  if (file == nullptr) return std::nullopt;
  X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (cert == nullptr) return std::nullopt;
  // RFC 5929 4.1: the certificate's signature hash, SHA-256 for MD5/SHA-1/unknown.
  int md_nid = NID_undef, pkey_nid = NID_undef;
  const EVP_MD* md = EVP_sha256();
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pkey_nid) &&
      md_nid != NID_undef && md_nid != NID_md5 && md_nid != NID_sha1) {
    if (const EVP_MD* own = EVP_get_digestbynid(md_nid)) md = own;
  }
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = X509_digest(cert, md, hash, &len) == 1;
  X509_free(cert);
  if (!ok) return std::nullopt;
  return "tls-server-end-point:" + std::string(reinterpret_cast<char*>(hash), len);
}

std::string ntlm_user_file_text(const std::vector<std::pair<std::string, std::string>>& users,
                                const std::string& domain) {
  auto unfit = [](std::string_view text) {
    return text.find_first_of(":\r\n") != std::string_view::npos;
  };
  if (unfit(domain)) throw std::invalid_argument("NTLM domain must not contain ':' or line breaks");
  std::string text;
  for (const auto& [user, password] : users) {
    // gss-ntlmssp splits lines at ':' (a third ':' switches to the smbpasswd format)
    // and reads at most 1023 bytes per line.
    if (user.empty() || unfit(user))
      throw std::invalid_argument("NTLM user '" + user + "': empty or contains ':'/line break");
    if (unfit(password) || user.size() + password.size() + domain.size() > 1000)
      throw std::invalid_argument("NTLM user '" + user +
                                  "': password too long or contains ':'/line break");
    for (const std::string& account_domain : {domain, std::string(".")})
      text += account_domain + ":" + user + ":" + password + "\n";
  }
  return text;
}

namespace {

// An anonymous, owner-only file holding the NTLM accounts. Returns the fd.
int write_ntlm_user_file(const std::string& text) {
  int fd = memfd_create("winrm-sim-ntlm-users", MFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("negotiate: memfd_create: ") + strerror(errno));
  std::size_t written = 0;
  bool ok = fchmod(fd, S_IRUSR | S_IWUSR) == 0;
  while (ok && written < text.size()) {
    ssize_t n = write(fd, text.data() + written, text.size() - written);
    ok = n > 0;
    if (ok) written += static_cast<std::size_t>(n);
  }
  if (!ok) {
    close(fd);
    throw std::runtime_error("negotiate: cannot write the NTLM user file");
  }
  return fd;
}

// An NTLM acceptor credential whose user file is `path` (gss-ntlmssp's
// "ntlmssp_keyfile" cred store key, honoured for server names).
gss_cred_id_t acquire_ntlm_acceptor(const std::string& path) {
  // An empty host, as gss-ntlmssp's default acceptor has: a named one goes into the
  // CHALLENGE and gss-ntlmssp initiators refuse it unless it matches their target
  // (virtual hosts share this acceptor).
  const std::string service = "@";
  gss_buffer_desc name_buffer{service.size(), const_cast<char*>(service.data())};
  gss_name_t name = GSS_C_NO_NAME;
  OM_uint32 minor = 0, ignored = 0;
  OM_uint32 major = gss_import_name(&minor, &name_buffer, GSS_C_NT_HOSTBASED_SERVICE, &name);
  if (GSS_ERROR(major))
    throw std::runtime_error("negotiate: " + winrm::gss::status_message(major, minor));
  gss_key_value_element_desc elements[] = {{"ntlmssp_keyfile", path.c_str()}};
  gss_key_value_set_desc store{1, elements};
  gss_OID_set_desc mechs{1, winrm::gss::ntlmssp_mech()};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &store, &cred,
                                nullptr, nullptr);
  gss_release_name(&ignored, &name);
  if (GSS_ERROR(major)) {
    throw std::runtime_error("negotiate: NTLM acceptor (gss-ntlmssp installed?): " +
                             winrm::gss::status_message(major, minor));
  }
  return cred;
}

}  // namespace

NegotiateAcceptor::NegotiateAcceptor(NegotiateSettings settings,
                                     std::optional<std::string> tls_end_point)
    : settings_(std::move(settings)), tls_end_point_(std::move(tls_end_point)) {
  if (settings_.ntlm) {
    ntlm_users_fd_ =
        write_ntlm_user_file(ntlm_user_file_text(settings_.ntlm_users, settings_.ntlm_domain));
    try {
      ntlm_cred_ = std::make_unique<winrm::gss::Credential>(
          acquire_ntlm_acceptor("/proc/self/fd/" + std::to_string(ntlm_users_fd_)));
    } catch (...) {
      close(ntlm_users_fd_);
      throw;
    }
    settings_.ntlm_users.clear();          // the passwords live in the file only
    if (settings_.keytab.empty()) return;  // NTLM only
  }
  std::string keytab = settings_.keytab;
  if (!keytab.empty() && keytab.find(':') == std::string::npos) keytab = "FILE:" + keytab;
  gss_key_value_element_desc elements[] = {{"keytab", keytab.c_str()}, {"rcache", "none:"}};
  gss_key_value_set_desc store{2, elements};
  // SPNEGO and raw krb5 tokens (pykerberos/requests-kerberos send raw krb5 in
  // "Negotiate", which Windows accepts).
  gss_OID_desc mech_list[2] = {*winrm::gss::spnego_mech(), *winrm::gss::krb5_mech()};
  gss_OID_set_desc mechs{2, mech_list};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                          GSS_C_ACCEPT, &store, &cred, nullptr, nullptr);
  if (GSS_ERROR(major)) {
    if (ntlm_users_fd_ >= 0) close(ntlm_users_fd_);  // no destructor after a throw
    throw std::runtime_error("negotiate: cannot use keytab " + settings_.keytab + ": " +
                             winrm::gss::status_message(major, minor));
  }
  keytab_cred_ = std::make_unique<winrm::gss::Credential>(cred);
}

NegotiateAcceptor::~NegotiateAcceptor() {
  connections_.clear();
  ntlm_cred_.reset();
  if (ntlm_users_fd_ >= 0) close(ntlm_users_fd_);
}

std::shared_ptr<NegotiateAcceptor::ConnectionState> NegotiateAcceptor::state(
    const std::string& connection, bool create) {
  std::lock_guard lock(mutex_);
  auto it = connections_.find(connection);
  if (it != connections_.end()) return it->second;
  if (!create) return nullptr;
  if (connections_.size() >= kMaxConnections) connections_.erase(connections_.begin());
  auto fresh = std::make_shared<ConnectionState>();
  connections_.emplace(connection, fresh);
  return fresh;
}

void NegotiateAcceptor::drop(const std::string& connection) {
  std::lock_guard lock(mutex_);
  connections_.erase(connection);
}

bool NegotiateAcceptor::authenticated(const std::string& connection) {
  auto conn = state(connection, false);
  if (!conn) return false;
  std::lock_guard lock(conn->mutex);
  return conn->established;
}

NegotiateAcceptor::AuthResult NegotiateAcceptor::accept(const std::string& connection,
                                                        std::string_view authorization) {
  AuthResult result;
  std::string scheme;
  for (std::string_view candidate : {"Negotiate", "Kerberos"}) {
    if (authorization.size() > candidate.size() + 1 &&
        strncasecmp(authorization.data(), candidate.data(), candidate.size()) == 0 &&
        authorization[candidate.size()] == ' ') {
      scheme = std::string(candidate);
    }
  }
  auto token = scheme.empty()
                   ? std::nullopt
                   : common::base64_decode(common::trim(authorization.substr(scheme.size() + 1)));
  if (!token || token->empty()) {
    counters_.rejected++;
    result.reason = "no Negotiate token";
    return result;
  }
  auto conn = state(connection, true);
  std::lock_guard lock(conn->mutex);
  const bool raw_ntlm = token->starts_with(std::string_view("NTLMSSP\0", 8));
  // An initial token (GSS [APPLICATION 0] or NTLM NEGOTIATE) or a token on an
  // authenticated connection starts a new handshake.
  const bool initial = static_cast<unsigned char>((*token)[0]) == 0x60 ||
                       (raw_ntlm && token->size() >= 12 && (*token)[8] == 1);
  if (!raw_ntlm && !keytab_cred_) {
    counters_.rejected++;
    result.reason = "Kerberos is not configured (no keytab)";
    return result;
  }
  if (conn->established || initial) {
    conn->ctx.reset();
    conn->established = false;
  }
  std::optional<winrm::gss::ChannelBindings> bindings;
  if (tls_end_point_ && settings_.cbt != CbtMode::kNone) bindings.emplace(*tls_end_point_);
  gss_buffer_desc input{token->size(), token->data()};
  gss_buffer_desc output = GSS_C_EMPTY_BUFFER;
  gss_name_t client = GSS_C_NO_NAME;
  gss_OID mech = GSS_C_NO_OID;
  OM_uint32 ret_flags = 0, minor = 0;
  // Raw NTLMSSP (no SPNEGO wrapper) goes to the NTLM credential with the configured
  // accounts, else to gss-ntlmssp's default one (NTLM_USER_FILE).
  gss_cred_id_t cred = keytab_cred_ ? keytab_cred_->get() : GSS_C_NO_CREDENTIAL;
  if (raw_ntlm) cred = ntlm_cred_ ? ntlm_cred_->get() : GSS_C_NO_CREDENTIAL;
  OM_uint32 major = gss_accept_sec_context(&minor, conn->ctx.ptr(), cred, &input,
                                           bindings ? bindings->get() : GSS_C_NO_CHANNEL_BINDINGS,
                                           &client, &mech, &output, &ret_flags, nullptr, nullptr);
  std::string out_token(static_cast<const char*>(output.value), output.length);
  OM_uint32 ignored = 0;
  gss_release_buffer(&ignored, &output);
  if (!out_token.empty()) result.www_authenticate = scheme + " " + common::base64_encode(out_token);
  if (GSS_ERROR(major)) {
    if (client != GSS_C_NO_NAME) gss_release_name(&ignored, &client);
    conn->ctx.reset();
    counters_.rejected++;
    result.kind = AuthResult::Kind::kRejected;
    result.reason = winrm::gss::status_message(major, minor);
    result.www_authenticate.clear();
    return result;
  }
  if (major & GSS_S_CONTINUE_NEEDED) {
    if (client != GSS_C_NO_NAME) gss_release_name(&ignored, &client);
    result.kind = AuthResult::Kind::kContinue;
    return result;
  }
  // Complete.
  if (client != GSS_C_NO_NAME) {
    gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
    if (!GSS_ERROR(gss_display_name(&ignored, client, &name, nullptr))) {
      result.client.assign(static_cast<const char*>(name.value), name.length);
      gss_release_buffer(&ignored, &name);
    }
    gss_release_name(&ignored, &client);
  }
  if (tls_end_point_ && settings_.cbt == CbtMode::kStrict &&
      !(ret_flags & GSS_C_CHANNEL_BOUND_FLAG)) {
    conn->ctx.reset();
    counters_.rejected++;
    result.kind = AuthResult::Kind::kRejected;
    result.reason = "channel binding required (CbtHardeningLevel=Strict)";
    result.www_authenticate.clear();
    return result;
  }
  conn->established = true;
  conn->ntlm =
      raw_ntlm ||
      (mech != GSS_C_NO_OID && mech->length == winrm::gss::ntlmssp_mech()->length &&
       std::memcmp(mech->elements, winrm::gss::ntlmssp_mech()->elements, mech->length) == 0);
  conn->protocol = scheme == "Kerberos" ? std::string(winrm::gss::kKerberosEncrypted)
                                        : std::string(winrm::gss::kSpnegoEncrypted);
  conn->client = result.client;
  counters_.handshakes++;
  result.kind = AuthResult::Kind::kAccepted;
  return result;
}

NegotiateAcceptor::Decoded NegotiateAcceptor::decode_request(const std::string& connection,
                                                             std::string_view content_type,
                                                             std::string_view body) {
  Decoded decoded;
  if (winrm::gss::is_encrypted_content_type(content_type)) {
    auto conn = state(connection, false);
    if (!conn) {
      decoded.status = 401;
      decoded.reason = "encrypted body on an unauthenticated connection";
      return decoded;
    }
    std::lock_guard lock(conn->mutex);
    if (!conn->established) {
      decoded.status = 401;
      decoded.reason = "encrypted body on an unauthenticated connection";
      return decoded;
    }
    auto plain = winrm::gss::decrypt_body(conn->ctx.get(), conn->ntlm, body);
    if (!plain) {
      decoded.status = 400;
      decoded.reason = plain.error().message;
      return decoded;
    }
    counters_.encrypted_requests++;
    decoded.soap = std::move(*plain);
    decoded.encrypted = true;
    return decoded;
  }
  if (!tls_end_point_ && settings_.require_encryption_on_http && !body.empty()) {
    // Windows (AllowUnencrypted=false): HTTP 500, empty body, event "unencrypted message".
    counters_.plaintext_rejected++;
    decoded.status = 500;
    decoded.reason = "unencrypted message refused (AllowUnencrypted=false)";
    return decoded;
  }
  decoded.soap = std::string(body);
  return decoded;
}

std::pair<std::string, std::string> NegotiateAcceptor::encode_response(
    const std::string& connection, std::string soap, bool encrypted) {
  const std::string soap_type = "application/soap+xml;charset=UTF-8";
  if (!encrypted || soap.empty()) return {soap_type, std::move(soap)};
  auto conn = state(connection, false);
  if (!conn) return {soap_type, std::move(soap)};
  std::lock_guard lock(conn->mutex);
  auto body = winrm::gss::encrypt_body(conn->ctx.get(), conn->ntlm, conn->protocol, soap);
  if (!body) return {soap_type, std::string()};  // never leak plaintext on failure
  return {winrm::gss::encrypted_content_type(conn->protocol), std::move(*body)};
}

}  // namespace sim
