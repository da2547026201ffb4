#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/strings.h"

namespace sim {
namespace {

std::string lower(const std::string& s) { return common::to_lower(s); }

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error("config: " + where + ": " + what);
}

void check_keys(const YAML::Node& node, const std::string& where,
                const std::set<std::string>& allowed) {
  if (!node.IsMap()) fail(where, "expected a mapping");
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    if (!allowed.contains(key)) fail(where, "unknown key '" + key + "'");
  }
}

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute() || base_dir.empty()) return p;
  return (std::filesystem::path(base_dir) / path).string();
}

template <typename T>
T scalar(const YAML::Node& node, const std::string& where) {
  try {
    return node.as<T>();
  } catch (const YAML::Exception& e) {
    fail(where, "bad value");
  }
}

ListenerConfig parse_listener(const YAML::Node& node, const std::string& where, bool tls,
                              const std::string& base_dir) {
  if (tls) {
    check_keys(node, where, {"address", "port", "cert", "key", "client_ca"});
  } else {
    check_keys(node, where, {"address", "port"});
  }
  ListenerConfig l;
  l.enabled = true;
  if (node["address"]) l.address = scalar<std::string>(node["address"], where + ".address");
  if (node["port"]) l.port = scalar<int>(node["port"], where + ".port");
  if (l.port < 0 || l.port > 65535) fail(where + ".port", "out of range");
  if (tls) {
    if (!node["cert"] || !node["key"]) fail(where, "cert and key are required");
    l.cert = resolve(base_dir, scalar<std::string>(node["cert"], where + ".cert"));
    l.key = resolve(base_dir, scalar<std::string>(node["key"], where + ".key"));
    if (node["client_ca"])
      l.client_ca = resolve(base_dir, scalar<std::string>(node["client_ca"], where + ".client_ca"));
  }
  return l;
}

LatencyProfile parse_profile(const YAML::Node& node, const std::string& where, LatencyProfile p) {
  check_keys(node, where, {"median", "p99"});
  if (node["median"]) p.median = parse_duration(scalar<std::string>(node["median"], where));
  if (node["p99"]) p.p99 = parse_duration(scalar<std::string>(node["p99"], where));
  if (p.p99 < p.median) fail(where, "p99 must be >= median");
  return p;
}

// `latency:` turns the model on; every key has a Windows-like default.
LatencyConfig parse_latency(const YAML::Node& node) {
  LatencyConfig l;
  l.enabled = true;
  if (node.IsNull()) return l;
  check_keys(node, "latency", {"enabled", "seed", "default", "perf", "slow", "stall"});
  if (node["enabled"]) l.enabled = scalar<bool>(node["enabled"], "latency.enabled");
  if (node["seed"]) l.seed = scalar<std::uint64_t>(node["seed"], "latency.seed");
  if (node["default"]) l.fallback = parse_profile(node["default"], "latency.default", l.fallback);
  if (node["perf"]) l.perf = parse_profile(node["perf"], "latency.perf", l.perf);
  if (node["slow"]) l.slow = parse_profile(node["slow"], "latency.slow", l.slow);
  if (const auto& st = node["stall"]; st) {
    if (st.IsScalar()) {
      l.stall = scalar<bool>(st, "latency.stall");
    } else {
      check_keys(st, "latency.stall", {"every", "duration", "delay"});
      if (st["every"])
        l.stall_every = parse_duration(scalar<std::string>(st["every"], "latency.stall.every"));
      if (st["duration"])
        l.stall_duration =
            parse_duration(scalar<std::string>(st["duration"], "latency.stall.duration"));
      if (st["delay"])
        l.stall_delay = parse_duration(scalar<std::string>(st["delay"], "latency.stall.delay"));
      if (l.stall_every.count() <= 0 || l.stall_duration > l.stall_every)
        fail("latency.stall", "need every > 0 and duration <= every");
    }
  }
  return l;
}

