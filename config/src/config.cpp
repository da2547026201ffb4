// Loads the exporter's YAML config (format: config/CONFIG.md). Every problem becomes a
// ConfigError "FILE:LINE: field.path: problem"; secrets are read but never echoed.
#include "config/config.h"

#include <glob.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "collectors/definition.h"
#include "collectors/names.h"
#include "collectors/registry.h"
#include "common/yaml.h"

namespace config {
namespace {

namespace fs = std::filesystem;

// Where a value came from: "file:line" plus its dotted field path.
struct Loc {
  std::string where;
  std::string field;
};

[[noreturn]] void fail(const Loc& loc, const std::string& problem) {
  throw ConfigError(loc.where + ": " + loc.field + ": " + problem);
}

void warn(const Loc& loc, const std::string& problem) {
  spdlog::warn("config: {}: {}: {}", loc.where, loc.field, problem);
}

template <typename T>
struct Located {
  T value;
  Loc loc;
};

std::string quote(std::string_view text) { return "'" + std::string(text) + "'"; }

// " (did you mean 'x'?)" for the closest candidate within a small edit distance.
template <typename Range>
std::string suggestion(std::string_view word, const Range& candidates) {
  return common::yaml::did_you_mean(word, candidates);
}

// One YAML file being read (common::yaml::Source: marks -> "file:line"), plus relative
// paths resolved against its directory.
class File : public common::yaml::Source {
 public:
  explicit File(std::string path) : Source(std::move(path)) {
    const fs::path parent = fs::path(name()).parent_path();
    dir_ = parent.empty() ? fs::path(".") : parent;
  }

  const std::string& path() const { return name(); }

  // Relative paths in a file are relative to that file's directory.
  std::string resolve(const std::string& path) const {
    const fs::path p(path);
    return p.is_absolute() ? path : (dir_ / p).lexically_normal().string();
  }

  YAML::Node parse() const {
    try {
      return load_file();
    } catch (const common::yaml::Error& e) {
      throw ConfigError(e.what());
    }
  }

 private:
  fs::path dir_;
};

// A key/value pair in a mapping, with its location.
struct Field {
  const File* file;
  YAML::Node key;
  YAML::Node value;
  std::string path;

  // Value errors point at the value, except for null values (their mark is unreliable).
  Loc loc() const {
    const YAML::Mark mark =
        value.IsDefined() && !value.IsNull() && value.Mark().line >= 0 ? value.Mark() : key.Mark();
    return {file->where(mark), path};
  }
  Loc key_loc() const { return {file->where(key.Mark()), path}; }
};

std::string join(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

std::string index(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

const char* kind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    default:
      return "empty";
  }
}

// Reads a mapping, rejecting unknown and repeated keys.
class MapReader {
 public:
  MapReader(const File& file, const YAML::Node& node, const Loc& loc,
            const std::vector<std::string_view>& allowed)
      : file_(&file), path_(loc.field) {
    if (!node.IsMap()) {
      const Loc where{loc.where, path_.empty() ? "(top level)" : path_};
      fail(where, std::string("expected a mapping, got ") + kind(node));
    }
    if (auto problem = common::yaml::check_keys(node, allowed)) {
      using Kind = common::yaml::KeyProblem::Kind;
      const Loc key_loc{file.where(problem->key.Mark()),
                        problem->kind == Kind::kNotScalar ? path_ : join(path_, problem->name)};
      switch (problem->kind) {
        case Kind::kNotScalar:
          fail(key_loc, "keys must be plain strings");
        case Kind::kUnknown:
          fail(key_loc, "unknown key" + problem->suggestion);
        case Kind::kRepeated:
          fail(key_loc, "repeated key (first at " + file.where(problem->first.Mark()) + ")");
      }
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      // A copy: yaml-cpp's operator-> returns a proxy that dies with the full expression,
      // so a reference to it->first dangles (ASan: stack-use-after-scope).
      const YAML::Node key = it->first;
      const std::string name = key.Scalar();
      fields_.emplace(name, Field{file_, key, it->second, join(path_, name)});
    }
  }

  const Field* get(std::string_view key) const {
    auto it = fields_.find(std::string(key));
    return it == fields_.end() ? nullptr : &it->second;
  }

