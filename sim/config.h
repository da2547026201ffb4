// winrm-sim configuration (YAML). See sim/README.md for the reference.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "latency.h"

namespace sim {

struct ListenerConfig {
  bool enabled = false;
  std::string address = "127.0.0.1";
  int port = 0;
  std::string cert;  // https only
  std::string key;   // https only
  // https only: CA bundle client certificates are verified against (certificate auth);
  // empty: no client certificate is asked for.
  std::string client_ca;
};

// WinRM certificate mapping (WSMan:\localhost\ClientCertificate): a verified client
// certificate whose UPN (subjectAltName otherName 1.3.6.1.4.1.311.20.2.3), or else
// subject CN, equals `subject` authenticates as `user`.
struct CertificateMapping {
  std::string subject;
  std::string user;
};

struct UserConfig {
  std::string username;
  std::string password;
};

// Per-virtual-host overrides and fault modes. Hosts not listed use defaults.
struct HostConfig {
  std::string name;  // lower-cased
  std::optional<int> cpus;
  std::optional<int> disks;
  std::optional<int> nics;
  std::optional<int> services;
  std::optional<int> processes;
  std::optional<double> clock_offset_s;  // host clock minus true time; default: seeded
  Millis delay{0};
  std::uint64_t trickle_bytes_per_second = 0;
  bool close_mid_body = false;
  std::string fault;  // empty = none
  int pull_timeouts = 0;
  bool expire_context_once = false;
  bool malformed_xml = false;
  std::uint64_t oversized_bytes = 0;
  bool always_401 = false;
  std::vector<std::string> auth{"basic", "negotiate", "certificate"};  // lower-cased names
};

// Negotiate (Kerberos with a service keytab, NTLM with the `users:` accounts).
struct NegotiateConfig {
  bool enabled = false;
  std::string keytab;
  bool require_encryption_on_http = true;
  std::string cbt = "none";
  bool ntlm = false;                      // accept NTLM for `users:` (gss-ntlmssp)
  std::string ntlm_domain = "WINRM-SIM";  // NTLM accounts are DOMAIN\user and .\user
};

struct SimConfig {
  ListenerConfig https;
  ListenerConfig http;
  Millis keep_alive_timeout{120000};  // HTTP.sys' idle connection timeout
  int page_size = 50;
  int threads = 2;       // handler workers (XML rendering, GSS); connections do not hold them
  int loop_threads = 1;  // event loops (sockets, TLS, timers)
  int max_connections = 32768;
  Millis enumeration_timeout{240000};
  std::vector<UserConfig> users;
  std::vector<CertificateMapping> client_certificates;  // needs https.client_ca
  std::vector<HostConfig> hosts;
  std::vector<std::string> replay;  // absolute paths
  NegotiateConfig negotiate;
  LatencyConfig latency;  // off unless `latency:` is given
};

// The fault names accepted by `hosts[].fault`.
const std::vector<std::string>& known_fault_names();

// Loads and validates the YAML file; unknown keys are errors. Relative paths (replay,
// certs) are resolved against the config file's directory. Throws std::runtime_error whose
// text starts with "file:line: " (common/yaml.h). Durations are Go-style ("500ms", "1.5s",
// "2m", "1h30m"; common/duration.h).
SimConfig load_config(const std::string& path);
// The same for YAML text; `name` stands for the file in error locations.
SimConfig parse_config(const std::string& yaml_text, const std::string& base_dir,
                       const std::string& name = "sim config");

}  // namespace sim