HostConfig parse_host(const YAML::Node& node, const std::string& where) {
  check_keys(node, where,
             {"name", "cpus", "disks", "nics", "services", "processes", "delay",
              "trickle_bytes_per_second", "close_mid_body", "fault", "pull_timeouts",
              "expire_context_once", "malformed_xml", "oversized_bytes", "always_401", "auth",
              "clock_offset"});
  HostConfig h;
  if (!node["name"]) fail(where, "name is required");
  h.name = lower(scalar<std::string>(node["name"], where + ".name"));
  auto opt_int = [&](const char* key, std::optional<int>& out, int lo, int hi) {
    if (!node[key]) return;
    int v = scalar<int>(node[key], where + "." + key);
    if (v < lo || v > hi) fail(where + "." + key, "out of range");
    out = v;
  };
  opt_int("cpus", h.cpus, 1, 256);
  opt_int("disks", h.disks, 1, 24);
  opt_int("nics", h.nics, 1, 16);
  opt_int("services", h.services, 1, 2000);
  opt_int("processes", h.processes, 2, 5000);
  if (node["delay"]) h.delay = parse_duration(scalar<std::string>(node["delay"], where + ".delay"));
  // Seconds the host clock is ahead of true time (negative: behind); the default is a seeded
  // draw in [-2, 2] s per host.
  if (node["clock_offset"]) {
    const double offset = scalar<double>(node["clock_offset"], where + ".clock_offset");
    if (!std::isfinite(offset) || std::abs(offset) > 86400 * 365.0)
      fail(where + ".clock_offset", "must be a number of seconds within a year");
    h.clock_offset_s = offset;
  }
  if (node["trickle_bytes_per_second"])
    h.trickle_bytes_per_second = scalar<std::uint64_t>(node["trickle_bytes_per_second"],
                                                       where + ".trickle_bytes_per_second");
  if (node["close_mid_body"])
    h.close_mid_body = scalar<bool>(node["close_mid_body"], where + ".close_mid_body");
  if (node["fault"]) {
    h.fault = lower(scalar<std::string>(node["fault"], where + ".fault"));
    const auto& names = known_fault_names();
    if (std::find(names.begin(), names.end(), h.fault) == names.end())
      fail(where + ".fault", "unknown fault '" + h.fault + "'");
  }
  if (node["pull_timeouts"])
    h.pull_timeouts = scalar<int>(node["pull_timeouts"], where + ".pull_timeouts");
  if (node["expire_context_once"])
    h.expire_context_once =
        scalar<bool>(node["expire_context_once"], where + ".expire_context_once");
  if (node["malformed_xml"])
    h.malformed_xml = scalar<bool>(node["malformed_xml"], where + ".malformed_xml");
  if (node["oversized_bytes"])
    h.oversized_bytes = scalar<std::uint64_t>(node["oversized_bytes"], where + ".oversized_bytes");
  if (node["always_401"]) h.always_401 = scalar<bool>(node["always_401"], where + ".always_401");
  if (node["auth"]) {
    if (!node["auth"].IsSequence()) fail(where + ".auth", "expected a list");
    h.auth.clear();
    for (const auto& a : node["auth"]) {
      auto scheme = lower(scalar<std::string>(a, where + ".auth"));
      if (scheme != "basic" && scheme != "negotiate" && scheme != "kerberos" &&
          scheme != "certificate")
        fail(where + ".auth", "unknown scheme '" + scheme + "'");
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

Millis parse_duration(const std::string& text) {
  if (text.empty()) throw std::runtime_error("config: empty duration");
  std::size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw std::runtime_error("config: bad duration '" + text + "'");
  }
  const std::string unit = text.substr(pos);
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = value * 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "m") {
    ms = value * 60000;
  } else if (unit == "h") {
    ms = value * 3600000;
  } else {
    throw std::runtime_error("config: bad duration unit in '" + text + "'");
  }
  if (ms < 0) throw std::runtime_error("config: negative duration '" + text + "'");
  return Millis(static_cast<long long>(ms));
}

SimConfig parse_config(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(std::string("config: YAML error: ") + e.what());
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  check_keys(root, "top level",
             {"https", "http", "keep_alive_timeout", "page_size", "threads", "loop_threads",
              "max_connections", "enumeration_timeout", "users", "hosts", "replay", "negotiate",
              "latency", "client_certificates"});
  SimConfig c;
  if (root["https"]) c.https = parse_listener(root["https"], "https", true, base_dir);
  if (root["http"]) c.http = parse_listener(root["http"], "http", false, base_dir);
  if (!c.https.enabled && !c.http.enabled) fail("top level", "need an https or http listener");
  if (root["keep_alive_timeout"])
    c.keep_alive_timeout =
        parse_duration(scalar<std::string>(root["keep_alive_timeout"], "keep_alive_timeout"));
  if (root["enumeration_timeout"])
    c.enumeration_timeout =
        parse_duration(scalar<std::string>(root["enumeration_timeout"], "enumeration_timeout"));
  if (root["page_size"]) c.page_size = scalar<int>(root["page_size"], "page_size");
  if (c.page_size < 1) fail("page_size", "must be >= 1");
  if (root["threads"]) c.threads = scalar<int>(root["threads"], "threads");
  if (c.threads < 1 || c.threads > 1024) fail("threads", "out of range");
  if (root["loop_threads"]) c.loop_threads = scalar<int>(root["loop_threads"], "loop_threads");
  if (c.loop_threads < 1 || c.loop_threads > 64) fail("loop_threads", "out of range");
  if (root["max_connections"])
    c.max_connections = scalar<int>(root["max_connections"], "max_connections");
  if (c.max_connections < 1) fail("max_connections", "must be >= 1");
  if (root["users"]) {
    if (!root["users"].IsSequence()) fail("users", "expected a list");
    for (const auto& u : root["users"]) {
      check_keys(u, "users[]", {"username", "password"});
      if (!u["username"] || !u["password"]) fail("users[]", "username and password are required");
      c.users.push_back({scalar<std::string>(u["username"], "users[].username"),
                         scalar<std::string>(u["password"], "users[].password")});
    }
  }
  if (root["client_certificates"]) {
    const auto& list = root["client_certificates"];
    if (!list.IsSequence()) fail("client_certificates", "expected a list");
    if (c.https.client_ca.empty()) fail("client_certificates", "needs https.client_ca");
    for (const auto& m : list) {
      check_keys(m, "client_certificates[]", {"subject", "user"});
      if (!m["subject"] || !m["user"])
        fail("client_certificates[]", "subject and user are required");
      c.client_certificates.push_back(
          {scalar<std::string>(m["subject"], "client_certificates[].subject"),
           scalar<std::string>(m["user"], "client_certificates[].user")});
    }
  }
  if (root["hosts"]) {
    if (!root["hosts"].IsSequence()) fail("hosts", "expected a list");
    for (const auto& h : root["hosts"]) c.hosts.push_back(parse_host(h, "hosts[]"));
  }
  if (root["replay"]) {
    if (!root["replay"].IsSequence()) fail("replay", "expected a list");
    for (const auto& f : root["replay"])
      c.replay.push_back(resolve(base_dir, scalar<std::string>(f, "replay[]")));
  }
  if (root["negotiate"]) {
    const auto& n = root["negotiate"];
    check_keys(n, "negotiate",
               {"keytab", "require_encryption_on_http", "cbt", "ntlm", "ntlm_domain"});
    c.negotiate.enabled = true;
    if (n["keytab"])
      c.negotiate.keytab = resolve(base_dir, scalar<std::string>(n["keytab"], "negotiate.keytab"));
    if (n["require_encryption_on_http"])
      c.negotiate.require_encryption_on_http =
          scalar<bool>(n["require_encryption_on_http"], "negotiate.require_encryption_on_http");
    if (n["cbt"]) {
      c.negotiate.cbt = lower(scalar<std::string>(n["cbt"], "negotiate.cbt"));
      if (c.negotiate.cbt != "none" && c.negotiate.cbt != "relaxed" && c.negotiate.cbt != "strict")
        fail("negotiate.cbt", "expected none, relaxed or strict");
    }
    if (n["ntlm"]) c.negotiate.ntlm = scalar<bool>(n["ntlm"], "negotiate.ntlm");
    if (n["ntlm_domain"])
      c.negotiate.ntlm_domain = scalar<std::string>(n["ntlm_domain"], "negotiate.ntlm_domain");
    if (!c.negotiate.ntlm && c.negotiate.keytab.empty())
      fail("negotiate", "needs a keytab, or ntlm: true");
    if (c.negotiate.ntlm) {
      if (c.users.empty()) fail("negotiate.ntlm", "needs users: (the NTLM accounts)");
      // gss-ntlmssp's user file is "DOMAIN:user:password" lines.
      auto unfit = [](const std::string& text) {
        return text.find_first_of(":\r\n") != std::string::npos;
      };
      if (c.negotiate.ntlm_domain.empty() || unfit(c.negotiate.ntlm_domain))
        fail("negotiate.ntlm_domain", "must be non-empty without ':' or line breaks");
      for (const auto& u : c.users) {
        if (unfit(u.username) || unfit(u.password))
          fail("users[]", "with negotiate.ntlm, user '" + u.username +
                              "': username and password must not contain ':' or line breaks");
      }
    }
  }
  if (root["latency"]) c.latency = parse_latency(root["latency"]);
  return c;
}

SimConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("config: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto base = std::filesystem::absolute(path).parent_path().string();
  return parse_config(ss.str(), base);
}

}  // namespace sim
