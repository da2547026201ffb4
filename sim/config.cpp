#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "common/strings.h"
#include "common/yaml.h"
#include "yaml_doc.h"

namespace sim {
namespace {

std::string lower(const std::string& s) { return common::to_lower(s); }

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute() || base_dir.empty()) return p;
  return (std::filesystem::path(base_dir) / path).string();
}

ListenerConfig parse_listener(const YamlDoc& d, const YAML::Node& node, const std::string& where,
                              bool tls, const std::string& base_dir) {
  if (tls) {
    d.check_keys(node, where, {"address", "port", "cert", "key", "client_ca"});
  } else {
    d.check_keys(node, where, {"address", "port"});
  }
  ListenerConfig l;
  l.enabled = true;
  if (node["address"]) l.address = d.scalar<std::string>(node["address"], where + ".address");
  if (node["port"]) l.port = d.scalar<int>(node["port"], where + ".port");
  if (l.port < 0 || l.port > 65535) d.fail(node["port"], where + ".port", "out of range");
  if (tls) {
    if (!node["cert"] || !node["key"]) d.fail(node, where, "cert and key are required");
    l.cert = resolve(base_dir, d.scalar<std::string>(node["cert"], where + ".cert"));
    l.key = resolve(base_dir, d.scalar<std::string>(node["key"], where + ".key"));
    if (node["client_ca"])
      l.client_ca =
          resolve(base_dir, d.scalar<std::string>(node["client_ca"], where + ".client_ca"));
  }
  return l;
}

LatencyProfile parse_profile(const YamlDoc& d, const YAML::Node& node, const std::string& where,
                             LatencyProfile p) {
  d.check_keys(node, where, {"median", "p99"});
  if (node["median"]) p.median = d.duration(node["median"], where + ".median");
  if (node["p99"]) p.p99 = d.duration(node["p99"], where + ".p99");
  if (p.p99 < p.median) d.fail(node, where, "p99 must be >= median");
  return p;
}

// `latency:` turns the model on; every key has a Windows-like default.
LatencyConfig parse_latency(const YamlDoc& d, const YAML::Node& node) {
  LatencyConfig l;
  l.enabled = true;
  if (node.IsNull()) return l;
  d.check_keys(node, "latency", {"enabled", "seed", "default", "perf", "slow", "stall"});
  if (node["enabled"]) l.enabled = d.scalar<bool>(node["enabled"], "latency.enabled");
  if (node["seed"]) l.seed = d.scalar<std::uint64_t>(node["seed"], "latency.seed");
  if (node["default"])
    l.fallback = parse_profile(d, node["default"], "latency.default", l.fallback);
  if (node["perf"]) l.perf = parse_profile(d, node["perf"], "latency.perf", l.perf);
  if (node["slow"]) l.slow = parse_profile(d, node["slow"], "latency.slow", l.slow);
  if (const auto& st = node["stall"]; st) {
    if (st.IsScalar()) {
      l.stall = d.scalar<bool>(st, "latency.stall");
    } else {
      d.check_keys(st, "latency.stall", {"every", "duration", "delay"});
      if (st["every"]) l.stall_every = d.duration(st["every"], "latency.stall.every");
      if (st["duration"]) l.stall_duration = d.duration(st["duration"], "latency.stall.duration");
      if (st["delay"]) l.stall_delay = d.duration(st["delay"], "latency.stall.delay");
      if (l.stall_every.count() <= 0 || l.stall_duration > l.stall_every)
        d.fail(st, "latency.stall", "need every > 0 and duration <= every");
    }
  }
  return l;
}

