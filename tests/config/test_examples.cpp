// The shipped example config (config/examples/exporter.yml plus its inventory) loads.
#include <doctest/doctest.h>

#include <cstdlib>

#include "config/config.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_examples {

TEST_CASE("config/examples/exporter.yml loads") {
  ::setenv("WINRM_MONITOR_PASSWORD", "example-basic-password", 1);
  ::setenv("WINRM_NTLM_PASSWORD", "example-ntlm-password", 1);
  const std::string path = std::string(WINRM_SOURCE_DIR) + "/config/examples/exporter.yml";
  const config::Config c = config::load(path);
  CHECK(c.credentials.size() == 3);
  CHECK(c.collectors.contains("iis_app_pools"));
  // Targets from the main file and both inventory files.
  CHECK(c.targets.size() >= 6);
  bool from_inventory = false;
  for (const auto& target : c.targets) {
    CHECK(target.port > 0);
    CHECK(target.timeout < target.interval);
    CHECK_FALSE(target.collectors.empty());
    if (target.source.find("/inventory/") != std::string::npos) from_inventory = true;
  }
  CHECK(from_inventory);
  CHECK_FALSE(config::describe(c).empty());
  // The example spells out the defaults, and a 2008 R2 target overrides one field.
  CHECK(c.defaults.winrm == config::WinrmOptions{});
  CHECK(c.defaults.limits == config::PollLimits{});
  for (const auto& target : c.targets) {
    if (target.name != "legacy-2008r2") continue;
    CHECK(target.winrm.max_envelope_size == 153600);
    CHECK(target.winrm.max_elements == 32000);
    CHECK(target.limits.max_rows_per_poll == 20000);
  }
}

}  // namespace test_examples