 private:
  const File* file_;
  std::string path_;
  std::map<std::string, Field> fields_;
};

std::string get_string(const Field& field) {
  if (field.value.IsNull()) fail(field.loc(), "missing value");
  if (!field.value.IsScalar()) {
    fail(field.loc(), std::string("expected a string, got ") + kind(field.value));
  }
  if (field.value.Scalar().empty()) fail(field.loc(), "must not be empty");
  return field.value.Scalar();
}

Located<std::string> located_string(const Field& field) { return {get_string(field), field.loc()}; }

Located<int> get_int(const Field& field, int min, int max) {
  const std::string text = get_string(field);
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    fail(field.loc(), "expected an integer, got " + quote(text));
  }
  if (value < min || value > max) {
    fail(field.loc(), std::to_string(value) + " is out of range " + std::to_string(min) + "-" +
                          std::to_string(max));
  }
  return {value, field.loc()};
}

Located<bool> get_bool(const Field& field) {
  std::string text = get_string(field);
  std::transform(text.begin(), text.end(), text.begin(), ::tolower);
  if (text == "true") return {true, field.loc()};
  if (text == "false") return {false, field.loc()};
  fail(field.loc(), "expected true or false, got " + quote(field.value.Scalar()));
}

Located<Duration> get_duration(const Field& field) {
  const std::string text = get_string(field);
  auto duration = parse_duration(text);
  if (!duration) {
    fail(field.loc(), "invalid duration " + quote(text) + " (use e.g. 500ms, 30s, 5m, 1h, 1m30s)");
  }
  if (duration->count() <= 0) fail(field.loc(), "must be greater than 0");
  return {*duration, field.loc()};
}

Located<std::size_t> get_size(const Field& field) {
  const std::string text = get_string(field);
  auto size = parse_size(text);
  if (!size) fail(field.loc(), "invalid size " + quote(text) + " (use e.g. 16MiB, 512KiB, 4096)");
  return {*size, field.loc()};
}

Located<Scheme> get_scheme(const Field& field) {
  const std::string text = get_string(field);
  if (text == "https") return {Scheme::kHttps, field.loc()};
  if (text == "http") return {Scheme::kHttp, field.loc()};
  fail(field.loc(), "scheme must be http or https, got " + quote(text));
}

Located<std::string> get_spn_service(const Field& field) {
  std::string text = get_string(field);
  std::transform(text.begin(), text.end(), text.begin(), ::toupper);
  if (text != "HTTP" && text != "WSMAN") {
    fail(field.loc(), "must be HTTP or WSMAN, got " + quote(field.value.Scalar()));
  }
  return {text, field.loc()};
}

// A path-valued field, made absolute relative to the declaring file.
// Path fields may use ${CREDENTIALS_DIRECTORY}: where systemd's LoadCredential= puts the
// service's secrets (readable by the service user only). No other variable is expanded.
std::string expand_credentials_directory(const Field& field, std::string path) {
  static constexpr std::string_view kVariable = "${CREDENTIALS_DIRECTORY}";
  for (std::size_t at = path.find("${"); at != std::string::npos; at = path.find("${", at)) {
    if (path.compare(at, kVariable.size(), kVariable) != 0) {
      fail(field.loc(), "only ${CREDENTIALS_DIRECTORY} is expanded in paths, got " + quote(path));
    }
    const char* directory = std::getenv("CREDENTIALS_DIRECTORY");
    if (directory == nullptr || *directory == '\0') {
      fail(field.loc(),
           "${CREDENTIALS_DIRECTORY} is not set: systemd sets it for a service with "
           "LoadCredential= (to check the file by hand, set it to a directory holding the "
           "credential files under their credential names)");
    }
    path.replace(at, kVariable.size(), directory);
    at += std::strlen(directory);
  }
  return path;
}

Located<std::string> get_path(const Field& field) {
  return {field.file->resolve(expand_credentials_directory(field, get_string(field))), field.loc()};
}

// Sequence items with their locations; a missing or null value is an empty list.
std::vector<Field> get_list(const Field& field) {
  std::vector<Field> items;
  if (field.value.IsNull()) return items;
  if (!field.value.IsSequence()) {
    fail(field.loc(), std::string("expected a list, got ") + kind(field.value));
  }
  std::size_t i = 0;
  for (const auto& item : field.value) {
    items.push_back(Field{field.file, field.key, item, index(field.path, i++)});
    // A null item has no reliable mark: point at the list key.
    if (item.IsNull()) fail(field.key_loc(), "empty list item " + items.back().path);
  }
  return items;
}

Located<std::map<std::string, std::string>> get_labels(const Field& field) {
  Located<std::map<std::string, std::string>> labels{{}, field.loc()};
  if (field.value.IsNull()) return labels;
  if (!field.value.IsMap()) {
    fail(field.loc(),
         std::string("expected a mapping of label names to values, got ") + kind(field.value));
  }
  for (auto it = field.value.begin(); it != field.value.end(); ++it) {
    const std::string name = it->first.Scalar();
    const Field label{field.file, it->first, it->second, join(field.path, name)};
    // The reserved prefix first, for its own message; valid_label_name also refuses it.
    if (it->first.IsScalar() && name.starts_with("__")) {
      fail(label.key_loc(), "label names starting with __ are reserved");
    }
    if (!it->first.IsScalar() || !collectors::valid_label_name(name)) {
      fail(label.key_loc(), "invalid label name (use [a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if (name == "target") fail(label.key_loc(), "the target label is set by the exporter");
    if (!it->second.IsScalar()) fail(label.loc(), "label values must be strings");
    if (labels.value.contains(name)) fail(label.key_loc(), "repeated label");
    labels.value.emplace(name, it->second.Scalar());
  }
  return labels;
}

// --- Collector lists ---------------------------------------------------------------

struct CollectorItem {
  char op;  // '=' plain name, '+' add, '-' remove
  std::string name;
  Loc loc;
};

struct CollectorSpec {
  std::vector<CollectorItem> items;
  Loc loc;
};

CollectorSpec get_collector_spec(const Field& field) {
  CollectorSpec spec{{}, field.loc()};
  char mode = 0;
  for (const Field& item : get_list(field)) {
    std::string text = get_string(item);
    char op = '=';
    if (text[0] == '+' || text[0] == '-') {
      op = text[0];
      text.erase(0, 1);
    }
    if (text.empty()) fail(item.loc(), "missing collector name");
    const char item_mode = op == '=' ? '=' : '+';
    if (mode != 0 && mode != item_mode) {
      fail(item.loc(),
           "mixes plain names with +/- changes: use either a full list or only +name/-name");
    }
    mode = item_mode;
    spec.items.push_back({op, text, item.loc()});
  }
  return spec;
}

using CollectorMap = std::map<std::string, collectors::CollectorPtr>;

void check_collector_name(const CollectorItem& item, const CollectorMap& available) {
  if (available.contains(item.name)) return;
  std::vector<std::string> names;
  for (const auto& [name, _] : available) names.push_back(name);
  fail(item.loc, "unknown collector " + quote(item.name) + suggestion(item.name, names));
}

// A plain list replaces base; +name / -name edit it.
std::vector<std::string> apply_collector_spec(std::vector<std::string> base,
                                              const CollectorSpec& spec,
                                              const CollectorMap& available) {
  if (spec.items.empty()) return {};
  for (const auto& item : spec.items) check_collector_name(item, available);
  if (spec.items.front().op == '=') base.clear();
  for (const auto& item : spec.items) {
    auto it = std::find(base.begin(), base.end(), item.name);
    if (item.op == '-') {
      if (it != base.end()) base.erase(it);
    } else if (it == base.end()) {
      base.push_back(item.name);
    }
  }
  return base;
}

// --- Credentials -------------------------------------------------------------------

bool valid_env_name(std::string_view name) {
  return !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
         });
}

void warn_if_world_readable(const Loc& loc, const std::string& path, const char* what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & S_IROTH)) {
    warn(loc, std::string(what) + " " + quote(path) +
                  " is readable by every user; chmod o-r it (e.g. 0600 or 0640)");
  }
}

// Reads a password file; one trailing line ending (and any further) is stripped.
Secret read_password_file(const Located<std::string>& path) {
  std::ifstream in(path.value, std::ios::binary);
  if (!in)
    fail(path.loc, "cannot read password file " + quote(path.value) + ": " + std::strerror(errno));
  warn_if_world_readable(path.loc, path.value, "password file");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
    content.pop_back();
  }
  if (content.empty()) fail(path.loc, "password file " + quote(path.value) + " is empty");
  return Secret(std::move(content));
}

Secret read_password_env(const Located<std::string>& name) {
  if (!valid_env_name(name.value)) {
    fail(name.loc, "invalid environment variable name " + quote(name.value));
  }
  const char* value = std::getenv(name.value.c_str());
  if (value == nullptr) fail(name.loc, "environment variable " + name.value + " is not set");
  if (*value == '\0') fail(name.loc, "environment variable " + name.value + " is empty");
  return Secret(value);
}

// Whether an encrypted PEM key opens with passphrase (OpenSSL, as libcurl will).
bool key_decrypts(const std::string& key_file, const std::string& passphrase) {
  BIO* bio = BIO_new_file(key_file.c_str(), "r");
  if (bio == nullptr) return false;
  EVP_PKEY* key =
      PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(passphrase.c_str()));
  BIO_free(bio);
  ERR_clear_error();  // a wrong passphrase leaves errors other OpenSSL users would see
  const bool ok = key != nullptr;
  EVP_PKEY_free(key);
  return ok;
}

