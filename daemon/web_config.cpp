#include "web_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/duration.h"
#include "common/strings.h"
#include "common/yaml.h"

namespace exporter {

namespace {

namespace fs = std::filesystem;

// "FILE:LINE" for messages (common::yaml::Source), and paths relative to the file.
class Where {
 public:
  explicit Where(std::string path) : source_(path), path_(std::move(path)) {}
  std::string at(const YAML::Node& node) const { return source_.where(node); }
  [[noreturn]] void fail(const YAML::Node& node, const std::string& field,
                         const std::string& problem) const {
    throw WebConfigError(at(node) + ": " + field + ": " + problem);
  }
  std::string resolve(const std::string& file) const {
    fs::path p(file);
    if (p.is_absolute()) return file;
    fs::path dir = fs::path(path_).parent_path();
    return (dir.empty() ? p : dir / p).lexically_normal().string();
  }

 private:
  common::yaml::Source source_;
  std::string path_;
};

struct Entry {
  YAML::Node key;
  YAML::Node value;
  std::string field;
};

// The entries of a mapping, rejecting unknown and repeated keys. `unsupported` names
// exporter-toolkit options this exporter does not implement, with the reason.
std::map<std::string, Entry> read_map(const Where& where, const YAML::Node& node,
                                      const std::string& field,
                                      const std::vector<std::string>& allowed,
                                      const std::map<std::string, std::string>& unsupported = {}) {
  if (!node.IsMap()) where.fail(node, field.empty() ? "(top level)" : field, "expected a mapping");
  const std::vector<std::string_view> keys(allowed.begin(), allowed.end());
  if (auto problem = common::yaml::check_keys(node, keys)) {
    using Kind = common::yaml::KeyProblem::Kind;
    const std::string path = field.empty() ? problem->name : field + "." + problem->name;
    if (problem->kind == Kind::kNotScalar)
      where.fail(problem->key, field, "keys must be plain strings");
    if (problem->kind == Kind::kRepeated) where.fail(problem->key, path, "repeated key");
    if (auto reason = unsupported.find(problem->name); reason != unsupported.end()) {
      where.fail(problem->key, path, "not supported: " + reason->second);
    }
    std::string list;
    for (const auto& known : allowed) list += (list.empty() ? "" : ", ") + known;
    where.fail(problem->key, path, "unknown key" + problem->suggestion + " (known: " + list + ")");
  }
  std::map<std::string, Entry> entries;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;  // a copy: it->first is a temporary proxy
    std::string name = key.Scalar();
    std::string path = field.empty() ? name : field + "." + name;
    entries.emplace(name, Entry{key, it->second, path});
  }
  return entries;
}

const YAML::Node& value_node(const Entry& entry) {
  return entry.value.IsNull() ? entry.key : entry.value;
}

std::string scalar(const Where& where, const Entry& entry) {
  if (!entry.value.IsScalar() || entry.value.Scalar().empty()) {
    where.fail(value_node(entry), entry.field, "expected a non-empty string");
  }
  return entry.value.Scalar();
}

bool boolean(const Where& where, const Entry& entry) {
  std::string text = scalar(where, entry);
  if (text == "true") return true;
  if (text == "false") return false;
  where.fail(entry.value, entry.field, "expected true or false, got " + text);
}

std::vector<std::string> string_list(const Where& where, const Entry& entry) {
  if (entry.value.IsNull()) return {};
  if (!entry.value.IsSequence()) where.fail(entry.value, entry.field, "expected a list");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < entry.value.size(); ++i) {
    YAML::Node item = entry.value[i];
    std::string field = entry.field + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || item.Scalar().empty()) {
      where.fail(item, field, "expected a non-empty string");
    }
    out.push_back(item.Scalar());
  }
  return out;
}

int tls_version(const Where& where, const Entry& entry) {
  static const std::map<std::string, int> kVersions = {
      {"TLS10", 0x0301}, {"TLS11", 0x0302}, {"TLS12", 0x0303}, {"TLS13", 0x0304}};
  std::string text = scalar(where, entry);
  auto it = kVersions.find(text);
  if (it == kVersions.end()) {
    where.fail(entry.value, entry.field, "expected TLS10, TLS11, TLS12 or TLS13, got " + text);
  }
  return it->second;
}

