// Hand-parsed on purpose (CONTRIBUTING.md, "Code": why not CLI11).
#include "flags.h"

#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>

namespace exporter {

namespace {

std::expected<int, std::string> parse_int(const std::string& flag, const std::string& text) {
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return std::unexpected(flag + ": not an integer: " + text);
  }
  return value;
}

// Generic --name=value / --name value / --bool / --no-bool parser.
struct FlagTable {
  std::map<std::string, std::function<std::expected<void, std::string>(const std::string&)>> valued;
  std::map<std::string, bool*> booleans;

  std::expected<std::vector<std::string>, std::string> parse(const std::vector<std::string>& args,
                                                             std::size_t first) const {
    std::vector<std::string> positional;
    for (std::size_t i = first; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (arg == "--") {
        positional.insert(positional.end(), args.begin() + static_cast<long>(i) + 1, args.end());
        break;
      }
      if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
        positional.push_back(arg);
        continue;
      }
      std::string name = arg.substr(2);
      std::optional<std::string> value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
      }
      if (auto it = booleans.find(name); it != booleans.end()) {
        if (!value || *value == "true") {
          *it->second = true;
        } else if (*value == "false") {
          *it->second = false;
        } else {
          return std::unexpected("--" + name + ": expected true or false");
        }
        continue;
      }
      if (name.rfind("no-", 0) == 0 && booleans.contains(name.substr(3)) && !value) {
        *booleans.at(name.substr(3)) = false;
        continue;
      }
      auto it = valued.find(name);
      if (it == valued.end()) return std::unexpected("unknown flag --" + name);
      if (!value) {
        if (i + 1 >= args.size()) return std::unexpected("--" + name + ": missing value");
        value = args[++i];
      }
      if (auto ok = it->second(*value); !ok) return std::unexpected(ok.error());
    }
    return positional;
  }
};

auto set_string(std::string& target) {
  return [&target](const std::string& value) -> std::expected<void, std::string> {
    target = value;
    return {};
  };
}

auto set_int(const std::string& flag, int& target) {
  return [flag, &target](const std::string& value) -> std::expected<void, std::string> {
    auto parsed = parse_int("--" + flag, value);
    if (!parsed) return std::unexpected(parsed.error());
    target = *parsed;
    return {};
  };
}

auto set_one_of(const std::string& flag, std::string& target, std::vector<std::string> allowed) {
  return [flag, &target, allowed](const std::string& value) -> std::expected<void, std::string> {
    for (const auto& option : allowed) {
      if (value == option) {
        target = value;
        return {};
      }
    }
    std::string list;
    for (const auto& option : allowed) list += (list.empty() ? "" : "|") + option;
    return std::unexpected("--" + flag + ": expected one of " + list + ", got " + value);
  };
}

std::expected<Flags, std::string> parse_query(const std::vector<std::string>& args) {
  Flags flags;
  flags.command = Flags::Command::kQuery;
  QueryFlags& q = flags.query;
  FlagTable table;
  table.valued["config.file"] = set_string(q.config_file);
  table.valued["target"] = set_string(q.target);
  table.valued["namespace"] = set_string(q.wmi_namespace);
  table.valued["host"] = set_string(q.host);
  table.valued["port"] = set_int("port", q.port);
  table.valued["scheme"] = set_one_of("scheme", q.scheme, {"https", "http"});
  table.valued["user"] = set_string(q.user);
  table.valued["password-file"] = set_string(q.password_file);
  table.valued["connect-address"] = set_string(q.connect_address);
  table.valued["ca-file"] = set_string(q.ca_file);
  table.valued["log.level"] =
      set_one_of("log.level", q.log_level, {"debug", "info", "warn", "error"});
  table.valued["timeout"] = [&q](const std::string& value) -> std::expected<void, std::string> {
    std::string number = value;
    if (!number.empty() && number.back() == 's') number.pop_back();
    char* end = nullptr;
    double seconds = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0' || seconds <= 0) {
      return std::unexpected("--timeout: expected seconds like 30s, got " + value);
    }
    q.timeout_seconds = seconds;
    return {};
  };
  table.valued["max-envelope-size"] = set_int("max-envelope-size", q.max_envelope_size);
  table.valued["max-elements"] = set_int("max-elements", q.max_elements);
  table.valued["locale"] = set_string(q.locale);
  table.booleans["insecure-skip-verify"] = &q.insecure_skip_verify;
  table.booleans["verify-relates-to"] = &q.verify_relates_to;
  table.booleans["help"] = &flags.query_help;
  auto positional = table.parse(args, 1);
  if (!positional) return std::unexpected(positional.error());
  if (flags.query_help) return flags;
  if (positional->size() != 1) {
    return std::unexpected("query: expected exactly one WQL statement argument");
  }
  q.wql = positional->front();
  bool by_target = !q.target.empty();
  bool by_host = !q.host.empty();
  if (by_target == by_host) {
    return std::unexpected("query: give either --config.file and --target, or --host");
  }
  if (by_target && q.config_file.empty()) {
    return std::unexpected("query: --target needs --config.file");
  }
  if (by_host && (q.user.empty() || q.password_file.empty())) {
    return std::unexpected("query: --host needs --user and --password-file");
  }
  if (q.port == 0 && by_host) q.port = q.scheme == "https" ? 5986 : 5985;
  if (q.max_envelope_size != 0 && q.max_envelope_size < 8192) {
    return std::unexpected("--max-envelope-size: at least 8192 bytes");
  }
  if (q.max_elements < 0) return std::unexpected("--max-elements: must be positive");
  return flags;
}

}  // namespace