// `auth: certificate`: a client certificate and its key, nothing else. The key is a
// secret like a password file: it must be readable now and should not be world-readable.
CredentialProfile parse_certificate_credential(const MapReader& map, CredentialProfile profile,
                                               const Loc& profile_loc) {
  profile.method = AuthMethod::kCertificate;
  for (const char* unused :
       {"username", "password_file", "password_env", "keytab", "ccache", "realm", "spn_service"}) {
    if (const Field* f = map.get(unused)) {
      fail(f->key_loc(), "not used with auth: certificate (the certificate names the user)");
    }
  }
  const Field* cert = map.get("cert_file");
  const Field* key = map.get("key_file");
  if (!cert || !key) fail(profile_loc, "auth: certificate needs cert_file and key_file");
  const auto cert_path = get_path(*cert);
  const auto key_path = get_path(*key);
  for (const auto* path : {&cert_path, &key_path}) {
    if (::access(path->value.c_str(), R_OK) != 0) {
      fail(path->loc, "cannot read " + quote(path->value) + ": " + std::strerror(errno));
    }
  }
  warn_if_world_readable(key_path.loc, key_path.value, "private key");
  profile.cert_file = cert_path.value;
  profile.key_file = key_path.value;
  // An encrypted key: its passphrase from a file, kept as the profile's password (the
  // same Secret, reload comparison and masking) and checked here, so a missing or wrong
  // one is a load error rather than a TLS failure on every poll.
  std::string pem;
  {
    std::ifstream in(key_path.value, std::ios::binary);
    pem.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // PKCS#8 "BEGIN ENCRYPTED PRIVATE KEY" or the legacy "Proc-Type: 4,ENCRYPTED".
  const bool encrypted = pem.find("ENCRYPTED") != std::string::npos;
  OPENSSL_cleanse(pem.data(), pem.size());
  const Field* passphrase = map.get("key_password_file");
  if (encrypted && !passphrase) {
    fail(key_path.loc, "key " + quote(key_path.value) + " is encrypted: set key_password_file");
  }
  if (passphrase) {
    if (!encrypted) fail(passphrase->key_loc(), "key_file is not encrypted");
    const auto path = get_path(*passphrase);
    profile.password_file = path.value;
    profile.password = read_password_file(path);
    if (!key_decrypts(key_path.value, profile.password.reveal())) {
      fail(path.loc, "the passphrase in " + quote(path.value) + " does not decrypt key " +
                         quote(key_path.value));
    }
  }
  return profile;
}

CredentialProfile parse_credential(const File& file, const std::string& name, const Field& field) {
  MapReader map(file, field.value, field.loc(),
                {"auth", "username", "password", "password_file", "password_env", "keytab",
                 "ccache", "realm", "spn_service", "cert_file", "key_file", "key_password_file"});
  CredentialProfile profile;
  profile.name = name;

  if (const Field* password = map.get("password")) {
    // Never echo the value: it is the one thing this field holds.
    fail(password->key_loc(),
         "inline passwords are not allowed; use password_file or password_env");
  }
  const Field* auth = map.get("auth");
  if (!auth) fail(field.loc(), "missing key 'auth' (basic, kerberos, ntlm or certificate)");
  const std::string method = get_string(*auth);
  if (method == "basic") {
    profile.method = AuthMethod::kBasic;
  } else if (method == "kerberos") {
    profile.method = AuthMethod::kKerberos;
  } else if (method == "ntlm") {
    profile.method = AuthMethod::kNtlm;
  } else if (method == "certificate") {
    return parse_certificate_credential(map, profile, field.loc());
  } else {
    static constexpr std::string_view kMethods[] = {"basic", "kerberos", "ntlm", "certificate"};
    fail(auth->loc(), "auth must be basic, kerberos, ntlm or certificate, got " + quote(method) +
                          suggestion(method, kMethods));
  }
  for (const char* certificate_only : {"cert_file", "key_file", "key_password_file"}) {
    if (const Field* f = map.get(certificate_only)) {
      fail(f->key_loc(), "only valid with auth: certificate");
    }
  }
  const bool kerberos = profile.method == AuthMethod::kKerberos;

  if (const Field* f = map.get("username")) profile.username = get_string(*f);
  const Field* file_field = map.get("password_file");
  const Field* env_field = map.get("password_env");
  if (file_field && env_field) {
    fail(env_field->key_loc(), "give either password_file or password_env, not both");
  }
  if (file_field) {
    const auto path = get_path(*file_field);
    profile.password_file = path.value;
    profile.password = read_password_file(path);
  }
  if (env_field) {
    const auto env = located_string(*env_field);
    profile.password_env = env.value;
    profile.password = read_password_env(env);
  }
  const bool has_password = file_field || env_field;

  for (const char* kerberos_only : {"keytab", "ccache", "realm"}) {
    if (const Field* f = map.get(kerberos_only); f && !kerberos) {
      fail(f->key_loc(), "only valid with auth: kerberos");
    }
  }
  if (const Field* f = map.get("spn_service")) {
    if (profile.method == AuthMethod::kBasic) fail(f->key_loc(), "not used with auth: basic");
    profile.spn_service = get_spn_service(*f).value;
  }

  const Loc profile_loc = field.loc();
  if (!kerberos) {
    if (profile.username.empty()) fail(profile_loc, "missing key 'username'");
    if (!has_password) fail(profile_loc, "missing password_file or password_env");
    return profile;
  }

  const Field* keytab = map.get("keytab");
  const Field* ccache = map.get("ccache");
  const int sources = (keytab ? 1 : 0) + (has_password ? 1 : 0) + (ccache ? 1 : 0);
  if (sources == 0) {
    fail(profile_loc, "kerberos needs one of keytab, password_file/password_env or ccache");
  }
  if (sources > 1) {
    fail(profile_loc,
         "give only one of keytab, password_file/password_env or ccache (keytab is preferred)");
  }
  if (keytab) {
    const auto path = get_path(*keytab);
    profile.keytab = path.value;
    // The keytab is read at each handshake, so it may be provisioned after start-up.
    if (::access(path.value.c_str(), R_OK) != 0) {
      warn(path.loc,
           "keytab " + quote(path.value) + " is not readable yet: " + std::strerror(errno));
    } else {
      warn_if_world_readable(path.loc, path.value, "keytab");
    }
  }
  if (ccache) profile.ccache = get_string(*ccache);
  if ((keytab || has_password) && profile.username.empty()) {
    fail(profile_loc, "missing key 'username' (needed with keytab or password)");
  }
  if (const Field* f = map.get("realm")) profile.realm = get_string(*f);
  return profile;
}

// --- WinRM options and limits -----------------------------------------------------

// `winrm:` and `limits:` as written; every field optional, merged per field.
struct WinrmSpec {
  std::optional<Located<std::size_t>> max_envelope_size;
  std::optional<Located<int>> max_elements;
  std::optional<Located<Duration>> operation_timeout;
  std::optional<Located<std::string>> locale;
};

struct LimitsSpec {
  // nullopt inside: "auto".
  std::optional<Located<std::optional<std::size_t>>> max_response_bytes;
  std::optional<Located<std::size_t>> max_poll_bytes;
  std::optional<Located<int>> max_rows_per_poll, max_properties_per_instance,
      max_series_per_collector;
};

constexpr std::size_t kMinEnvelopeSize = 8192;
constexpr std::size_t kMaxEnvelopeSize = 32 * 1024 * 1024;
constexpr std::size_t kMinResponseBytes = 4096;

// BCP 47-ish: "en-US", "de-DE", "zh-Hans-CN".
bool valid_locale(std::string_view text) {
  std::size_t part_length = 0;
  std::size_t parts = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '-') {
      if (part_length == 0 || part_length > 8) return false;
      if (parts == 0 && part_length < 2) return false;
      ++parts;
      part_length = 0;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (!std::isalnum(c) || (parts == 0 && !std::isalpha(c))) return false;
    ++part_length;
  }
  return true;
}