ClientAuth client_auth(const Where& where, const Entry& entry) {
  static const std::map<std::string, ClientAuth> kTypes = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert}};
  std::string text = scalar(where, entry);
  auto it = kTypes.find(text);
  if (it == kTypes.end()) {
    where.fail(entry.value, entry.field,
               "expected NoClientCert, RequestClientCert, RequireAnyClientCert, "
               "VerifyClientCertIfGiven or RequireAndVerifyClientCert, got " +
                   text);
  }
  return it->second;
}

TlsServerSettings read_tls(const Where& where, const YAML::Node& node) {
  const std::string field = "tls_server_config";
  auto entries = read_map(
      where, node, field,
      {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
       "cipher_suites", "prefer_server_cipher_suites", "curve_preferences", "client_allowed_sans"},
      {{"cert", "inline PEM; put the certificate in a file and use cert_file"},
       {"key", "inline PEM; put the key in a file (mode 0600) and use key_file"},
       {"client_ca", "inline PEM; put the CA in a file and use client_ca_file"}});
  TlsServerSettings tls;
  auto file = [&](const char* key, std::string& out) {
    if (auto it = entries.find(key); it != entries.end()) {
      out = where.resolve(scalar(where, it->second));
    }
  };
  file("cert_file", tls.cert_file);
  file("key_file", tls.key_file);
  file("client_ca_file", tls.client_ca_file);
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    where.fail(node, field, "cert_file and key_file are both required");
  }
  bool auth_given = entries.contains("client_auth_type");
  if (auth_given) {
    tls.client_auth = client_auth(where, entries.at("client_auth_type"));
  } else if (!tls.client_ca_file.empty()) {
    // exporter-toolkit's default when only a client CA is given.
    tls.client_auth = ClientAuth::kRequireAndVerifyClientCert;
  }
  bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                  tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
  if (verifies && tls.client_ca_file.empty()) {
    where.fail(entries.at("client_auth_type").value, field + ".client_auth_type",
               "needs client_ca_file to verify client certificates against");
  }
  if (!verifies && !tls.client_ca_file.empty()) {
    where.fail(entries.at("client_ca_file").value, field + ".client_ca_file",
               "is only used with client_auth_type VerifyClientCertIfGiven or "
               "RequireAndVerifyClientCert");
  }
  if (auto it = entries.find("min_version"); it != entries.end()) {
    tls.min_version = tls_version(where, it->second);
  }
  if (auto it = entries.find("max_version"); it != entries.end()) {
    tls.max_version = tls_version(where, it->second);
    if (tls.max_version < tls.min_version) {
      where.fail(it->second.value, it->second.field, "lower than min_version");
    }
  }
  if (auto it = entries.find("cipher_suites"); it != entries.end()) {
    tls.cipher_suites = string_list(where, it->second);
  }
  if (auto it = entries.find("prefer_server_cipher_suites"); it != entries.end()) {
    tls.prefer_server_cipher_suites = boolean(where, it->second);
  }
  if (auto it = entries.find("curve_preferences"); it != entries.end()) {
    tls.curve_preferences = string_list(where, it->second);
    static const std::set<std::string> kCurves = {"CurveP256", "CurveP384", "CurveP521", "X25519"};
    for (std::size_t i = 0; i < tls.curve_preferences.size(); ++i) {
      if (!kCurves.contains(tls.curve_preferences[i])) {
        where.fail(
            it->second.value[i], it->second.field,
            "expected CurveP256, CurveP384, CurveP521 or X25519, got " + tls.curve_preferences[i]);
      }
    }
  }
  if (auto it = entries.find("client_allowed_sans"); it != entries.end()) {
    tls.client_allowed_sans = string_list(where, it->second);
    if (!tls.client_allowed_sans.empty() && tls.client_auth != ClientAuth::kRequireAnyClientCert &&
        tls.client_auth != ClientAuth::kRequireAndVerifyClientCert) {
      where.fail(it->second.value, it->second.field,
                 "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert");
    }
  }
  return tls;
}