std::expected<Flags, std::string> parse_flags(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "query") return parse_query(args);
  Flags flags;
  ServeFlags& s = flags.serve;
  bool help = false;
  bool version = false;
  FlagTable table;
  table.valued["config.file"] = set_string(s.config_file);
  table.valued["web.listen-address"] =
      [&s](const std::string& value) -> std::expected<void, std::string> {
    auto parsed = parse_listen_address(value);
    if (!parsed) return std::unexpected("--web.listen-address: " + parsed.error());
    s.listen_addresses.push_back(value);
    return {};
  };
  table.valued["log.level"] =
      set_one_of("log.level", s.log_level, {"debug", "info", "warn", "error"});
  table.valued["log.format"] = set_one_of("log.format", s.log_format, {"logfmt", "json"});
  table.valued["scheduler.workers"] = set_int("scheduler.workers", s.scheduler_workers);
  table.valued["scheduler.nice"] = set_int("scheduler.nice", s.scheduler_nice);
  table.valued["web.max-requests"] = set_int("web.max-requests", s.web_max_requests);
  table.valued["web.config.file"] = set_string(s.web_config_file);
  table.booleans["web.enable-lifecycle"] = &s.web_enable_lifecycle;
  table.valued["web.max-connections"] = set_int("web.max-connections", s.web_max_connections);
  table.valued["web.max-connections-per-client"] =
      set_int("web.max-connections-per-client", s.web_max_connections_per_client);
  table.valued["shard"] = set_int("shard", s.shard);
  table.valued["total-shards"] = set_int("total-shards", s.total_shards);
  table.booleans["config.check"] = &s.config_check;
  table.booleans["help"] = &help;
  table.booleans["version"] = &version;
  auto positional = table.parse(args, 0);
  if (!positional) return std::unexpected(positional.error());
  if (!positional->empty()) return std::unexpected("unexpected argument: " + positional->front());
  if (s.scheduler_workers < 0 || s.scheduler_workers > kMaxSchedulerWorkers) {
    return std::unexpected("--scheduler.workers: expected 0.." +
                           std::to_string(kMaxSchedulerWorkers));
  }
  if (s.scheduler_nice < 0 || s.scheduler_nice > 19) {
    return std::unexpected("--scheduler.nice: expected 0..19");
  }
  if (s.web_max_requests < 1 || s.web_max_requests > 1024) {
    return std::unexpected("--web.max-requests: expected 1..1024");
  }
  if (s.web_max_connections < 1 || s.web_max_connections > 65536) {
    return std::unexpected("--web.max-connections: expected 1..65536");
  }
  if (s.web_max_connections_per_client < 0 ||
      s.web_max_connections_per_client > s.web_max_connections) {
    return std::unexpected("--web.max-connections-per-client: expected 0 (no cap) .. " +
                           std::to_string(s.web_max_connections) + " (--web.max-connections)");
  }
  if (s.total_shards < 1) return std::unexpected("--total-shards: expected at least 1");
  if (s.shard < 0 || s.shard >= s.total_shards) {
    return std::unexpected("--shard: expected 0.." + std::to_string(s.total_shards - 1) +
                           " (less than --total-shards=" + std::to_string(s.total_shards) + ")");
  }
  if (s.listen_addresses.empty()) s.listen_addresses.push_back(":" + std::to_string(kDefaultPort));
  if (help) flags.command = Flags::Command::kHelp;
  if (version) flags.command = Flags::Command::kVersion;
  return flags;
}

std::expected<ListenAddress, std::string> parse_listen_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return std::unexpected("expected [HOST]:PORT: " + address);
  ListenAddress result;
  result.host = address.substr(0, colon);
  if (result.host.size() >= 2 && result.host.front() == '[' && result.host.back() == ']') {
    result.host = result.host.substr(1, result.host.size() - 2);
  }
  if (result.host.empty()) result.host = "0.0.0.0";
  auto port = parse_int("port", address.substr(colon + 1));
  if (!port || *port < 0 || *port > 65535) return std::unexpected("bad port in " + address);
  result.port = *port;
  return result;
}