WinrmSpec parse_winrm_spec(const File& file, const Field& field) {
  WinrmSpec spec;
  if (field.value.IsNull()) return spec;
  MapReader map(file, field.value, field.loc(),
                {"max_envelope_size", "max_elements", "operation_timeout", "locale"});
  if (const Field* f = map.get("max_envelope_size")) {
    auto size = get_size(*f);
    if (size.value < kMinEnvelopeSize || size.value > kMaxEnvelopeSize) {
      fail(size.loc, std::to_string(size.value) + " is out of range " +
                         std::to_string(kMinEnvelopeSize) + "-" + std::to_string(kMaxEnvelopeSize) +
                         " bytes (Windows default 512000, Windows Server 2008 R2: 153600)");
    }
    spec.max_envelope_size = size;
  }
  if (const Field* f = map.get("max_elements")) spec.max_elements = get_int(*f, 1, 1000000);
  if (const Field* f = map.get("operation_timeout")) {
    auto timeout = get_duration(*f);
    if (timeout.value < std::chrono::seconds(1)) fail(timeout.loc, "must be at least 1s");
    if (timeout.value > std::chrono::seconds(60)) {
      warn(timeout.loc,
           "above 60s: Windows refuses an OperationTimeout over its MaxTimeoutms "
           "(default 60000)");
    }
    spec.operation_timeout = timeout;
  }
  if (const Field* f = map.get("locale")) {
    auto locale = located_string(*f);
    if (!valid_locale(locale.value)) {
      fail(locale.loc, "invalid locale " + quote(locale.value) + " (use e.g. en-US, de-DE)");
    }
    spec.locale = locale;
  }
  return spec;
}

Located<std::optional<std::size_t>> get_response_bytes(const Field& field) {
  const std::string text = get_string(field);
  if (text == "auto") return {std::nullopt, field.loc()};
  const auto size = get_size(field);
  if (size.value < kMinResponseBytes) fail(size.loc, "must be at least 4096 bytes (or auto)");
  return {size.value, size.loc};
}

LimitsSpec parse_limits_spec(const File& file, const Field& field) {
  LimitsSpec spec;
  if (field.value.IsNull()) return spec;
  MapReader map(file, field.value, field.loc(),
                {"max_response_bytes", "max_poll_bytes", "max_rows_per_poll",
                 "max_properties_per_instance", "max_series_per_collector"});
  if (const Field* f = map.get("max_response_bytes"))
    spec.max_response_bytes = get_response_bytes(*f);
  if (const Field* f = map.get("max_poll_bytes")) {
    auto size = get_size(*f);
    if (size.value < kMinResponseBytes) fail(size.loc, "must be at least 4096 bytes");
    spec.max_poll_bytes = size;
  }
  constexpr int kMaxCount = 100'000'000;
  if (const Field* f = map.get("max_rows_per_poll")) {
    spec.max_rows_per_poll = get_int(*f, 1, kMaxCount);
  }
  if (const Field* f = map.get("max_properties_per_instance")) {
    spec.max_properties_per_instance = get_int(*f, 1, kMaxCount);
  }
  if (const Field* f = map.get("max_series_per_collector")) {
    spec.max_series_per_collector = get_int(*f, 1, kMaxCount);
  }
  return spec;
}

// The first of the specs (most specific first) that sets a field, else nullptr.
template <typename Spec, typename Member>
auto first_of(std::initializer_list<const Spec*> specs, Member member)
    -> const std::remove_reference_t<decltype(specs.begin()[0]->*member)>* {
  for (const Spec* spec : specs) {
    if (spec && spec->*member) return &(spec->*member);
  }
  return nullptr;
}

WinrmOptions resolve_winrm(std::initializer_list<const WinrmSpec*> specs) {
  WinrmOptions out;
  if (auto* v = first_of(specs, &WinrmSpec::max_envelope_size)) {
    out.max_envelope_size = static_cast<std::uint32_t>((*v)->value);
  }
  if (auto* v = first_of(specs, &WinrmSpec::max_elements)) {
    out.max_elements = static_cast<std::uint32_t>((*v)->value);
  }
  if (auto* v = first_of(specs, &WinrmSpec::operation_timeout)) out.operation_timeout = (*v)->value;
  if (auto* v = first_of(specs, &WinrmSpec::locale)) out.locale = (*v)->value;
  return out;
}

// Resolves limits and checks that one response fits the poll budget; `where` locates
// the error when no field of the combination is local.
PollLimits resolve_limits(std::initializer_list<const LimitsSpec*> specs, const WinrmOptions& winrm,
                          const Loc& where) {
  PollLimits out;
  auto* response_bytes = first_of(specs, &LimitsSpec::max_response_bytes);
  if (response_bytes) out.max_response_bytes = (*response_bytes)->value.value_or(PollLimits::kAuto);
  auto* poll_bytes = first_of(specs, &LimitsSpec::max_poll_bytes);
  if (poll_bytes) out.max_poll_bytes = (*poll_bytes)->value;
  if (auto* v = first_of(specs, &LimitsSpec::max_rows_per_poll)) {
    out.max_rows_per_poll = static_cast<std::size_t>((*v)->value);
  }
  if (auto* v = first_of(specs, &LimitsSpec::max_properties_per_instance)) {
    out.max_properties_per_instance = static_cast<std::size_t>((*v)->value);
  }
  if (auto* v = first_of(specs, &LimitsSpec::max_series_per_collector)) {
    out.max_series_per_collector = static_cast<std::size_t>((*v)->value);
  }
  const std::size_t one_response = effective_max_response_bytes(out, winrm);
  if (one_response > out.max_poll_bytes) {
    const Loc& loc = poll_bytes       ? (*poll_bytes)->loc
                     : response_bytes ? (*response_bytes)->loc
                                      : where;
    fail(loc, "limits.max_poll_bytes " + std::to_string(out.max_poll_bytes) +
                  " is less than one response (" +
                  (out.max_response_bytes == PollLimits::kAuto
                       ? "max_response_bytes auto = 2 x max_envelope_size + 64KiB = "
                       : "max_response_bytes = ") +
                  std::to_string(one_response) + ")");
  }
  return out;
}

// --- Targets -----------------------------------------------------------------------

// A target (or an inventory file's defaults) as written: every field optional.
struct TargetSpec {
  Loc loc;
  std::optional<Located<std::string>> name, host, connect_address, credential, tls_ca_file,
      spn_host, spn_service;
  std::optional<Located<int>> port;
  std::optional<Located<Scheme>> scheme;
  std::optional<Located<Duration>> interval, timeout;
  std::optional<Located<bool>> tls_insecure_skip_verify;
  std::optional<Located<std::map<std::string, std::string>>> labels;
  std::optional<CollectorSpec> collectors;
  std::optional<Located<std::vector<std::string>>> compat;
  std::optional<Located<ProxySettings>> proxy;
  WinrmSpec winrm;
  LimitsSpec limits;
};