std::vector<std::pair<std::string, std::string>> read_headers(const Where& where,
                                                              const YAML::Node& node,
                                                              const std::string& field) {
  // The headers exporter-toolkit allows; anything else is an error there too.
  auto entries = read_map(where, node, field,
                          {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                           "X-XSS-Protection", "Strict-Transport-Security"});
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, entry] : entries) {
    if (entry.value.IsNull() || (entry.value.IsScalar() && entry.value.Scalar().empty())) continue;
    std::string value = scalar(where, entry);
    if (value.find_first_of("\r\n") != std::string::npos) {
      where.fail(entry.value, entry.field, "line breaks are not allowed");
    }
    const std::string lowered = common::to_lower(value);
    if (name == "X-Frame-Options" && lowered != "deny" && lowered != "sameorigin") {
      where.fail(entry.value, entry.field, "expected deny or sameorigin, got " + value);
    }
    if (name == "X-Content-Type-Options" && lowered != "nosniff") {
      where.fail(entry.value, entry.field, "expected nosniff, got " + value);
    }
    headers.emplace_back(name, value);
  }
  return headers;
}

}  // namespace

WebConfig parse_web_config(const std::string& text, const std::string& path) {
  Where where(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw WebConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": yaml: " + e.msg);
  } catch (const YAML::Exception& e) {
    throw WebConfigError(path + ": yaml: " + e.what());
  }
  WebConfig config;
  config.path = path;
  if (root.IsNull()) return config;  // an empty file: plain HTTP, no auth
  auto entries =
      read_map(where, root, "",
               {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"});
  if (auto it = entries.find("tls_server_config"); it != entries.end()) {
    config.tls = read_tls(where, it->second.value);
  }
  if (auto it = entries.find("http_server_config"); it != entries.end()) {
    auto http = read_map(where, it->second.value, it->second.field, {"http2", "headers"});
    if (auto h2 = http.find("http2"); h2 != http.end()) {
      (void)boolean(where, h2->second);  // HTTP/1.1 only; accepted for compatibility
    }
    if (auto h = http.find("headers"); h != http.end() && !h->second.value.IsNull()) {
      config.headers = read_headers(where, h->second.value, h->second.field);
    }
  }
  if (auto it = entries.find("basic_auth_users"); it != entries.end()) {
    const Entry& users = it->second;
    if (!users.value.IsNull()) {
      if (!users.value.IsMap()) where.fail(users.value, users.field, "expected a mapping");
      // $2a$/$2b$/$2y$ (htpasswd -B writes 2y), cost, 22 salt and 31 hash characters.
      static const std::regex kBcrypt(R"(^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$)");
      for (auto user = users.value.begin(); user != users.value.end(); ++user) {
        const YAML::Node name = user->first;
        const YAML::Node hash = user->second;
        if (!name.IsScalar() || name.Scalar().empty() ||
            name.Scalar().find(':') != std::string::npos) {
          where.fail(name, users.field, "user names must be non-empty strings without ':'");
        }
        std::string field = users.field + "." + name.Scalar();
        if (config.basic_auth_users.contains(name.Scalar())) {
          where.fail(name, field, "repeated user");
        }
        // The message never quotes the value: it may be a plain password by mistake.
        if (!hash.IsScalar() || !std::regex_match(hash.Scalar(), kBcrypt)) {
          where.fail(hash.IsDefined() && !hash.IsNull() ? hash : name, field,
                     "expected a bcrypt hash ($2y$10$..., e.g. from htpasswd -nBC 10 \"\")");
        }
        config.basic_auth_users.emplace(name.Scalar(), hash.Scalar());
      }
    }
  }
  if (auto it = entries.find("rate_limit"); it != entries.end()) {
    auto limit = read_map(where, it->second.value, it->second.field, {"interval", "burst"});
    if (auto interval = limit.find("interval"); interval != limit.end()) {
      // exporter-toolkit reads Go durations ("0", "500ms", "1.5s", "1m30s").
      auto parsed =
          common::parse_duration(scalar(where, interval->second), common::DurationSyntax::kGo);
      if (!parsed) {
        where.fail(interval->second.value, interval->second.field,
                   "expected a duration like 1s or 100ms");
      }
      config.rate_limit_interval = *parsed;
    }
    if (auto burst = limit.find("burst"); burst != limit.end()) {
      std::string text = scalar(where, burst->second);
      int value = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) {
        where.fail(burst->second.value, burst->second.field, "expected a non-negative integer");
      }
      config.rate_limit_burst = value;
    }
    if (config.rate_limit_interval.count() > 0 && config.rate_limit_burst < 1) {
      where.fail(it->second.value, it->second.field, "burst must be at least 1");
    }
  }
  return config;
}

WebConfig load_web_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw WebConfigError(path + ": cannot read: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return parse_web_config(text.str(), path);
}

}  // namespace exporter
