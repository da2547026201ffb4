// A password must never reach an error, a log line or the --config.check summary.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <ostream>
#include <sstream>

#include "config/config.h"
#include "config/secret.h"
#include "temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_secret {

// Secret has neither an fmt formatter nor operator<<, so printing it does not compile.
static_assert(!fmt::is_formattable<config::Secret>::value);
template <typename T>
concept Streamable = requires(std::ostream& out, const T& value) {
  out << value;
};
static_assert(!Streamable<config::Secret>);
static_assert(!std::is_convertible_v<config::Secret, std::string>);

namespace {

constexpr const char* kMarker = "Pa55-MARKER-7f3a9c";

// Captures everything the default logger writes while alive.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return stream_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream stream_;
};

std::string error_or_empty(const std::string& path) {
  try {
    config::load(path);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("secret values stay out of errors, logs and describe()") {
  TempDir dir;
  // World-readable on purpose: the permission warning must name the file, not the content.
  dir.write("monitor.pass", std::string(kMarker) + "\n", 0644);
  ::setenv("WINRM_SECRET_TEST_ENV", kMarker, 1);
  const std::string credentials = R"(credentials:
  filed: {auth: basic, username: u, password_file: monitor.pass}
  env: {auth: ntlm, username: v, password_env: WINRM_SECRET_TEST_ENV}
  kerb: {auth: kerberos, username: w@EXAMPLE.COM, password_file: monitor.pass}
)";
  LogCapture capture;

  const std::string good = dir.write("good.yml", credentials + R"(targets:
  - {name: a, credential: filed, scheme: http}
  - {name: b, credential: env}
  - {name: c, credential: kerb}
)");
  const config::Config c = config::load(good);
  // Not vacuous: the secrets were read, and warnings were logged through the capture.
  REQUIRE(c.credentials.at("filed").password.reveal() == kMarker);
  REQUIRE(c.credentials.at("env").password.reveal() == kMarker);
  REQUIRE(c.credentials.at("kerb").password.reveal() == kMarker);
  CHECK(c.credentials.at("filed").password.str() == "<secret>");
  const std::string summary = config::describe(c);
  CHECK(summary.find("<secret>") != std::string::npos);
  CHECK(summary.find(kMarker) == std::string::npos);

  // Error paths after the secrets were read, and an inline password holding the marker.
  const std::string failing[] = {
      credentials + "targets:\n  - {name: a, credential: missing}\n",
      credentials + "targets:\n  - {name: a, credential: filed, port: 0}\n",
      credentials + "global: {interval: 1s}\n",
      credentials + "bogus: 1\n",
      std::string("credentials:\n  p: {auth: basic, username: u, password: ") + kMarker + "}\n",
      std::string("credentials:\n  p: {auth: basic, username: u, password: '") + kMarker + "\n",
      std::string("credentials:\n  p: {auth: basic, username: u, passwrd: ") + kMarker + "}\n",
      std::string("credentials:\n  p: {auth: basic, username: ") + kMarker +
          ", password_file: monitor.pass, password_env: WINRM_SECRET_TEST_ENV}\n",
  };
  int errors = 0;
  for (const auto& text : failing) {
    CAPTURE(text);
    const std::string error = error_or_empty(dir.write("bad.yml", text));
    CHECK_FALSE(error.empty());
    errors += error.empty() ? 0 : 1;
    CHECK(error.find(kMarker) == std::string::npos);
  }
  CHECK(errors == static_cast<int>(std::size(failing)));

  spdlog::default_logger()->flush();
  const std::string logs = capture.text();
  CHECK(logs.find("monitor.pass") != std::string::npos);  // the permission warning
  CHECK(logs.find("basic auth over http") != std::string::npos);
  CHECK(logs.find(kMarker) == std::string::npos);
}

TEST_CASE("Secret: copies share one buffer; wipe() overwrites a string's whole capacity") {
  config::Secret secret{std::string(kMarker)};
  config::Secret copy = secret;
  CHECK(secret.use_count() == 2);
  CHECK(&copy.reveal() == &secret.reveal());  // the same bytes, not a copy
  CHECK(copy == secret);
  CHECK(config::Secret(std::string(kMarker)) == secret);  // equal content, other buffer
  CHECK_FALSE(config::Secret(std::string("other")) == secret);

  std::string text = std::string(kMarker) + std::string(kMarker);  // heap-allocated
  text.resize(4);  // bytes past size() still hold the rest of the password
  config::wipe(text);
  CHECK(text.empty());
  const char* bytes = text.data();
  bool all_zero = true;
  for (std::size_t i = 0; i < text.capacity(); ++i) all_zero = all_zero && bytes[i] == '\0';
  CHECK(all_zero);
}

TEST_CASE(
    "password_file and keytab may live in ${CREDENTIALS_DIRECTORY} (systemd LoadCredential=)") {
  TempDir dir;
  // As systemd's LoadCredential=winrm-exporter:/etc/winrm-exporter/credentials names them.
  dir.write("creds/winrm-exporter_monitor.pass", std::string(kMarker) + "\n");
  dir.write("creds/winrm-exporter_client.keytab", "not a real keytab");
  const std::string path = dir.write("config.yml", R"(credentials:
  basic: {auth: basic, username: u, password_file: "${CREDENTIALS_DIRECTORY}/winrm-exporter_monitor.pass"}
  kerb: {auth: kerberos, username: w@EXAMPLE.COM, keytab: "${CREDENTIALS_DIRECTORY}/winrm-exporter_client.keytab"}
targets:
  - {name: a, credential: basic}
  - {name: b, credential: kerb}
)");
  ::setenv("CREDENTIALS_DIRECTORY", (dir.str() + "/creds").c_str(), 1);
  const config::Config c = config::load(path);
  CHECK(c.credentials.at("basic").password.reveal() == kMarker);
  CHECK(c.credentials.at("kerb").keytab == dir.str() + "/creds/winrm-exporter_client.keytab");

  ::unsetenv("CREDENTIALS_DIRECTORY");
  const std::string unset = load_error(path);
  CHECK(unset.find("${CREDENTIALS_DIRECTORY} is not set") != std::string::npos);
  CHECK(unset.find("config.yml:2") != std::string::npos);

  // Any other variable is an error, not a literal path.
  ::setenv("CREDENTIALS_DIRECTORY", (dir.str() + "/creds").c_str(), 1);
  const std::string other = dir.write("other.yml", R"(credentials:
  basic: {auth: basic, username: u, password_file: "${HOME}/monitor.pass"}
targets: [{name: a, credential: basic}]
)");
  CHECK(load_error(other).find("only ${CREDENTIALS_DIRECTORY} is expanded") != std::string::npos);
  ::unsetenv("CREDENTIALS_DIRECTORY");
}

}  // namespace test_secret