// `proxy: http(s)://host:port`, `proxy: {url, username, password_file, ca_file}`, or
// `proxy: none` (direct, overriding a default). Credentials never inline: no user:password@
// in the URL. https:// means TLS to the proxy itself, verified against ca_file (default: the
// system bundle).
Located<ProxySettings> get_proxy(const File& file, const Field& field) {
  ProxySettings proxy;
  const Field* url_field = &field;
  std::optional<MapReader> map;
  if (field.value.IsMap()) {
    map.emplace(file, field.value, field.loc(),
                std::vector<std::string_view>{"url", "username", "password_file", "ca_file"});
    url_field = map->get("url");
    if (!url_field) fail(field.loc(), "missing key 'url' (http(s)://host:port)");
  }
  const std::string url = get_string(*url_field);
  if (url == "none") {
    if (map && (map->get("username") || map->get("password_file") || map->get("ca_file"))) {
      fail(field.loc(), "proxy none takes no username, password_file or ca_file");
    }
    return {proxy, field.loc()};
  }
  const std::string_view kPrefix = url.starts_with("https://") ? "https://" : "http://";
  if (!url.starts_with(kPrefix)) {
    fail(url_field->loc(),
         "proxy must be http://host:port, https://host:port or none, got " + quote(url));
  }
  std::string_view authority = std::string_view(url).substr(kPrefix.size());
  if (authority.ends_with("/")) authority.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos) {
    // Never echo the URL: it may hold a password.
    fail(url_field->loc(), "no credentials in the proxy URL; use username and password_file");
  }
  const auto colon = authority.rfind(':');
  const auto bracket = authority.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket) ||
      colon + 1 == authority.size() || colon == 0 ||
      authority.find('/') != std::string_view::npos) {
    fail(url_field->loc(), "proxy must be http(s)://host:port (with the port), got " + quote(url));
  }
  int port = 0;
  const auto digits = authority.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port < 1 || port > 65535) {
    fail(url_field->loc(), "invalid proxy port in " + quote(url));
  }
  proxy.url = std::string(kPrefix) + std::string(authority);
  if (map) {
    const Field* user = map->get("username");
    const Field* password = map->get("password_file");
    if (!user != !password) fail(field.loc(), "proxy auth needs both username and password_file");
    if (user) {
      proxy.username = get_string(*user);
      if (proxy.username.find(':') != std::string::npos) {
        fail(user->loc(), "a proxy Basic auth user name cannot contain ':'");
      }
      const auto path = get_path(*password);
      proxy.password_file = path.value;
      proxy.password = read_password_file(path);
    }
    if (const Field* ca = map->get("ca_file")) {
      if (kPrefix != "https://") fail(ca->loc(), "proxy ca_file needs an https:// proxy url");
      const auto path = get_path(*ca);
      // An error, not a warning: verification against the wrong CAs fails every poll.
      if (::access(path.value.c_str(), R_OK) != 0) {
        fail(path.loc,
             "proxy ca_file " + quote(path.value) + " is not readable: " + std::strerror(errno));
      }
      proxy.ca_file = path.value;
    }
  }
  return {proxy, field.loc()};
}

// `compat: [v030, pre030]`: windows_exporter name sets, at least one, each once.
Located<std::vector<std::string>> get_compat(const Field& field) {
  Located<std::vector<std::string>> sets{{}, field.loc()};
  for (const Field& item : get_list(field)) {
    std::string name = get_string(item);
    if (!collectors::known_name_set(name)) {
      fail(item.loc(), "unknown name set " + quote(name) + " (v030, pre030)");
    }
    if (std::find(sets.value.begin(), sets.value.end(), name) != sets.value.end()) {
      fail(item.loc(), "name set " + quote(name) + " listed twice");
    }
    sets.value.push_back(std::move(name));
  }
  if (sets.value.empty()) fail(field.loc(), "compat needs at least one name set (v030, pre030)");
  return sets;
}

bool valid_target_name(std::string_view name) {
  return std::none_of(name.begin(), name.end(), [](char c) {
    return std::iscntrl(static_cast<unsigned char>(c)) ||
           std::isspace(static_cast<unsigned char>(c));
  });
}

TargetSpec parse_target_spec(const File& file, const Field& field, bool is_defaults) {
  static const std::vector<std::string_view> kTargetKeys = {
      "name",     "host",        "connect_address", "port",
      "scheme",   "credential",  "labels",          "collectors",
      "interval", "timeout",     "tls_ca_file",     "tls_insecure_skip_verify",
      "spn_host", "spn_service", "winrm",           "limits",
      "compat",   "proxy"};
  static const std::vector<std::string_view> kDefaultsKeys = {
      "port",        "scheme",      "credential",
      "labels",      "collectors",  "interval",
      "timeout",     "tls_ca_file", "tls_insecure_skip_verify",
      "spn_service", "winrm",       "limits",
      "compat",      "proxy"};
  MapReader map(file, field.value, field.loc(), is_defaults ? kDefaultsKeys : kTargetKeys);
  TargetSpec spec;
  spec.loc = field.loc();
  if (const Field* f = map.get("name")) {
    spec.name = located_string(*f);
    if (!valid_target_name(spec.name->value)) {
      fail(f->loc(), "target names must not contain spaces or control characters");
    }
  }
  if (const Field* f = map.get("host")) {
    spec.host = located_string(*f);
    const std::string& host = spec.host->value;
    if (host.find("://") != std::string::npos || host.find('/') != std::string::npos) {
      fail(f->loc(), "host must be a host name, not a URL (use scheme and port)");
    }
    if (std::count(host.begin(), host.end(), ':') == 1) {
      fail(f->loc(), "host must not include a port (use port:)");
    }
    if (!valid_target_name(host)) fail(f->loc(), "host must not contain spaces");
  }
  if (const Field* f = map.get("connect_address")) spec.connect_address = located_string(*f);
  if (const Field* f = map.get("port")) spec.port = get_int(*f, 1, 65535);
  if (const Field* f = map.get("scheme")) spec.scheme = get_scheme(*f);
  if (const Field* f = map.get("credential")) spec.credential = located_string(*f);
  if (const Field* f = map.get("labels")) spec.labels = get_labels(*f);
  if (const Field* f = map.get("collectors")) spec.collectors = get_collector_spec(*f);
  if (const Field* f = map.get("compat")) spec.compat = get_compat(*f);
  if (const Field* f = map.get("interval")) spec.interval = get_duration(*f);
  if (const Field* f = map.get("timeout")) spec.timeout = get_duration(*f);
  if (const Field* f = map.get("tls_ca_file")) spec.tls_ca_file = get_path(*f);
  if (const Field* f = map.get("tls_insecure_skip_verify")) {
    spec.tls_insecure_skip_verify = get_bool(*f);
  }
  if (const Field* f = map.get("spn_host")) spec.spn_host = located_string(*f);
  if (const Field* f = map.get("spn_service")) spec.spn_service = get_spn_service(*f);
  if (const Field* f = map.get("winrm")) spec.winrm = parse_winrm_spec(file, *f);
  if (const Field* f = map.get("limits")) spec.limits = parse_limits_spec(file, *f);
  if (const Field* f = map.get("proxy")) spec.proxy = get_proxy(file, *f);
  return spec;
}

// Global values remember where they were set, for messages about inherited values.
struct GlobalSpec {
  std::optional<Located<int>> port;
  std::optional<Located<Duration>> interval, timeout;
  std::optional<Located<std::string>> credential;
  WinrmSpec winrm;
  LimitsSpec limits;
};

template <typename T>
const std::optional<Located<T>>& first_set(const std::optional<Located<T>>& a,
                                           const std::optional<Located<T>>& b) {
  return a ? a : b;
}