HostConfig parse_host(const YamlDoc& d, const YAML::Node& node, const std::string& where) {
  d.check_keys(node, where,
               {"name", "cpus", "disks", "nics", "services", "processes", "delay",
                "trickle_bytes_per_second", "close_mid_body", "fault", "pull_timeouts",
                "expire_context_once", "malformed_xml", "oversized_bytes", "always_401", "auth",
                "clock_offset"});
  HostConfig h;
  if (!node["name"]) d.fail(node, where, "name is required");
  h.name = lower(d.scalar<std::string>(node["name"], where + ".name"));
  auto opt_int = [&](const char* key, std::optional<int>& out, int lo, int hi) {
    if (!node[key]) return;
    int v = d.scalar<int>(node[key], where + "." + key);
    if (v < lo || v > hi) d.fail(node[key], where + "." + key, "out of range");
    out = v;
  };
  opt_int("cpus", h.cpus, 1, 256);
  opt_int("disks", h.disks, 1, 24);
  opt_int("nics", h.nics, 1, 16);
  opt_int("services", h.services, 1, 2000);
  opt_int("processes", h.processes, 2, 5000);
  if (node["delay"]) h.delay = d.duration(node["delay"], where + ".delay");
  // Seconds the host clock is ahead of true time (negative: behind); the default is a seeded
  // draw in [-2, 2] s per host.
  if (node["clock_offset"]) {
    const double offset = d.scalar<double>(node["clock_offset"], where + ".clock_offset");
    if (!std::isfinite(offset) || std::abs(offset) > 86400 * 365.0)
      d.fail(node["clock_offset"], where + ".clock_offset",
             "must be a number of seconds within a year");
    h.clock_offset_s = offset;
  }
  if (node["trickle_bytes_per_second"])
    h.trickle_bytes_per_second = d.scalar<std::uint64_t>(node["trickle_bytes_per_second"],
                                                         where + ".trickle_bytes_per_second");
  if (node["close_mid_body"])
    h.close_mid_body = d.scalar<bool>(node["close_mid_body"], where + ".close_mid_body");
  if (node["fault"]) {
    h.fault = lower(d.scalar<std::string>(node["fault"], where + ".fault"));
    const auto& names = known_fault_names();
    if (std::find(names.begin(), names.end(), h.fault) == names.end())
      d.fail(node["fault"], where + ".fault",
             "unknown fault '" + h.fault + "'" + common::yaml::did_you_mean(h.fault, names));
  }
  if (node["pull_timeouts"])
    h.pull_timeouts = d.scalar<int>(node["pull_timeouts"], where + ".pull_timeouts");
  if (node["expire_context_once"])
    h.expire_context_once =
        d.scalar<bool>(node["expire_context_once"], where + ".expire_context_once");
  if (node["malformed_xml"])
    h.malformed_xml = d.scalar<bool>(node["malformed_xml"], where + ".malformed_xml");
  if (node["oversized_bytes"])
    h.oversized_bytes =
        d.scalar<std::uint64_t>(node["oversized_bytes"], where + ".oversized_bytes");
  if (node["always_401"]) h.always_401 = d.scalar<bool>(node["always_401"], where + ".always_401");
  if (node["auth"]) {
    if (!node["auth"].IsSequence()) d.fail(node["auth"], where + ".auth", "expected a list");
    h.auth.clear();
    for (const auto& a : node["auth"]) {
      auto scheme = lower(d.scalar<std::string>(a, where + ".auth"));
      if (scheme != "basic" && scheme != "negotiate" && scheme != "kerberos" &&
          scheme != "certificate")
        d.fail(a, where + ".auth", "unknown scheme '" + scheme + "'");
      h.auth.push_back(scheme);
    }
  }
  return h;
}

}  // namespace

const std::vector<std::string>& known_fault_names() {
  static const std::vector<std::string> names{
      "access_denied", "invalid_class",   "invalid_resource_uri", "quota_exceeded",
      "timed_out",     "context_expired", "max_envelope",         "invalid_selectors"};
  return names;
}

