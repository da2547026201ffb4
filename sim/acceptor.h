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
#include <utility>
#include <vector>

#include "winrm/gss.h"

namespace sim {

enum class CbtMode { kNone, kRelaxed, kStrict };
std::optional<CbtMode> parse_cbt_mode(std::string_view text);  // none|relaxed|strict

struct NegotiateSettings {
  std::string keytab;  // service keytab (HTTP/host, WSMAN/host...); optional with ntlm
  bool require_encryption_on_http = true;
  CbtMode cbt = CbtMode::kRelaxed;
  // NTLM local accounts: when set, gss-ntlmssp's acceptor checks raw NTLMSSP tokens
  // against these (as DOMAIN\user and .\user, or user with no domain) through its
  // cred store, without NTLM_USER_FILE. Off: NTLM falls back to NTLM_USER_FILE.
  bool ntlm = false;
  std::string ntlm_domain = "WINRM-SIM";
  std::vector<std::pair<std::string, std::string>> ntlm_users;  // {username, password}
};

// gss-ntlmssp's user file (Heimdal format, "DOMAIN:user:password" lines) for `users`,
// each under `domain` and ".". Throws std::invalid_argument for names or passwords the
// format cannot hold (':' or line breaks); the message never contains a password.
std::string ntlm_user_file_text(const std::vector<std::pair<std::string, std::string>>& users,
                                const std::string& domain);

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
  std::unique_ptr<winrm::gss::Credential> keytab_cred_;  // null: NTLM only
  // NTLM acceptor credential naming the user file; the file is an anonymous memfd
  // (/proc/self/fd/N), so it never exists on disk and vanishes with the process.
  std::unique_ptr<winrm::gss::Credential> ntlm_cred_;
  int ntlm_users_fd_ = -1;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ConnectionState>> connections_;
  NegotiateCounters counters_;
};

}  // namespace sim
