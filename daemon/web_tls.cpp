#include "web_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <utility>

namespace exporter {

namespace {

// What a context needs at handshake time beyond OpenSSL's own settings; owned by the
// SSL_CTX (ex_data), so it lives exactly as long as connections may use the context.
struct ContextPolicy {
  bool verify_chain = false;
  std::vector<std::string> allowed_sans;
};

void free_policy(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ContextPolicy*>(ptr);
}

int policy_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_policy);
  return index;
}

std::string openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? std::string("unknown OpenSSL error") : text;
}

std::string general_name_text(const GENERAL_NAME* name) {
  if (name->type == GEN_DNS || name->type == GEN_EMAIL || name->type == GEN_URI) {
    const ASN1_IA5STRING* text = name->d.ia5;
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                       static_cast<std::size_t>(ASN1_STRING_length(text)));
  }
  if (name->type == GEN_IPADD) {
    const ASN1_OCTET_STRING* ip = name->d.ip;
    char buffer[INET6_ADDRSTRLEN] = {};
    int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
    if (ASN1_STRING_length(ip) == 4 || ASN1_STRING_length(ip) == 16) {
      inet_ntop(family, ASN1_STRING_get0_data(ip), buffer, sizeof buffer);
      return buffer;
    }
  }
  return {};
}

// Whether any subject alternative name of cert equals one of allowed exactly.
bool san_allowed(X509* cert, const std::vector<std::string>& allowed) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    std::string text = general_name_text(sk_GENERAL_NAME_value(names, i));
    found = !text.empty() && std::find(allowed.begin(), allowed.end(), text) != allowed.end();
  }
  GENERAL_NAMES_free(names);
  return found;
}

// Replaces OpenSSL's chain verification: verify only when the client_auth_type asks for
// it (RequestClientCert/RequireAnyClientCert accept any certificate, as in Go), then
// check client_allowed_sans.
int verify_client(X509_STORE_CTX* store, void* arg) {
  const auto* policy = static_cast<const ContextPolicy*>(arg);
  if (policy->verify_chain && X509_verify_cert(store) != 1) return 0;
  if (!policy->allowed_sans.empty()) {
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (leaf == nullptr || !san_allowed(leaf, policy->allowed_sans)) {
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
  }
  return 1;
}

// Go's cipher suite name -> OpenSSL's, through OpenSSL's IANA ("standard") names.
std::expected<std::string, std::string> openssl_cipher_list(const std::vector<std::string>& names) {
  SSL_CTX* all = SSL_CTX_new(TLS_server_method());
  if (all == nullptr) return std::unexpected(openssl_errors());
  SSL_CTX_set_security_level(all, 0);
  SSL_CTX_set_cipher_list(all, "ALL:COMPLEMENTOFALL");
  std::map<std::string, std::string> by_standard_name;
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(all);
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
    if (std::string_view(SSL_CIPHER_get_version(cipher)) == "TLSv1.3") continue;
    if (const char* standard = SSL_CIPHER_standard_name(cipher)) {
      by_standard_name[standard] = SSL_CIPHER_get_name(cipher);
    }
  }
  SSL_CTX_free(all);
  std::string list;
  for (const auto& name : names) {
    auto it = by_standard_name.find(name);
    if (it == by_standard_name.end()) it = by_standard_name.find(name + "_SHA256");  // Go alias
    if (it == by_standard_name.end()) {
      return std::unexpected(
          "cipher_suites: " + name +
          " is not a TLS 1.2 cipher suite this OpenSSL knows (TLS 1.3 suites are not "
          "configurable, as in Go)");
    }
    if (!list.empty()) list += ":";
    list += it->second;
  }
  return list;
}

std::string groups_list(const std::vector<std::string>& curves) {
  static const std::map<std::string, std::string> kGroups = {
      {"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"}, {"X25519", "X25519"}};
  std::string list;
  for (const auto& curve : curves) {
    if (!list.empty()) list += ":";
    list += kGroups.at(curve);  // validated by the config loader
  }
  return list;
}

constexpr unsigned char kSessionContext[] = "winrm_exporter";

}  // namespace