namespace {

SimConfig parse_root(const YamlDoc& d, YAML::Node root, const std::string& base_dir) {
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  d.check_keys(root, "top level",
               {"https", "http", "keep_alive_timeout", "page_size", "threads", "loop_threads",
                "max_connections", "enumeration_timeout", "users", "hosts", "replay", "negotiate",
                "latency", "client_certificates"});
  SimConfig c;
  if (root["https"]) c.https = parse_listener(d, root["https"], "https", true, base_dir);
  if (root["http"]) c.http = parse_listener(d, root["http"], "http", false, base_dir);
  if (!c.https.enabled && !c.http.enabled)
    d.fail(root, "top level", "need an https or http listener");
  if (root["keep_alive_timeout"])
    c.keep_alive_timeout = d.duration(root["keep_alive_timeout"], "keep_alive_timeout");
  if (root["enumeration_timeout"])
    c.enumeration_timeout = d.duration(root["enumeration_timeout"], "enumeration_timeout");
  if (root["page_size"]) c.page_size = d.scalar<int>(root["page_size"], "page_size");
  if (c.page_size < 1) d.fail(root["page_size"], "page_size", "must be >= 1");
  if (root["threads"]) c.threads = d.scalar<int>(root["threads"], "threads");
  if (c.threads < 1 || c.threads > 1024) d.fail(root["threads"], "threads", "out of range");
  if (root["loop_threads"]) c.loop_threads = d.scalar<int>(root["loop_threads"], "loop_threads");
  if (c.loop_threads < 1 || c.loop_threads > 64)
    d.fail(root["loop_threads"], "loop_threads", "out of range");
  if (root["max_connections"])
    c.max_connections = d.scalar<int>(root["max_connections"], "max_connections");
  if (c.max_connections < 1) d.fail(root["max_connections"], "max_connections", "must be >= 1");
  if (const auto& users = root["users"]) {
    if (!users.IsSequence()) d.fail(users, "users", "expected a list");
    for (const auto& u : users) {
      d.check_keys(u, "users[]", {"username", "password"});
      if (!u["username"] || !u["password"])
        d.fail(u, "users[]", "username and password are required");
      c.users.push_back({d.scalar<std::string>(u["username"], "users[].username"),
                         d.scalar<std::string>(u["password"], "users[].password")});
    }
  }
  if (const auto& list = root["client_certificates"]) {
    if (!list.IsSequence()) d.fail(list, "client_certificates", "expected a list");
    if (c.https.client_ca.empty()) d.fail(list, "client_certificates", "needs https.client_ca");
    for (const auto& m : list) {
      d.check_keys(m, "client_certificates[]", {"subject", "user"});
      if (!m["subject"] || !m["user"])
        d.fail(m, "client_certificates[]", "subject and user are required");
      c.client_certificates.push_back(
          {d.scalar<std::string>(m["subject"], "client_certificates[].subject"),
           d.scalar<std::string>(m["user"], "client_certificates[].user")});
    }
  }
  if (const auto& hosts = root["hosts"]) {
    if (!hosts.IsSequence()) d.fail(hosts, "hosts", "expected a list");
    for (const auto& h : hosts) c.hosts.push_back(parse_host(d, h, "hosts[]"));
  }
  if (const auto& replay = root["replay"]) {
    if (!replay.IsSequence()) d.fail(replay, "replay", "expected a list");
    for (const auto& f : replay)
      c.replay.push_back(resolve(base_dir, d.scalar<std::string>(f, "replay[]")));
  }
  if (const auto& n = root["negotiate"]) {
    d.check_keys(n, "negotiate",
                 {"keytab", "require_encryption_on_http", "cbt", "ntlm", "ntlm_domain"});
    c.negotiate.enabled = true;
    if (n["keytab"])
      c.negotiate.keytab =
          resolve(base_dir, d.scalar<std::string>(n["keytab"], "negotiate.keytab"));
    if (n["require_encryption_on_http"])
      c.negotiate.require_encryption_on_http =
          d.scalar<bool>(n["require_encryption_on_http"], "negotiate.require_encryption_on_http");
    if (n["cbt"]) {
      c.negotiate.cbt = lower(d.scalar<std::string>(n["cbt"], "negotiate.cbt"));
      if (c.negotiate.cbt != "none" && c.negotiate.cbt != "relaxed" && c.negotiate.cbt != "strict")
        d.fail(n["cbt"], "negotiate.cbt", "expected none, relaxed or strict");
    }
    if (n["ntlm"]) c.negotiate.ntlm = d.scalar<bool>(n["ntlm"], "negotiate.ntlm");
    if (n["ntlm_domain"])
      c.negotiate.ntlm_domain = d.scalar<std::string>(n["ntlm_domain"], "negotiate.ntlm_domain");
    if (!c.negotiate.ntlm && c.negotiate.keytab.empty())
      d.fail(n, "negotiate", "needs a keytab, or ntlm: true");
    if (c.negotiate.ntlm) {
      if (c.users.empty()) d.fail(n, "negotiate.ntlm", "needs users: (the NTLM accounts)");
      // gss-ntlmssp's user file is "DOMAIN:user:password" lines.
      auto unfit = [](const std::string& text) {
        return text.find_first_of(":\r\n") != std::string::npos;
      };
      if (c.negotiate.ntlm_domain.empty() || unfit(c.negotiate.ntlm_domain))
        d.fail(n, "negotiate.ntlm_domain", "must be non-empty without ':' or line breaks");
      for (const auto& u : c.users) {
        if (unfit(u.username) || unfit(u.password))
          d.fail(root["users"], "users[]",
                 "with negotiate.ntlm, user '" + u.username +
                     "': username and password must not contain ':' or line breaks");
      }
    }
  }
  if (root["latency"]) c.latency = parse_latency(d, root["latency"]);
  return c;
}

}  // namespace

SimConfig parse_config(const std::string& yaml_text, const std::string& base_dir,
                       const std::string& name) {
  const YamlDoc d(name);
  // common::yaml::Error (syntax, unreadable file) is a std::runtime_error too.
  return parse_root(d, d.source().load(yaml_text), base_dir);
}

SimConfig load_config(const std::string& path) {
  const YamlDoc d(path);
  auto base = std::filesystem::absolute(path).parent_path().string();
  return parse_root(d, d.source().load_file(), base);
}

}  // namespace sim
