// The exporter's configuration, as loaded from YAML (see config/CONFIG.md).
// Loading throws ConfigError (start-up and reload only); everything else is values.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"
#include "common/duration.h"
#include "config/secret.h"

namespace config {

using Duration = std::chrono::milliseconds;

// Thrown by load(): what() is "FILE:LINE: field: problem".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class AuthMethod { kBasic, kKerberos, kNtlm, kCertificate };

struct CredentialProfile {
  std::string name;
  AuthMethod method = AuthMethod::kBasic;
  std::string username;       // "user", "DOMAIN\\user" or "user@REALM"
  Secret password;            // resolved from password_file or password_env
  std::string password_file;  // where it came from (for reload), may be empty
  std::string password_env;
  // Kerberos: client keytab preferred, else password, else an existing ccache.
  std::string keytab;
  std::string ccache;
  std::string realm;
  std::string spn_service = "HTTP";  // HTTP or WSMAN
  // Certificate (WinRM client certificate mapping, HTTPS only): PEM certificate (chain)
  // and PEM key, read at each TLS handshake. Only the paths are ever logged. An encrypted
  // key's passphrase (key_password_file) is held in password/password_file above.
  std::string cert_file;
  std::string key_file;
};

// Forward HTTP proxy (key `proxy:` in global, inventory defaults, targets).
struct ProxySettings {
  std::string url;  // "http://host:port" or "https://host:port" (TLS to the proxy); empty: direct
  std::string username;  // proxy Basic auth when set
  Secret password;       // from password_file
  std::string password_file;
  std::string ca_file;  // https:// proxies: CAs for the proxy's certificate; empty: system bundle
  bool operator==(const ProxySettings&) const = default;
};

enum class Scheme { kHttp, kHttps };

// WS-Management request options (key `winrm:` in global, inventory defaults, targets),
// for hosts whose WinRM quotas differ (Windows Server 2008 R2: MaxEnvelopeSizekb 150).
struct WinrmOptions {
  std::uint32_t max_envelope_size = 512000;              // w:MaxEnvelopeSize, bytes
  std::uint32_t max_elements = 32000;                    // items per page (server MaxBatchItems)
  Duration operation_timeout{std::chrono::seconds(20)};  // clamped below the poll timeout
  std::string locale = "en-US";                          // w:Locale of fault texts
  bool operator==(const WinrmOptions&) const = default;
};

// Per-poll bounds (key `limits:`); a poll that hits one fails with an error naming it.
struct PollLimits {
  static constexpr std::size_t kAuto = 0;
  // One response; kAuto = 2 x max_envelope_size + 64 KiB (see effective_max_response_bytes).
  std::size_t max_response_bytes = kAuto;
  std::size_t max_poll_bytes = 64 * 1024 * 1024;  // all responses of one poll
  std::size_t max_rows_per_poll = 100000;
  std::size_t max_properties_per_instance = 10000;
  std::size_t max_series_per_collector = 200000;  // enforced by the daemon per poll
  bool operator==(const PollLimits&) const = default;
};

// max_response_bytes with kAuto resolved against the envelope size.
std::size_t effective_max_response_bytes(const PollLimits& limits, const WinrmOptions& winrm);

struct Defaults {
  Duration interval{std::chrono::seconds(30)};
  Duration timeout{std::chrono::seconds(20)};  // per collector poll, < interval
  int concurrency = 64;                        // targets in flight at once
  int per_target_concurrency = 1;              // parallel queries per target (WinRM quotas)
  // A poll running longer than slow_poll_after gives its per-target slot to the target's next
  // due poll (which opens a second connection); at most max_slow_polls_per_target such slow
  // polls per target (0: never) and max_slow_polls exporter-wide.
  Duration slow_poll_after{std::chrono::seconds(1)};  // lag p99 <= 1 s at 2,000 hosts (bench)
  int max_slow_polls_per_target = 4;
  int max_slow_polls = 1024;
  int stale_after_intervals = 3;  // drop a collector's series after this many misses
  // Reuse the rows of `refresh:` queries between polls (collectors/README.md); false: every
  // query is sent at every poll.
  bool query_refresh = true;
  Scheme scheme = Scheme::kHttps;
  int port = 5986;          // 5985 for http when not set
  std::string tls_ca_file;  // system store when empty
  bool tls_insecure_skip_verify = false;
  std::vector<std::string> collectors;  // resolved after load(): built-in default set +/- global
  // windows_exporter name sets emitted (collectors::kNameSetV030 / kNameSetPre030).
  std::vector<std::string> compat = {"v030"};
  WinrmOptions winrm;   // global.winrm
  PollLimits limits;    // global.limits (global.max_response_bytes is an alias)
  ProxySettings proxy;  // global.proxy
  // global.no_proxy (NO_PROXY syntax, comma-joined); from the NO_PROXY/no_proxy
  // environment when the key is absent.
  std::string no_proxy;
  std::string credential;                     // default profile for targets that name none
  std::map<std::string, std::string> labels;  // extra labels on every target (target's win)
};

struct Target {
  std::string name;             // unique; the `target` label and /probe?target=
  std::string host;             // DNS name used for TLS/SNI/Host/SPN; = name when unset
  std::string connect_address;  // optional: IP or name to connect to instead
  int port = 0;                 // resolved: never 0 after load()
  Scheme scheme = Scheme::kHttps;
  std::string credential;                     // profile name
  std::map<std::string, std::string> labels;  // extra labels on every series
  std::vector<std::string> collectors;        // resolved list (defaults + enable/disable)
  std::vector<std::string> compat;            // resolved name sets: target > defaults > global
  // Config::collectors restricted to `compat` (shared by targets with the same sets); the
  // daemon polls these.
  std::shared_ptr<const std::map<std::string, collectors::CollectorPtr>> compat_collectors;
  Duration interval{0};  // resolved
  Duration timeout{0};   // resolved
  std::string tls_ca_file;
  bool tls_insecure_skip_verify = false;
  std::string spn_host;     // Kerberos SPN host override; host when empty
  std::string spn_service;  // overrides the profile's when set
  ProxySettings proxy;      // resolved: target > inventory defaults > global; url "" = direct
  std::string no_proxy;     // global.no_proxy (the transport decides the bypass per host)
  WinrmOptions winrm;       // resolved per field: target > inventory defaults > global
  PollLimits limits;        // resolved the same way
  std::string source;       // "file:line" where it was defined, for messages
};

// Active Directory inventory (`inventory_ldap:`, CONFIG.md): computer objects found by an
// LDAP search become targets; the daemon refreshes the list (daemon/inventory_ldap.h).
enum class LdapBind { kGssapi, kSimple };

// Enabled computer objects running Windows Server (AD syntax: the OID is
// LDAP_MATCHING_RULE_BIT_AND).
inline constexpr std::string_view kDefaultLdapFilter =
    "(&(objectCategory=computer)(operatingSystem=Windows Server*)"
    "(!(userAccountControl:1.2.840.113556.1.4.803:=2)))";

struct LdapInventory {
  std::string name;               // the `source` label of its metrics
  std::vector<std::string> urls;  // ldap:// or ldaps://, tried in order (failover)
  LdapBind bind = LdapBind::kGssapi;
  std::string credential;  // gssapi: a kerberos credential profile (its keytab and refresh)
  std::string bind_dn;     // simple
  Secret bind_password;    // simple: from bind_password_file
  std::string bind_password_file;
  bool start_tls = false;   // ldap:// upgraded with StartTLS
  std::string tls_ca_file;  // system store when empty
  std::string base_dn;
  std::string filter{kDefaultLdapFilter};
  int page_size = 500;             // RFC 2696 paged results
  std::size_t max_hosts = 100000;  // a refresh finding more fails (keeps the last list)
  Duration refresh_interval{std::chrono::minutes(15)};
  // Stale-result limit: a failed refresh drops the last good list once its last success is
  // this old (DCs gone for good must not freeze the target list). Zero: never (`never`).
  Duration max_stale_age{std::chrono::hours(24)};
  Duration timeout{std::chrono::seconds(30)};  // per LDAP operation
  std::string ou_label = "ad_ou";              // label for the OU path of the DN; empty: none
  std::map<std::string, std::string> attribute_labels = {{"ad_os", "operatingSystem"},
                                                         {"ad_site", "msDS-SiteName"}};
  // Fully resolved target settings (source defaults > global) for every discovered host;
  // name and host are set per host.
  Target defaults;
  std::string source;  // "file:line"
};

struct Config {
  std::string path;
  Defaults defaults;
  std::map<std::string, CredentialProfile> credentials;
  std::vector<Target> targets;
  // Built-in plus custom collectors by name; every name a target lists is in here.
  std::map<std::string, collectors::CollectorPtr> collectors;
  std::vector<LdapInventory> inventory_ldap;  // discovered targets are not in `targets`
};

// Loads and validates path (plus inventory globs it names). Throws ConfigError.
// Reads password files and env at load time; warnings go to the spdlog default logger.
// Pure apart from reading files and the environment: reload is the daemon's job.
Config load(const std::string& path);

// A human summary for --config.check: globals, profiles (secrets masked), targets.
std::string describe(const Config& config);

// "500ms", "30s", "5m", "1h", "1d", "1m30s" (units in descending order, each once).
// nullopt when malformed. Negative values and missing units are malformed.
using common::parse_duration;  // with its default, DurationSyntax::kPrometheus
// "16MiB", "512KiB", "1GiB", "10MB", "4096", "4096B". nullopt when malformed or overflowing.
std::optional<std::size_t> parse_size(std::string_view text);
// Inverse of parse_duration for messages: 90000ms -> "1m30s".
std::string format_duration(Duration duration);

const char* to_string(AuthMethod method);
const char* to_string(Scheme scheme);

}  // namespace config
