// The listener's --web.config.file, in the Prometheus exporter-toolkit format
// (docs/web-configuration.md of prometheus/exporter-toolkit): TLS, client certificates,
// basic-auth users with bcrypt hashes, extra response headers, a request rate limit.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace exporter {

// Go's tls.ClientAuthType names, as exporter-toolkit spells them.
enum class ClientAuth {
  kNoClientCert,
  kRequestClientCert,           // asked for, not verified, not required
  kRequireAnyClientCert,        // required, not verified
  kVerifyClientCertIfGiven,     // verified against client_ca_file when sent
  kRequireAndVerifyClientCert,  // required and verified: the only one that authenticates
};

struct TlsServerSettings {
  std::string cert_file;  // absolute after loading (relative to the web config file)
  std::string key_file;
  std::string client_ca_file;
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  int min_version = 0x0303;                // TLS1_2_VERSION, the exporter-toolkit default
  int max_version = 0;                     // 0: the highest OpenSSL supports (TLS 1.3)
  std::vector<std::string> cipher_suites;  // IANA names (Go's names); TLS <= 1.2 only
  bool prefer_server_cipher_suites = true;
  std::vector<std::string> curve_preferences;  // Go names: CurveP256, CurveP384, CurveP521, X25519
  std::vector<std::string> client_allowed_sans;  // exact match of any client SAN

  bool operator==(const TlsServerSettings&) const = default;
};

struct WebConfig {
  std::string path;  // the file it came from; empty: no --web.config.file
  std::optional<TlsServerSettings> tls;
  std::vector<std::pair<std::string, std::string>> headers;  // added to every response
  std::map<std::string, std::string> basic_auth_users;       // user -> bcrypt hash
  // Token bucket over all requests (429 beyond it); interval 0: no limit.
  std::chrono::milliseconds rate_limit_interval{0};
  int rate_limit_burst = 0;
};

// Thrown at start-up and caught on reload; the message is "FILE:LINE: field: problem".
class WebConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and validates the file: unknown keys, bad values and unsupported exporter-toolkit
// options are errors. Certificate files are only named here; web_tls.h loads them.
WebConfig load_web_config(const std::string& path);
// The same from text; path is used in messages and to resolve relative file names.
WebConfig parse_web_config(const std::string& text, const std::string& path);

}  // namespace exporter
