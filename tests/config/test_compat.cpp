// `compat:` name sets: global default, inventory defaults and per-target values, and the
// collectors each target polls restricted to its sets.
#include <doctest/doctest.h>

#include <cstdlib>
#include <set>

#include "collectors/registry.h"
#include "config/config.h"
#include "temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_compat {

namespace {

std::set<std::string> family_names(const collectors::CollectorPtr& collector) {
  const auto families =
      collector->transform(std::vector<std::vector<winrm::Row>>(collector->queries().size()));
  REQUIRE(families.has_value());
  std::set<std::string> names;
  for (const auto& family : *families) names.insert(family.name);
  return names;
}

const char* kHeader = R"(credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
)";

}  // namespace

TEST_CASE("compat: v030 by default, pre030 or both per target") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string path = dir.write("c.yml", std::string(kHeader) + R"(global:
  credential: mon
targets:
  - name: current
  - name: old-dashboards
    compat: [pre030]
  - name: both
    compat: [v030, pre030]
)");
  const config::Config c = config::load(path);
  CHECK(c.defaults.compat == std::vector<std::string>{"v030"});
  REQUIRE(c.targets.size() == 3);
  const auto os = [&](std::size_t target) {
    REQUIRE(c.targets[target].compat_collectors);
    return family_names(c.targets[target].compat_collectors->at("os"));
  };
  const auto current = os(0), old = os(1), both = os(2);
  CHECK(current.contains("windows_os_install_time_timestamp_seconds"));
  CHECK_FALSE(current.contains("windows_cs_hostname"));
  CHECK_FALSE(current.contains("windows_os_time"));
  CHECK(old.contains("windows_cs_hostname"));
  CHECK(old.contains("windows_os_physical_memory_free_bytes"));
  CHECK_FALSE(old.contains("windows_os_install_time_timestamp_seconds"));
  CHECK(old.contains("windows_os_info"));  // in both sets
  for (const auto& name : current) CHECK(both.contains(name));
  for (const auto& name : old) CHECK(both.contains(name));
  CHECK(both.size() > current.size());
  // Targets with the same sets share one restricted map.
  CHECK(c.targets[0].compat_collectors != c.targets[1].compat_collectors);
  // Untagged collectors are the very same objects.
  CHECK(c.targets[0].compat_collectors->at("memory") == c.collectors.at("memory"));
  // The system collector's boot time is named per set.
  const auto system = [&](std::size_t target) {
    return family_names(c.targets[target].compat_collectors->at("system"));
  };
  CHECK(system(0).contains("windows_system_boot_time_timestamp"));
  CHECK_FALSE(system(0).contains("windows_system_system_up_time"));
  CHECK(system(1).contains("windows_system_system_up_time"));
  CHECK_FALSE(system(1).contains("windows_system_boot_time_timestamp"));
}

TEST_CASE("compat: global value, inventory defaults, and errors") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  dir.write("inv.yml", R"(defaults:
  compat: [v030]
targets:
  - name: from-inventory
)");
  const std::string path = dir.write("c.yml", std::string(kHeader) + R"(global:
  credential: mon
  compat: [pre030]
inventory_files: [inv.yml]
targets:
  - name: global-value
)");
  const config::Config c = config::load(path);
  CHECK(c.defaults.compat == std::vector<std::string>{"pre030"});
  for (const auto& target : c.targets) {
    CAPTURE(target.name);
    CHECK(target.compat == std::vector<std::string>{target.name == "global-value" ? "pre030"
                                                                                  : "v030"});
  }

  for (const auto& [text, expected] : std::vector<std::pair<std::string, std::string>>{
           {"  compat: [v031]\n", "unknown name set"},
           {"  compat: [v030, v030]\n", "listed twice"},
           {"  compat: []\n", "at least one"}}) {
    CAPTURE(text);
    const std::string bad = dir.write("bad.yml", std::string(kHeader) + "global:\n" + text);
    try {
      config::load(bad);
      FAIL("loaded");
    } catch (const config::ConfigError& error) {
      CHECK(std::string(error.what()).find(expected) != std::string::npos);
      CHECK(std::string(error.what()).find("global.compat") != std::string::npos);
    }
  }
}

}  // namespace test_compat