class Loader {
 public:
  Config load(const std::string& path) {
    config_.path = path;
    const File file(path);
    const YAML::Node root = file.parse();
    const Loc root_loc{path + ":1", "(top level)"};
    if (root.IsNull()) fail(root_loc, "the config file is empty");
    MapReader map(file, root, {path + ":1", ""},
                  {"global", "credentials", "targets", "inventory_files", "custom_collectors",
                   "inventory_ldap"});

    config_.collectors = collectors::builtin_collectors();
    builtin_names_ = collectors::default_collector_names();

    if (const Field* f = map.get("custom_collectors")) parse_custom_collectors(*f);
    parse_global(file, map.get("global"));
    if (const Field* f = map.get("credentials")) parse_credentials(file, *f);
    check_global_credential();

    if (const Field* f = map.get("targets")) {
      for (const Field& item : get_list(*f)) add_target(parse_target_spec(file, item, false), {});
    }
    if (const Field* f = map.get("inventory_files")) load_inventory(file, *f);
    if (const Field* f = map.get("inventory_ldap")) parse_inventory_ldap(file, *f);
    if (config_.targets.empty() && config_.inventory_ldap.empty())
      spdlog::warn("config: {}: no targets defined", path);
    return std::move(config_);
  }

 private:
  void parse_custom_collectors(const Field& field) {
    for (const Field& item : get_list(field)) {
      // Errors point at the field at fault: "file:line: custom_collectors[0]: collector ...".
      auto parsed = collectors::parse_collector_definition(
          item.value, {.locate = [&](const YAML::Mark& mark) {
            return item.file->where(mark) + ": " + item.path;
          }});
      if (!parsed) throw ConfigError(parsed.error());
      const std::string& name = (*parsed)->name();
      if (auto it = custom_sources_.find(name); it != custom_sources_.end()) {
        fail(item.loc(), "collector " + quote(name) + " is already defined at " + it->second);
      }
      if (config_.collectors.contains(name)) {
        fail(item.loc(),
             "collector " + quote(name) + " is a built-in collector; pick another name");
      }
      custom_sources_.emplace(name, item.loc().where);
      config_.collectors.emplace(name, *parsed);
    }
  }

