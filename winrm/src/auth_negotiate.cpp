// SPNEGO "Negotiate" auth for WinRM (Kerberos via SPNEGO, or NTLM via gss-ntlmssp): one
// security context per TCP connection, mutual authentication verified, message
// encryption on HTTP and channel binding on HTTPS.
#include <strings.h>

#include "common/base64.h"
#include "common/strings.h"
#include "winrm/gss.h"
#include "winrm/message_encryption.h"
#include "winrm/negotiate_auth.h"

namespace winrm {

namespace {

struct NameOwned {
  gss_name_t name = GSS_C_NO_NAME;
  ~NameOwned() {
    OM_uint32 minor = 0;
    if (name != GSS_C_NO_NAME) gss_release_name(&minor, &name);
  }
};

struct BufferOwned {
  gss_buffer_desc buffer = GSS_C_EMPTY_BUFFER;
  ~BufferOwned() {
    OM_uint32 minor = 0;
    gss_release_buffer(&minor, &buffer);
  }
};

// The token of a "Negotiate <b64>" (or "Kerberos <b64>") challenge, and which scheme.
struct Challenge {
  std::string scheme;
  std::string token;
};

std::optional<Challenge> find_challenge(const HttpResponse& response) {
  for (const auto& value : response.header_values("WWW-Authenticate")) {
    for (std::string_view scheme : {"Negotiate", "Kerberos"}) {
      if (value.size() > scheme.size() + 1 &&
          strncasecmp(value.data(), scheme.data(), scheme.size()) == 0 &&
          value[scheme.size()] == ' ') {
        auto token =
            common::base64_decode(common::trim(std::string_view(value).substr(scheme.size() + 1)));
        if (token && !token->empty()) return Challenge{std::string(scheme), std::move(*token)};
      }
    }
  }
  return std::nullopt;
}

class NegotiateAuth final : public Auth {
 public:
  NegotiateAuth(NegotiateOptions options, std::shared_ptr<NegotiateStats> stats)
      : options_(std::move(options)), stats_(std::move(stats)) {
    if (!stats_) stats_ = std::make_shared<NegotiateStats>();
    if (!options_.credentials) throw std::invalid_argument("negotiate auth needs credentials");
    ntlm_ = options_.mechanism == NegotiateMech::kNtlm;
  }

  std::string name() const override { return ntlm_ ? "ntlm" : "kerberos"; }

  // Runs on the awaiting chain's executor (a CPU worker), never on the I/O thread: the
  // GSS calls below (gss_init_sec_context may ask the KDC; wrap/unwrap are CPU) included.
  Task<Result<HttpResponse>> send_async(Connection& conn, std::string soap_body,
                                        Deadline deadline) override {
    const bool https = conn.endpoint().scheme == Scheme::kHttps;
    const bool encrypt = options_.encryption == EncryptionPolicy::kAlways ||
                         (options_.encryption == EncryptionPolicy::kAuto && !https);
    bool reauthenticated = false;
    bool moved = false;  // the last 401 came on another connection than the handshake's
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (!established_ || conn.connection_id() != connection_id_) {
        // Plain (HTTPS): the first token travels with the SOAP body. Encrypted: the
        // handshake runs on an empty body, then the body goes wrapped.
        // Named, not a ?: temporary inside the co_await: g++ 12 destroys such a temporary
        // twice (a double free seen in e2e_test_cert_proxy).
        std::string first_body = encrypt ? std::string() : soap_body;
        auto response = co_await handshake(conn, std::move(first_body), encrypt, deadline);
        if (!response || !encrypt) co_return std::move(response);
      }
      HttpRequest request;
      if (encrypt) {
        auto body = gss::encrypt_body(ctx_.get(), ntlm_, protocol_, soap_body);
        if (!body) {
          reset();
          co_return std::unexpected(body.error());
        }
        request.body = std::move(*body);
        request.content_type = gss::encrypted_content_type(protocol_);
        stats_->encrypted_messages++;
      } else {
        request.body = soap_body;
      }
      const auto sent_on = connection_id_;
      auto response = co_await send_request(conn, request, deadline);
      if (!response) {
        reset();
        co_return std::move(response);
      }
      if (response->status == 401) {
        reset();
        moved = conn.connection_id() != sent_on;
        // The transport reconnected under us: the new connection was never
        // authenticated. Not the server's refusal, so it does not use up the retry.
        if (moved && attempt == 0) continue;
        // The server lost our context on a live connection: once more.
        if (reauthenticated) co_return rejected_after_reauthentication(conn, moved);
        reauthenticated = true;
        stats_->reauth_on_401++;
        continue;
      }
      co_return decode(conn, std::move(*response), encrypt);
    }
    co_return rejected_after_reauthentication(conn, moved);
  }

