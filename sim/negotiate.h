// winrm-sim's Negotiate (Kerberos/NTLM) acceptor: GSS contexts bound to the client's TCP
// connection, the mutual-auth token in the 200, message encryption enforced on HTTP
// and channel binding (CbtHardeningLevel) on HTTPS, like Windows' HTTP.sys/WinRM.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "winrm/negotiate.h"

namespace sim {

enum class CbtMode { kNone, kRelaxed, kStrict };
std::optional<CbtMode> parse_cbt_mode(std::string_view text);  // none|relaxed|strict

struct NegotiateSettings {
  std::string keytab;  // service keytab (HTTP/host, WSMAN/host...)
  bool require_encryption_on_http = true;
  CbtMode cbt = CbtMode::kRelaxed;
};

// RFC 5929 tls-server-end-point binding data for a PEM certificate file:
// "tls-server-end-point:" + hash(DER). nullopt if unreadable.
std::optional<std::string> tls_end_point_from_pem(const std::string& cert_path);

struct NegotiateCounters {
  std::atomic<std::uint64_t> handshakes{0};
  std::atomic<std::uint64_t> rejected{0};            // 401s for bad/unbound tokens
  std::atomic<std::uint64_t> plaintext_rejected{0};  // unencrypted SOAP refused on HTTP
  std::atomic<std::uint64_t> encrypted_requests{0};
};

class NegotiateAcceptor {
 public:
  // tls_end_point: the listener's own binding data (HTTPS), nullopt for HTTP.
  NegotiateAcceptor(NegotiateSettings settings, std::optional<std::string> tls_end_point);
  ~NegotiateAcceptor();

  struct AuthResult {
    enum class Kind { kAccepted, kContinue, kRejected } kind = Kind::kRejected;
    // Header value for WWW-Authenticate ("Negotiate <b64>"); empty when no token.
    std::string www_authenticate;
    std::string client;  // authenticated principal (kAccepted)
    std::string reason;  // for the sim's log (kRejected)
  };
  // One "Authorization: Negotiate <b64>" (or "Kerberos <b64>") on a connection
  // ("addr:port"). A new token always restarts the connection's context.
  AuthResult accept(const std::string& connection, std::string_view authorization);
  // Whether the connection completed a handshake (requests without Authorization ride on it).
  bool authenticated(const std::string& connection);
  void drop(const std::string& connection);

  struct Decoded {
    int status = 0;    // 0: ok; otherwise the HTTP status to answer (500 like Windows)
    std::string soap;  // plaintext SOAP
    bool encrypted = false;
    std::string reason;  // why it was refused
  };
  // Request body codec: multipart/encrypted -> unwrap; plaintext SOAP on HTTP when
  // encryption is required -> 500.
  Decoded decode_request(const std::string& connection, std::string_view content_type,
                         std::string_view body);
  // Response body codec: wraps when the request was encrypted. Returns {content type, body}.
  std::pair<std::string, std::string> encode_response(const std::string& connection,
                                                      std::string soap, bool encrypted);

  const NegotiateCounters& counters() const { return counters_; }
  bool https() const { return tls_end_point_.has_value(); }

 private:
  struct ConnectionState;
  std::shared_ptr<ConnectionState> state(const std::string& connection, bool create);

  NegotiateSettings settings_;
  std::optional<std::string> tls_end_point_;
  std::unique_ptr<winrm::gss::Credential> keytab_cred_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ConnectionState>> connections_;
  NegotiateCounters counters_;
};

}  // namespace sim