  void parse_global(const File& file, const Field* field) {
    Defaults& d = config_.defaults;
    d.collectors = builtin_names_;
    // The usual environment variable applies unless global.no_proxy replaces it.
    for (const char* name : {"NO_PROXY", "no_proxy"}) {
      if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
        d.no_proxy = value;
        break;
      }
    }
    if (!field || field->value.IsNull()) return;
    MapReader map(file, field->value, field->loc(),
                  {"interval",
                   "timeout",
                   "concurrency",
                   "per_target_concurrency",
                   "slow_poll_after",
                   "max_slow_polls_per_target",
                   "max_slow_polls",
                   "stale_after_intervals",
                   "query_refresh",
                   "scheme",
                   "port",
                   "tls_ca_file",
                   "tls_insecure_skip_verify",
                   "max_response_bytes",
                   "collectors",
                   "credential",
                   "labels",
                   "winrm",
                   "limits",
                   "compat",
                   "proxy",
                   "no_proxy"});
    if (const Field* f = map.get("interval")) global_.interval = get_duration(*f);
    if (const Field* f = map.get("timeout")) global_.timeout = get_duration(*f);
    if (global_.interval) d.interval = global_.interval->value;
    if (global_.timeout) d.timeout = global_.timeout->value;
    if (d.timeout >= d.interval) {
      const Loc& loc = global_.timeout ? global_.timeout->loc : global_.interval->loc;
      fail(loc, "timeout " + format_duration(d.timeout) + " must be less than interval " +
                    format_duration(d.interval));
    }
    if (const Field* f = map.get("concurrency")) d.concurrency = get_int(*f, 1, 100000).value;
    if (const Field* f = map.get("per_target_concurrency")) {
      d.per_target_concurrency = get_int(*f, 1, 64).value;
    }
    if (const Field* f = map.get("slow_poll_after")) d.slow_poll_after = get_duration(*f).value;
    if (const Field* f = map.get("max_slow_polls_per_target")) {
      d.max_slow_polls_per_target = get_int(*f, 0, 64).value;
    }
    if (const Field* f = map.get("max_slow_polls")) d.max_slow_polls = get_int(*f, 0, 100000).value;
    if (const Field* f = map.get("stale_after_intervals")) {
      d.stale_after_intervals = get_int(*f, 1, 1000).value;
    }
    if (const Field* f = map.get("query_refresh")) d.query_refresh = get_bool(*f).value;
    if (const Field* f = map.get("scheme")) d.scheme = get_scheme(*f).value;
    if (const Field* f = map.get("port")) global_.port = get_int(*f, 1, 65535);
    d.port = global_.port ? global_.port->value : default_port(d.scheme);
    if (const Field* f = map.get("tls_ca_file")) {
      d.tls_ca_file = get_path(*f).value;
      warn_if_missing(get_path(*f), "tls_ca_file");
    }
    if (const Field* f = map.get("tls_insecure_skip_verify")) {
      d.tls_insecure_skip_verify = get_bool(*f).value;
    }
    if (const Field* f = map.get("winrm")) global_.winrm = parse_winrm_spec(file, *f);
    if (const Field* f = map.get("limits")) global_.limits = parse_limits_spec(file, *f);
    // The pre-`limits:` key, kept as an alias.
    if (const Field* f = map.get("max_response_bytes")) {
      if (global_.limits.max_response_bytes) {
        fail(f->key_loc(), "also set as global.limits.max_response_bytes (at " +
                               global_.limits.max_response_bytes->loc.where + "); keep one");
      }
      global_.limits.max_response_bytes = get_response_bytes(*f);
    }
    d.winrm = resolve_winrm({&global_.winrm});
    d.limits = resolve_limits({&global_.limits}, d.winrm, field->loc());
    if (const Field* f = map.get("collectors")) {
      const CollectorSpec spec = get_collector_spec(*f);
      d.collectors = apply_collector_spec(builtin_names_, spec, config_.collectors);
      if (d.collectors.empty()) fail(spec.loc, "the collector list is empty");
    }
    if (const Field* f = map.get("credential")) {
      global_.credential = located_string(*f);
      d.credential = global_.credential->value;
    }
    if (const Field* f = map.get("labels")) d.labels = get_labels(*f).value;
    if (const Field* f = map.get("compat")) d.compat = get_compat(*f).value;
    if (const Field* f = map.get("proxy")) d.proxy = get_proxy(file, *f).value;
    if (const Field* f = map.get("no_proxy")) d.no_proxy = get_no_proxy(*f);
  }

  // A list or one comma-separated string, in NO_PROXY syntax (winrm::proxy_bypassed).
  static std::string get_no_proxy(const Field& field) {
    std::vector<std::string> entries;
    if (field.value.IsSequence()) {
      for (const Field& item : get_list(field)) entries.push_back(get_string(item));
    } else {
      entries.push_back(get_string(field));
    }
    std::string joined;
    for (const auto& entry : entries) {
      if (!joined.empty()) joined += ',';
      joined += entry;
    }
    return joined;
  }

  // The collectors restricted to one combination of name sets, built once per combination.
  std::shared_ptr<const std::map<std::string, collectors::CollectorPtr>> compat_collectors(
      const std::vector<std::string>& sets) {
    auto& cached = compat_collectors_[sets];
    if (!cached) {
      auto selected = std::make_shared<std::map<std::string, collectors::CollectorPtr>>();
      for (const auto& [name, collector] : config_.collectors) {
        selected->emplace(name, collectors::select_name_sets(collector, sets));
      }
      cached = std::move(selected);
    }
    return cached;
  }

  static int default_port(Scheme scheme) { return scheme == Scheme::kHttps ? 5986 : 5985; }

  static void warn_if_missing(const Located<std::string>& path, const char* what) {
    if (::access(path.value.c_str(), R_OK) != 0) {
      warn(path.loc, std::string(what) + " " + quote(path.value) +
                         " is not readable: " + std::strerror(errno));
    }
  }

  void parse_credentials(const File& file, const Field& field) {
    if (field.value.IsNull()) return;
    if (!field.value.IsMap()) {
      fail(field.loc(),
           std::string("expected a mapping of profile names, got ") + kind(field.value));
    }
    for (auto it = field.value.begin(); it != field.value.end(); ++it) {
      const std::string name = it->first.Scalar();
      const Field profile{&file, it->first, it->second, join(field.path, name)};
      if (!it->first.IsScalar() || name.empty()) fail(profile.key_loc(), "invalid profile name");
      if (config_.credentials.contains(name)) fail(profile.key_loc(), "repeated profile name");
      config_.credentials.emplace(name, parse_credential(file, name, profile));
    }
  }

  void check_global_credential() {
    if (global_.credential) check_credential_exists(*global_.credential);
  }

  void check_credential_exists(const Located<std::string>& name) {
    if (config_.credentials.contains(name.value)) return;
    std::vector<std::string> names;
    for (const auto& [n, _] : config_.credentials) names.push_back(n);
    fail(name.loc,
         "unknown credential profile " + quote(name.value) + suggestion(name.value, names));
  }

  // Merges target > inventory defaults > global and validates the result.
  void add_target(const TargetSpec& spec, const std::optional<TargetSpec>& file_defaults) {
    static const TargetSpec kNone;
    const TargetSpec& fd = file_defaults ? *file_defaults : kNone;
    const Defaults& d = config_.defaults;
    Target t;
    if (!spec.name && !spec.host) fail(spec.loc, "a target needs a name or a host");
    t.name = spec.name ? spec.name->value : spec.host->value;
    t.host = spec.host ? spec.host->value : t.name;
    if (spec.connect_address) t.connect_address = spec.connect_address->value;
    t.source = spec.loc.where;
    const Loc name_loc = spec.name ? spec.name->loc : spec.host->loc;
    if (auto [it, inserted] = target_sources_.emplace(t.name, name_loc.where); !inserted) {
      fail(name_loc,
           "duplicate target name " + quote(t.name) + " (first defined at " + it->second + ")");
    }

    const auto& scheme = first_set(spec.scheme, fd.scheme);
    t.scheme = scheme ? scheme->value : d.scheme;
    const auto& port = first_set(first_set(spec.port, fd.port), global_.port);
    t.port = port ? port->value : default_port(t.scheme);

    const auto& credential =
        first_set(first_set(spec.credential, fd.credential), global_.credential);
    if (!credential) {
      fail(spec.loc, "no credential profile: set credential here (or global.credential)");
    }
    check_credential_exists(*credential);
    t.credential = credential->value;
    const CredentialProfile& profile = config_.credentials.at(t.credential);
    if (profile.method == AuthMethod::kCertificate && t.scheme == Scheme::kHttp) {
      fail(scheme ? scheme->loc : spec.loc,
           "credential " + quote(t.credential) +
               " uses auth: certificate, which needs scheme: https (the certificate is sent in "
               "the TLS handshake)");
    }
    if (profile.method == AuthMethod::kBasic && t.scheme == Scheme::kHttp &&
        basic_http_warned_.insert(t.credential).second) {
      warn(spec.loc, "credential " + quote(t.credential) +
                         " uses basic auth over http: the password crosses the network in "
                         "clear text and Windows refuses it unless AllowUnencrypted=true");
    }

    t.labels = d.labels;
    for (const auto* labels : {&fd.labels, &spec.labels}) {
      if (*labels) {
        for (const auto& [k, v] : (*labels)->value) t.labels[k] = v;
      }
    }

    const auto& interval = first_set(spec.interval, fd.interval);
    const auto& timeout = first_set(spec.timeout, fd.timeout);
    t.interval = interval ? interval->value : d.interval;
    t.timeout = timeout ? timeout->value : d.timeout;
    if (t.timeout >= t.interval) {
      const Loc& loc = timeout ? timeout->loc : interval->loc;  // one of them is local
      fail(loc, "timeout " + format_duration(t.timeout) + " must be less than interval " +
                    format_duration(t.interval));
    }

    const auto& ca = first_set(spec.tls_ca_file, fd.tls_ca_file);
    t.tls_ca_file = ca ? ca->value : d.tls_ca_file;
    const auto& insecure = first_set(spec.tls_insecure_skip_verify, fd.tls_insecure_skip_verify);
    t.tls_insecure_skip_verify = insecure ? insecure->value : d.tls_insecure_skip_verify;
    if (spec.spn_host) t.spn_host = spec.spn_host->value;
    const auto& spn_service = first_set(spec.spn_service, fd.spn_service);
    if (spn_service) t.spn_service = spn_service->value;
    t.winrm = resolve_winrm({&spec.winrm, &fd.winrm, &global_.winrm});
    t.limits = resolve_limits({&spec.limits, &fd.limits, &global_.limits}, t.winrm, spec.loc);

    const auto& proxy = first_set(spec.proxy, fd.proxy);
    t.proxy = proxy ? proxy->value : d.proxy;
    t.no_proxy = d.no_proxy;

    const auto& compat = first_set(spec.compat, fd.compat);
    t.compat = compat ? compat->value : d.compat;
    t.compat_collectors = compat_collectors(t.compat);

    t.collectors = d.collectors;
    for (const auto* collectors_spec : {&fd.collectors, &spec.collectors}) {
      if (*collectors_spec) {
        t.collectors = apply_collector_spec(t.collectors, **collectors_spec, config_.collectors);
        if (t.collectors.empty()) {
          fail((*collectors_spec)->loc, "the target's collector list is empty");
        }
      }
    }
    config_.targets.push_back(std::move(t));
  }

  void load_inventory(const File& main_file, const Field& field) {
    std::vector<Field> patterns;
    if (field.value.IsScalar()) {
      patterns.push_back(field);
    } else {
      patterns = get_list(field);
    }
    std::set<std::string> loaded{fs::weakly_canonical(main_file.path()).string()};
    for (const Field& item : patterns) {
      const auto pattern = get_path(item);
      glob_t matches{};
      const int rc = ::glob(pattern.value.c_str(), 0, nullptr, &matches);
      std::vector<std::string> files;
      if (rc == 0) {
        for (std::size_t i = 0; i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
      }
      ::globfree(&matches);
      const bool literal = pattern.value.find_first_of("*?[") == std::string::npos;
      if (rc == GLOB_NOMATCH && literal) {
        fail(pattern.loc, "inventory file " + quote(pattern.value) + " does not exist");
      }
      if (rc == GLOB_NOMATCH) {
        warn(pattern.loc, "pattern " + quote(pattern.value) + " matches no files");
        continue;
      }
      if (rc != 0) fail(pattern.loc, "cannot expand " + quote(pattern.value));
      std::sort(files.begin(), files.end());
      for (const auto& path : files) {
        // The same file matched by two patterns (or the main file itself) loads once.
        if (!loaded.insert(fs::weakly_canonical(path).string()).second) continue;
        load_inventory_file(path);
      }
    }
  }

  void load_inventory_file(const std::string& path) {
    const File file(path);
    const YAML::Node root = file.parse();
    if (root.IsNull()) {
      spdlog::warn("config: {}: inventory file is empty", path);
      return;
    }
    MapReader map(file, root, {path + ":1", ""}, {"defaults", "targets"});
    std::optional<TargetSpec> defaults;
    if (const Field* f = map.get("defaults"); f && !f->value.IsNull()) {
      defaults = parse_target_spec(file, *f, true);
      if (defaults->credential) check_credential_exists(*defaults->credential);
    }
    if (const Field* f = map.get("targets")) {
      for (const Field& item : get_list(*f)) {
        add_target(parse_target_spec(file, item, false), defaults);
      }
    }
  }

  // `inventory_ldap:` sources (CONFIG.md "Active Directory inventory").
  void parse_inventory_ldap(const File& file, const Field& field) {
    std::set<std::string> names;
    for (const Field& item : get_list(field)) {
      MapReader map(
          file, item.value, item.loc(),
          {"name", "urls", "bind", "credential", "bind_dn", "bind_password_file", "start_tls",
           "tls_ca_file", "base_dn", "filter", "page_size", "max_hosts", "refresh_interval",
           "max_stale_age", "timeout", "ou_label", "attribute_labels", "defaults"});
      LdapInventory source;
      source.source = item.loc().where;
      const Field* name = map.get("name");
      if (!name) fail(item.loc(), "missing key 'name'");
      source.name = get_string(*name);
      if (!valid_target_name(source.name)) fail(name->loc(), "must not contain spaces");
      if (!names.insert(source.name).second) fail(name->loc(), "repeated source name");
      const Field* urls = map.get("urls");
      if (!urls) fail(item.loc(), "missing key 'urls' (ldap:// or ldaps:// of the DCs)");
      for (const Field& url : get_list(*urls)) {
        std::string text = get_string(url);
        if (!text.starts_with("ldap://") && !text.starts_with("ldaps://")) {
          fail(url.loc(), "must start with ldap:// or ldaps://, got " + quote(text));
        }
        source.urls.push_back(std::move(text));
      }
      if (source.urls.empty()) fail(urls->loc(), "needs at least one URL");
      const Field* base = map.get("base_dn");
      if (!base) fail(item.loc(), "missing key 'base_dn' (e.g. DC=corp,DC=example,DC=com)");
      source.base_dn = get_string(*base);
      if (const Field* f = map.get("filter")) {
        source.filter = get_string(*f);
        if (!source.filter.starts_with("(") || !source.filter.ends_with(")")) {
          fail(f->loc(), "an LDAP filter is enclosed in parentheses");
        }
      }
      if (const Field* f = map.get("start_tls")) source.start_tls = get_bool(*f).value;
      if (const Field* f = map.get("tls_ca_file")) {
        source.tls_ca_file = get_path(*f).value;
        warn_if_missing(get_path(*f), "tls_ca_file");
      }
      const bool tls = source.start_tls || std::all_of(source.urls.begin(), source.urls.end(),
                                                       [](const std::string& url) {
                                                         return url.starts_with("ldaps://");
                                                       });
      std::string bind = "gssapi";
      if (const Field* f = map.get("bind")) bind = get_string(*f);
      if (bind == "gssapi") {
        source.bind = LdapBind::kGssapi;
        const Field* f = map.get("credential");
        if (!f) fail(item.loc(), "bind: gssapi needs credential (a kerberos profile)");
        const auto credential = located_string(*f);
        check_credential_exists(credential);
        if (config_.credentials.at(credential.value).method != AuthMethod::kKerberos) {
          fail(credential.loc, "profile " + quote(credential.value) + " is not auth: kerberos");
        }
        source.credential = credential.value;
        for (const char* simple_only : {"bind_dn", "bind_password_file"}) {
          if (const Field* g = map.get(simple_only)) fail(g->key_loc(), "only with bind: simple");
        }
      } else if (bind == "simple") {
        source.bind = LdapBind::kSimple;
        const Field* dn = map.get("bind_dn");
        const Field* password = map.get("bind_password_file");
        if (!dn || !password) fail(item.loc(), "bind: simple needs bind_dn and bind_password_file");
        // The password would cross the network in clear text.
        if (!tls) fail(map.get("bind")->loc(), "bind: simple needs ldaps:// URLs or start_tls");
        source.bind_dn = get_string(*dn);
        const auto path = get_path(*password);
        source.bind_password_file = path.value;
        source.bind_password = read_password_file(path);
        if (const Field* g = map.get("credential")) fail(g->key_loc(), "only with bind: gssapi");
      } else {
        fail(map.get("bind")->loc(), "bind must be gssapi or simple, got " + quote(bind));
      }
      if (const Field* f = map.get("page_size")) source.page_size = get_int(*f, 1, 100000).value;
      if (const Field* f = map.get("max_hosts")) {
        source.max_hosts = static_cast<std::size_t>(get_int(*f, 1, 10000000).value);
      }
      if (const Field* f = map.get("refresh_interval")) {
        source.refresh_interval = get_duration(*f).value;
      }
      if (const Field* f = map.get("max_stale_age")) {
        source.max_stale_age = f->value.IsScalar() && f->value.Scalar() == "never"
                                   ? Duration::zero()
                                   : get_duration(*f).value;
      }
      if (const Field* f = map.get("timeout")) source.timeout = get_duration(*f).value;
      if (const Field* f = map.get("ou_label")) {
        source.ou_label = f->value.IsScalar() && f->value.Scalar().empty() ? "" : get_string(*f);
        if (!source.ou_label.empty() && !collectors::valid_label_name(source.ou_label)) {
          fail(f->loc(), "invalid label name (use [a-zA-Z_][a-zA-Z0-9_]*)");
        }
      }
      if (const Field* f = map.get("attribute_labels")) {
        source.attribute_labels = get_labels(*f).value;  // label name -> attribute name
      }
      std::optional<TargetSpec> defaults;
      if (const Field* f = map.get("defaults"); f && !f->value.IsNull()) {
        defaults = parse_target_spec(file, *f, true);
        if (defaults->credential) check_credential_exists(*defaults->credential);
      }
      // The per-host settings are resolved once, as a target named after the source
      // (taken back out of the static targets), so they follow the same rules.
      TargetSpec placeholder;
      placeholder.loc = item.loc();
      placeholder.name = Located<std::string>{"inventory_ldap:" + source.name, name->loc()};
      add_target(placeholder, defaults);
      source.defaults = std::move(config_.targets.back());
      config_.targets.pop_back();
      target_sources_.erase(source.defaults.name);
      config_.inventory_ldap.push_back(std::move(source));
    }
  }

  Config config_;
  GlobalSpec global_;
  std::vector<std::string> builtin_names_;
  std::map<std::string, std::string> custom_sources_;
  std::map<std::string, std::string> target_sources_;
  std::map<std::vector<std::string>,
           std::shared_ptr<const std::map<std::string, collectors::CollectorPtr>>>
      compat_collectors_;
  std::set<std::string> basic_http_warned_;
};

}  // namespace

std::size_t effective_max_response_bytes(const PollLimits& limits, const WinrmOptions& winrm) {
  if (limits.max_response_bytes != PollLimits::kAuto) return limits.max_response_bytes;
  return 2 * std::size_t{winrm.max_envelope_size} + 64 * 1024;
}

Config load(const std::string& path) { return Loader().load(path); }

}  // namespace config
