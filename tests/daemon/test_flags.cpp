#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "flags.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_flags {

using namespace exporter;

TEST_CASE("serve flags: defaults and exporter-convention names") {
  auto flags = parse_flags({});
  REQUIRE(flags);
  CHECK(flags->command == Flags::Command::kServe);
  CHECK(flags->serve.listen_addresses == std::vector<std::string>{":9725"});
  CHECK(flags->serve.log_level == "info");
  CHECK(flags->serve.log_format == "logfmt");

  flags = parse_flags({"--config.file=/etc/x.yml", "--web.listen-address", "127.0.0.1:0",
                       "--web.listen-address=[::1]:9999", "--log.level=debug", "--log.format",
                       "json", "--config.check", "--scheduler.workers=3"});
  REQUIRE(flags);
  CHECK(flags->serve.config_file == "/etc/x.yml");
  CHECK(flags->serve.listen_addresses.size() == 2);
  CHECK(flags->serve.log_level == "debug");
  CHECK(flags->serve.log_format == "json");
  CHECK(flags->serve.config_check);
  CHECK(flags->serve.scheduler_workers == 3);
}

TEST_CASE("serve flags: errors name the flag") {
  auto bad = parse_flags({"--log.level=verbose"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("--log.level") != std::string::npos);
  bad = parse_flags({"--nope"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("--nope") != std::string::npos);
  CHECK_FALSE(parse_flags({"--config.file"}));
  CHECK_FALSE(parse_flags({"--web.listen-address=nohostport"}));
  CHECK_FALSE(parse_flags({"--web.listen-address=:99999"}));
  CHECK_FALSE(parse_flags({"stray"}));
  CHECK(parse_flags({"--help"})->command == Flags::Command::kHelp);
  CHECK(parse_flags({"--version"})->command == Flags::Command::kVersion);
}

TEST_CASE("listen addresses") {
  auto any = parse_listen_address(":9725");
  REQUIRE(any);
  CHECK(any->host == "0.0.0.0");
  CHECK(any->port == 9725);
  auto v6 = parse_listen_address("[::1]:80");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(parse_listen_address("localhost:0")->port == 0);
}

TEST_CASE("query subcommand") {
  auto flags = parse_flags({"query", "--config.file", "c.yml", "--target=win01", "--namespace",
                            "root/wmi", "SELECT Name FROM Win32_Service"});
  REQUIRE(flags);
  CHECK(flags->command == Flags::Command::kQuery);
  CHECK(flags->query.config_file == "c.yml");
  CHECK(flags->query.target == "win01");
  CHECK(flags->query.wmi_namespace == "root/wmi");
  CHECK(flags->query.wql == "SELECT Name FROM Win32_Service");

  flags = parse_flags({"query", "--host=h", "--user=u", "--password-file=p", "--scheme=http",
                       "--insecure-skip-verify", "--timeout=5s", "SELECT * FROM X"});
  REQUIRE(flags);
  CHECK(flags->query.port == 5985);
  CHECK(flags->query.insecure_skip_verify);
  CHECK(flags->query.timeout_seconds == 5);

  CHECK_FALSE(parse_flags({"query", "--host=h", "SELECT 1"}));           // no credentials
  CHECK_FALSE(parse_flags({"query", "--target=t", "SELECT 1"}));         // no config
  CHECK_FALSE(parse_flags({"query", "--config.file=c", "--target=t"}));  // no WQL
  CHECK_FALSE(parse_flags({"query", "--host=h", "--target=t", "--config.file=c", "--user=u",
                           "--password-file=p", "SELECT 1"}));  // both modes
  CHECK(parse_flags({"query", "--help"})->query_help);
}

TEST_CASE("help text lists every serve flag") {
  std::string usage = usage_text();
  for (const char* flag :
       {"--config.file", "--config.check", "--web.listen-address", "--web.max-requests",
        "--scheduler.workers", "--log.level", "--log.format", "--version", "--help"}) {
    CHECK_MESSAGE(usage.find(flag) != std::string::npos, flag);
  }
}

TEST_CASE("README's flag list is the --help text") {
  std::ifstream in(std::string(WINRM_SOURCE_DIR) + "/README.md");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string readme = buffer.str();
  std::string usage = usage_text();
  auto start = usage.find("Flags:\n");
  REQUIRE(start != std::string::npos);
  std::istringstream lines(usage.substr(start + 7));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line) && !line.empty()) {
    CHECK_MESSAGE(readme.find(line) != std::string::npos, line);
    ++checked;
  }
  CHECK(checked >= 9);
}

TEST_CASE("--scheduler.nice: 0..19, default 0 (equal terms)") {
  auto defaults = parse_flags({});
  REQUIRE(defaults.has_value());
  CHECK(defaults->serve.scheduler_nice == 0);
  auto five = parse_flags({"--scheduler.nice=5"});
  REQUIRE(five.has_value());
  CHECK(five->serve.scheduler_nice == 5);
  CHECK(parse_flags({"--scheduler.nice=19"}).has_value());
  auto high = parse_flags({"--scheduler.nice=20"});
  REQUIRE_FALSE(high.has_value());
  CHECK(high.error().find("0..19") != std::string::npos);
  CHECK_FALSE(parse_flags({"--scheduler.nice=-1"}).has_value());
}

TEST_CASE("--scheduler.workers: the accepted range is the one --help states") {
  CHECK(parse_flags({"--scheduler.workers=0"}).has_value());
  CHECK(parse_flags({"--scheduler.workers=2048"}).has_value());
  auto too_many = parse_flags({"--scheduler.workers=2049"});
  REQUIRE_FALSE(too_many.has_value());
  CHECK(too_many.error().find("0..2048") != std::string::npos);
  CHECK_FALSE(parse_flags({"--scheduler.workers=-1"}).has_value());
  CHECK(usage_text().find("Poll worker threads, 0..2048") != std::string::npos);
  CHECK(usage_text().find("2..32") == std::string::npos);
}

TEST_CASE("listener flags: web config, lifecycle off by default, connection caps") {
  auto flags = parse_flags({});
  REQUIRE(flags);
  CHECK(flags->serve.web_config_file.empty());
  CHECK_FALSE(flags->serve.web_enable_lifecycle);  // as in Prometheus
  CHECK(flags->serve.web_max_connections == 1024);
  CHECK(flags->serve.web_max_connections_per_client == 256);

  flags = parse_flags({"--web.config.file=/etc/web.yml", "--web.enable-lifecycle",
                       "--web.max-connections=50", "--web.max-connections-per-client", "0"});
  REQUIRE(flags);
  CHECK(flags->serve.web_config_file == "/etc/web.yml");
  CHECK(flags->serve.web_enable_lifecycle);
  CHECK(flags->serve.web_max_connections == 50);
  CHECK(flags->serve.web_max_connections_per_client == 0);

  auto bad = parse_flags({"--web.max-connections=10", "--web.max-connections-per-client=11"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("--web.max-connections-per-client") != std::string::npos);
  CHECK_FALSE(parse_flags({"--web.max-connections=0"}));
  CHECK_FALSE(parse_flags({"--web.enable-lifecycle=yes"}));
}

}  // namespace test_flags