 private:
  // moved: the connection did not outlive the handshake, so the request went out on an
  // unauthenticated one (the session is bound to its connection). A proxy that closes
  // the client's connection after each answer, as tinyproxy does for absolute-URI
  // requests, causes exactly that.
  static Result<HttpResponse> rejected_after_reauthentication(const Connection& conn, bool moved) {
    std::string message = "401 after re-authentication";
    if (moved) {
      const auto& endpoint = conn.endpoint();
      const bool proxied =
          !endpoint.proxy.empty() && !proxy_bypassed(endpoint.host, endpoint.no_proxy);
      message +=
          ": the connection closed between the handshake and the request each time (the "
          "session is bound to one connection" +
          std::string(proxied ? "; this proxy does not keep the client's connection paired "
                                "with one server connection: use HTTPS through it)"
                              : ")");
    }
    return make_auth_error(AuthErrorClass::kServerRejected, message, 401);
  }

  void reset() {
    ctx_.reset();
    established_ = false;
    last_response_.reset();
  }

  // Unwraps an encrypted answer; its inner type (OriginalContent: type=...;charset=...)
  // becomes the Content-Type, so the parser decodes UTF-16 bodies.
  Result<HttpResponse> decode(Connection& conn, HttpResponse response, bool encrypted_session) {
    const auto content_type = response.header("Content-Type");
    if (!content_type || !gss::is_encrypted_content_type(*content_type)) {
      // Only the wrapped body is authenticated: a plain one (a SOAP fault included) may
      // come from anyone on the path, so it is never acted on. A bodiless status (an
      // empty 500 with Connection: close) carries nothing to act on.
      if (encrypted_session && !response.body.empty()) {
        reset();
        conn.close();
        return make_auth_error(AuthErrorClass::kOther,
                               "plaintext response on an encrypted session (HTTP " +
                                   std::to_string(response.status) + ", " +
                                   content_type.value_or("no Content-Type") + ")",
                               response.status);
      }
      return response;
    }
    auto parts = gss::parse_encrypted(response.body);
    if (!parts) return std::unexpected(parts.error());
    auto plain = gss::decrypt_body(ctx_.get(), ntlm_, response.body);
    if (!plain) {
      reset();
      return std::unexpected(plain.error());
    }
    response.body = std::move(*plain);
    for (auto& [name, value] : response.headers) {
      if (strcasecmp(name.c_str(), "Content-Type") == 0) {
        value = parts->original_type.empty() ? "application/soap+xml;charset=UTF-8"
                                             : parts->original_type;
      }
    }
    return response;
  }

  Result<HttpResponse> fail(std::unexpected<Error> error) {
    reset();
    stats_->handshake_failures++;
    return error;
  }

