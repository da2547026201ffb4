// Command-line flags in the Prometheus exporter convention (--config.file, --web.*,
// --log.*), plus the `query` troubleshooting subcommand.
#pragma once

#include <expected>
#include <string>
#include <vector>

namespace exporter {

inline constexpr int kDefaultPort = 9725;
// A synchronous poll holds its worker for its whole duration: a fleet needs about
// polls/s x mean poll duration workers (docs/sizing.md: ~1,400 for 10,000 hosts at 60 s).
inline constexpr int kMaxSchedulerWorkers = 2048;
// Polling threads run this many nice levels below the web threads (docs/sizing.md).
// 0: equal terms (at 2,000 hosts 5 changed nothing measurable, and it would slow polls while
// scrapes render on a busy core).
inline constexpr int kDefaultSchedulerNice = 0;

struct ServeFlags {
  std::string config_file = "winrm_exporter.yml";
  bool config_check = false;
  std::vector<std::string> listen_addresses;  // default {":9725"}
  std::string log_level = "info";
  std::string log_format = "logfmt";
  // 0 = follow the configuration (worker_count() in app.h); else 1..kMaxSchedulerWorkers.
  int scheduler_workers = 0;
  // Nice levels the polling threads run below the web threads (0: equal terms).
  int scheduler_nice = kDefaultSchedulerNice;
  int web_max_requests = 8;  // HTTP worker threads
  // Exporter-toolkit web configuration (TLS, basic auth, headers); empty: plain HTTP, no auth.
  std::string web_config_file;
  // POST/PUT /-/reload; off by default, as in Prometheus (SIGHUP always reloads).
  bool web_enable_lifecycle = false;
  // Open connections to the listener in all / from one client address.
  int web_max_connections = 1024;
  int web_max_connections_per_client = 256;
  // This instance polls the targets whose Prometheus hashmod(name, total_shards) is shard.
  int shard = 0;
  int total_shards = 1;
};

struct QueryFlags {
  std::string config_file;
  std::string target;
  std::string wmi_namespace = "root/cimv2";
  std::string host;
  int port = 0;  // 5986 for https, 5985 for http
  std::string scheme = "https";
  std::string user;
  std::string password_file;
  std::string connect_address;
  std::string ca_file;
  bool insecure_skip_verify = false;
  bool verify_relates_to = true;  // off only for replayed captures
  double timeout_seconds = 30;
  std::string log_level = "warn";
  // WS-Man request options; 0 / empty: the target's `winrm:` settings, else the defaults.
  int max_envelope_size = 0;
  int max_elements = 0;
  std::string locale;
  std::string wql;
};

struct Flags {
  enum class Command { kServe, kQuery, kHelp, kVersion };
  Command command = Command::kServe;
  bool query_help = false;
  ServeFlags serve;
  QueryFlags query;
};

// args excludes argv[0]. Error text names the offending flag.
std::expected<Flags, std::string> parse_flags(const std::vector<std::string>& args);

std::string usage_text();
std::string query_usage_text();

// ":9725" -> {"0.0.0.0", 9725}; "[::1]:9725"; "localhost:0". Error for bad input.
struct ListenAddress {
  std::string host;
  int port = 0;
};
std::expected<ListenAddress, std::string> parse_listen_address(const std::string& address);

}  // namespace exporter