std::expected<SslCtxPtr, std::string> build_server_context(const TlsServerSettings& settings) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return std::unexpected("TLS: " + openssl_errors());
  auto policy = std::make_unique<ContextPolicy>();
  SSL_CTX* raw = ctx.get();
  if (SSL_CTX_set_min_proto_version(raw, settings.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(raw, settings.max_version) != 1) {
    return std::unexpected("min_version/max_version: " + openssl_errors());
  }
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (settings.prefer_server_cipher_suites)
    SSL_CTX_set_options(raw, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(raw, settings.cert_file.c_str()) != 1) {
    return std::unexpected("cert_file " + settings.cert_file + ": " + openssl_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, settings.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return std::unexpected("key_file " + settings.key_file + ": " + openssl_errors());
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return std::unexpected("key_file " + settings.key_file + " does not match cert_file " +
                           settings.cert_file);
  }
  if (!settings.cipher_suites.empty()) {
    auto list = openssl_cipher_list(settings.cipher_suites);
    if (!list) return std::unexpected(list.error());
    if (SSL_CTX_set_cipher_list(raw, list->c_str()) != 1) {
      return std::unexpected("cipher_suites: " + openssl_errors());
    }
  }
  if (!settings.curve_preferences.empty()) {
    if (SSL_CTX_set1_groups_list(raw, groups_list(settings.curve_preferences).c_str()) != 1) {
      return std::unexpected("curve_preferences: " + openssl_errors());
    }
  }
  SSL_CTX_set_session_id_context(raw, kSessionContext, sizeof kSessionContext - 1);
  if (!settings.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(raw, settings.client_ca_file.c_str(), nullptr) != 1) {
      return std::unexpected("client_ca_file " + settings.client_ca_file + ": " + openssl_errors());
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca_file.c_str());
    if (names == nullptr) {
      return std::unexpected("client_ca_file " + settings.client_ca_file +
                             ": no certificates: " + openssl_errors());
    }
    SSL_CTX_set_client_CA_list(raw, names);
  }
  int mode = SSL_VERIFY_NONE;
  switch (settings.client_auth) {
    case ClientAuth::kNoClientCert:
      break;
    case ClientAuth::kRequestClientCert:
    case ClientAuth::kVerifyClientCertIfGiven:
      mode = SSL_VERIFY_PEER;
      break;
    case ClientAuth::kRequireAnyClientCert:
    case ClientAuth::kRequireAndVerifyClientCert:
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      break;
  }
  policy->verify_chain = settings.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                         settings.client_auth == ClientAuth::kRequireAndVerifyClientCert;
  policy->allowed_sans = settings.client_allowed_sans;
  SSL_CTX_set_verify(raw, mode, nullptr);
  SSL_CTX_set_cert_verify_callback(raw, verify_client, policy.get());
  if (SSL_CTX_set_ex_data(raw, policy_index(), policy.get()) != 1) {
    return std::unexpected("TLS: " + openssl_errors());
  }
  policy.release();  // owned by the context now (free_policy)
  return ctx;
}

std::expected<std::shared_ptr<TlsContextProvider>, std::string> TlsContextProvider::create(
    TlsServerSettings settings) {
  auto files = identify(settings);
  auto context = build_server_context(settings);
  if (!context) return std::unexpected(context.error());
  return std::shared_ptr<TlsContextProvider>(
      new TlsContextProvider(std::move(settings), std::move(*context), std::move(files)));
}

TlsContextProvider::TlsContextProvider(TlsServerSettings settings, SslCtxPtr context,
                                       std::vector<FileId> files)
    : settings_(std::move(settings)),
      context_(std::move(context)),
      files_(std::move(files)),
      next_check_(std::chrono::steady_clock::now() + std::chrono::seconds(1)) {}

std::vector<TlsContextProvider::FileId> TlsContextProvider::identify(
    const TlsServerSettings& settings) {
  std::vector<FileId> ids;
  for (const std::string* path :
       {&settings.cert_file, &settings.key_file, &settings.client_ca_file}) {
    FileId id;
    struct stat info {};
    if (!path->empty() && stat(path->c_str(), &info) == 0) {
      id = {info.st_dev, info.st_ino, info.st_size,
            static_cast<long long>(info.st_mtim.tv_sec) * 1000000000LL + info.st_mtim.tv_nsec};
    }
    ids.push_back(id);
  }
  return ids;
}

SslCtxPtr TlsContextProvider::current() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return context_;
  next_check_ = now + std::chrono::seconds(1);
  auto files = identify(settings_);
  if (files == files_ || files == failed_files_) return context_;
  auto rebuilt = build_server_context(settings_);
  if (!rebuilt) {
    failed_files_ = files;
    spdlog::warn("web: TLS files changed but cannot be loaded, keeping the previous ones: {}",
                 rebuilt.error());
    return context_;
  }
  spdlog::info("web: TLS certificate files changed, reloaded cert_file={}", settings_.cert_file);
  previous_ = std::exchange(context_, std::move(*rebuilt));
  files_ = std::move(files);
  failed_files_.clear();
  ++rebuilds_;
  return context_;
}

std::expected<void, std::string> TlsContextProvider::update(TlsServerSettings settings) {
  auto files = identify(settings);
  auto context = build_server_context(settings);
  if (!context) return std::unexpected(context.error());
  std::lock_guard lock(mutex_);
  settings_ = std::move(settings);
  previous_ = std::exchange(context_, std::move(*context));
  files_ = std::move(files);
  failed_files_.clear();
  ++rebuilds_;
  return {};
}

int TlsContextProvider::rebuilds() const {
  std::lock_guard lock(mutex_);
  return rebuilds_;
}

}  // namespace exporter