  Task<Result<HttpResponse>> handshake(Connection& conn, std::string body, bool encrypt,
                                       Deadline deadline) {
    reset();
    auto cred = options_.credentials->acquire();
    if (!cred) co_return fail(std::unexpected(cred.error()));

    const std::string host = options_.spn_host.empty() ? conn.endpoint().host : options_.spn_host;
    const std::string service_at_host = options_.spn_service + "@" + host;
    gss_buffer_desc name_buffer{service_at_host.size(), const_cast<char*>(service_at_host.data())};
    NameOwned target;
    OM_uint32 minor = 0;
    OM_uint32 major =
        gss_import_name(&minor, &name_buffer, GSS_C_NT_HOSTBASED_SERVICE, &target.name);
    if (GSS_ERROR(major)) {
      co_return fail(make_auth_error(AuthErrorClass::kOther, "bad SPN " + service_at_host));
    }

    std::optional<gss::ChannelBindings> bindings;
    if (conn.endpoint().scheme == Scheme::kHttps &&
        options_.channel_binding == ChannelBindingPolicy::kAuto) {
      auto end_point = conn.tls_server_end_point();
      if (!end_point) {
        // The certificate is known only after a TLS handshake: an unauthenticated
        // empty POST (answered 401) opens the connection.
        HttpRequest probe;
        auto probed = co_await send_request(conn, probe, deadline);
        if (!probed) co_return fail(std::unexpected(probed.error()));
        end_point = conn.tls_server_end_point();
        if (!end_point) {
          co_return fail(make_error(ErrorKind::kTls, "no server certificate for channel binding"));
        }
      }
      bindings.emplace(*end_point);
    }

    OM_uint32 flags = GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG;
    if (encrypt) flags |= GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG;
    // Kerberos through SPNEGO (cred's neg mechs = krb5); NTLM as raw NTLMSSP tokens
    // in the Negotiate scheme, as requests-ntlm/pywinrm send them.
    gss_OID mech = ntlm_ ? gss::ntlmssp_mech() : gss::spnego_mech();
    std::string input;
    std::optional<std::uint64_t> handshake_connection;
    for (int leg = 0; leg < options_.max_legs; ++leg) {
      gss_buffer_desc input_buffer{input.size(), input.data()};
      BufferOwned output;
      OM_uint32 ret_flags = 0;
      major = gss_init_sec_context(&minor, (*cred)->get(), ctx_.ptr(), target.name, mech, flags,
                                   GSS_C_INDEFINITE,
                                   bindings ? bindings->get() : GSS_C_NO_CHANNEL_BINDINGS,
                                   input.empty() ? GSS_C_NO_BUFFER : &input_buffer, nullptr,
                                   &output.buffer, &ret_flags, nullptr);
      if (GSS_ERROR(major)) {
        const auto error_class =
            leg == 0 ? gss::classify(major, minor) : AuthErrorClass::kServerRejected;
        co_return fail(make_auth_error(error_class, "gss_init_sec_context (" + service_at_host +
                                                        "): " + gss::status_message(major, minor)));
      }
      if (major == GSS_S_COMPLETE && last_response_) {
        // The server's last token verified (mutual authentication for Kerberos).
        if (!ntlm_ && !(ret_flags & GSS_C_MUTUAL_FLAG)) {
          co_return fail(make_auth_error(AuthErrorClass::kServerRejected,
                                         "mutual authentication not performed"));
        }
        if (encrypt && !(ret_flags & GSS_C_CONF_FLAG)) {
          co_return fail(
              make_auth_error(AuthErrorClass::kServerRejected, "context without confidentiality"));
        }
        established_ = true;
        connection_id_ = conn.connection_id();
        stats_->handshakes++;
        auto response = std::move(*last_response_);
        last_response_.reset();
        if (encrypt && response.status != 200) {
          reset();
          co_return make_error(ErrorKind::kHttp,
                               "handshake ended with HTTP " + std::to_string(response.status),
                               response.status);
        }
        co_return std::move(response);
      }
      if (output.buffer.length == 0) {
        co_return fail(
            make_auth_error(AuthErrorClass::kServerRejected, "handshake stalled without a token"));
      }
      if (last_response_) {
        // We still owed the server a token after its final answer.
        co_return fail(make_auth_error(AuthErrorClass::kServerRejected,
                                       "mutual authentication token missing or incomplete",
                                       last_response_->status));
      }
      HttpRequest request;
      request.body = body;
      request.headers.emplace_back(
          "Authorization",
          "Negotiate " + common::base64_encode(std::string_view(
                             static_cast<const char*>(output.buffer.value), output.buffer.length)));
      auto response = co_await send_request(conn, request, deadline);
      if (!response) co_return fail(std::unexpected(response.error()));
      if (handshake_connection && *handshake_connection != conn.connection_id()) {
        co_return fail(make_error(ErrorKind::kTransport, "connection closed during the handshake"));
      }
      handshake_connection = conn.connection_id();
      auto challenge = find_challenge(*response);
      if (response->status == 401) {
        if (!challenge || major == GSS_S_COMPLETE) {
          co_return fail(make_auth_error(
              AuthErrorClass::kServerRejected,
              "server rejected the " + name() + " token (" + service_at_host + ")", 401));
        }
        input = std::move(challenge->token);
        continue;
      }
      if (!challenge) {
        if (major == GSS_S_COMPLETE && ntlm_) {  // NTLM needs no final token
          established_ = true;
          connection_id_ = conn.connection_id();
          stats_->handshakes++;
          co_return std::move(*response);
        }
        if (response->status != 200 && !encrypt) {
          // A fault or error page without a token: hand it back, re-handshake next time.
          reset();
          co_return std::move(*response);
        }
        co_return fail(make_auth_error(AuthErrorClass::kServerRejected,
                                       "no mutual authentication token in the HTTP " +
                                           std::to_string(response->status) + " answer",
                                       response->status));
      }
      if (challenge->scheme == "Kerberos") protocol_ = std::string(gss::kKerberosEncrypted);
      last_response_ = std::move(*response);
      input = std::move(challenge->token);
    }
    co_return fail(make_auth_error(AuthErrorClass::kServerRejected, "too many handshake legs"));
  }

  NegotiateOptions options_;
  std::shared_ptr<NegotiateStats> stats_;
  bool ntlm_ = false;
  gss::Context ctx_;
  bool established_ = false;
  std::uint64_t connection_id_ = 0;
  std::string protocol_{gss::kSpnegoEncrypted};
  std::optional<HttpResponse> last_response_;
};

}  // namespace

std::shared_ptr<Auth> make_negotiate_auth(NegotiateOptions options,
                                          std::shared_ptr<NegotiateStats> stats) {
  return std::make_shared<NegotiateAuth>(std::move(options), std::move(stats));
}

}  // namespace winrm