std::string usage_text() {
  return R"(usage: winrm_exporter [flags]
       winrm_exporter query [query flags] "SELECT ..."   (see winrm_exporter query --help)

Prometheus exporter for Windows hosts, polled with WMI WQL over WinRM.

Flags:
  --config.file=FILE          Configuration file (default: winrm_exporter.yml).
  --config.check              Validate the configuration, print a summary, exit 0 (valid) or 1.
  --web.listen-address=ADDR   Address to listen on, [HOST]:PORT; repeatable (default: :9725).
  --web.max-requests=N        HTTP worker threads serving scrapes at once (default: 8).
  --web.max-connections=N     Open connections to the listener (default: 1024). A request
                              must arrive whole within 10 s of its first byte, or 408.
  --web.max-connections-per-client=N
                              Open connections from one client address (default: 256;
                              0: no cap); beyond it new connections are closed.
  --web.config.file=FILE      TLS, client certificates, basic auth and response headers for
                              the listener, in the Prometheus exporter-toolkit format (see
                              SECURITY.md). Default: plain HTTP, no authentication.
  --web.enable-lifecycle      Accept POST/PUT /-/reload (default: off, 403). SIGHUP always
                              reloads.
  --scheduler.workers=N       Poll worker threads, 0..2048. Polls hold no worker while
                              their requests are in flight (one I/O thread drives them);
                              workers run their CPU steps. 0 (the default): one per core,
                              at least 4, at most concurrency x per_target_concurrency;
                              reloads resize it.
  --scheduler.nice=N          Nice levels the polling threads (workers, the WinRM I/O
                              thread) run below the web threads, 0..19 (default: 0, equal
                              terms); above 0 the web workers also ask for a 0.1 ms slice
                              (the loop thread always does; polling threads always run as
                              SCHED_BATCH). Serves /probe ahead of polling on a busy core,
                              but slows polls while scrapes render; at 10 and more other
                              work on the host (even nice 19) takes the polls' CPU: polls
                              missed at 10,000 hosts (docs/sizing.md).
  --shard=N                   This instance's shard, 0..total-shards-1 (default: 0).
  --total-shards=M            Split the configured targets across M instances (default: 1).
                              An instance polls and serves only the targets whose Prometheus
                              hashmod (MD5, last 8 bytes big-endian, mod M) of the target
                              name equals --shard; /sd lists them.
  --log.level=LEVEL           debug, info, warn or error (default: info).
  --log.format=FORMAT         logfmt or json (default: logfmt).
  --version                   Print version information and exit.
  --help                      Print this help and exit.

Endpoints: / (landing page), /metrics, /probe?target=NAME, /sd (Prometheus http_sd),
/-/healthy, /-/ready, POST /-/reload (with --web.enable-lifecycle). SIGHUP reloads the
configuration and the web configuration. With basic_auth_users every endpoint needs them.
)";
}

std::string query_usage_text() {
  return R"(usage: winrm_exporter query --config.file=FILE --target=NAME [flags] "SELECT ..."
       winrm_exporter query --host=HOST --user=USER --password-file=FILE [flags] "SELECT ..."

Runs one WQL query and prints the rows as JSON Lines (one object per row; property
name -> string, null for nil, arrays as JSON arrays). Errors go to stderr with their
kind and WSManFault code; the exit status is 1 on error, 2 on bad usage.

Flags:
  --config.file=FILE         Exporter configuration to take the target from.
  --target=NAME              Target name in the configuration.
  --namespace=NS             WMI namespace (default: root/cimv2).
  --host=HOST                Host name (TLS name, Host header) when no configuration is used.
  --port=PORT                Port (default: 5986 for https, 5985 for http).
  --scheme=https|http        (default: https).
  --user=USER                User name for Basic auth.
  --password-file=FILE       File holding the password (first line).
  --connect-address=ADDR     Connect here instead of resolving HOST.
  --ca-file=FILE             CA bundle to verify the server certificate.
  --insecure-skip-verify     Do not verify the server certificate (logged).
  --no-verify-relates-to     Accept responses whose RelatesTo does not match the request
                             (servers replaying captured responses).
  --timeout=DURATION         Overall deadline, e.g. 30s (default: 30s).
  --max-envelope-size=BYTES  w:MaxEnvelopeSize (default: the target's winrm.max_envelope_size,
                             else 512000; Windows Server 2008 R2 hosts accept 153600).
  --max-elements=N           Items per page (default: the target's, else 32000).
  --locale=LANG              w:Locale of fault texts, e.g. de-DE (default: the target's, else
                             en-US).
  --log.level=LEVEL          debug, info, warn or error (default: warn).
  --help                     Print this help and exit.
)";
}

}  // namespace exporter
