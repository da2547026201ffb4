// Duration and size strings.
#include <doctest/doctest.h>

#include "config/config.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_units {

using namespace std::chrono_literals;
using config::Duration;

TEST_CASE("durations parse with descending units") {
  const std::pair<const char*, Duration> valid[] = {{"500ms", 500ms},
                                                    {"30s", 30s},
                                                    {"5m", 5min},
                                                    {"1h", 1h},
                                                    {"1d", 24h},
                                                    {"1m30s", 90s},
                                                    {"1h2m3s4ms", 3723004ms},
                                                    {"0s", 0ms},
                                                    {"90s", 90s},
                                                    {"1s500ms", 1500ms}};
  for (const auto& [text, expected] : valid) {
    CAPTURE(text);
    const auto parsed = config::parse_duration(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == expected);
  }
  const char* invalid[] = {"",    "30",   "s",    "-5s",   "5 s",  "1.5s", "30x",
                           "30S", "1s1m", "1m1m", "1ms5s", "5mss", "m5",   "99999999999999999999s"};
  for (const char* text : invalid) {
    CAPTURE(text);
    CHECK_FALSE(config::parse_duration(text).has_value());
  }
}

TEST_CASE("durations format back") {
  CHECK(config::format_duration(90s) == "1m30s");
  CHECK(config::format_duration(500ms) == "500ms");
  CHECK(config::format_duration(Duration(0)) == "0s");
  CHECK(config::format_duration(25h) == "1d1h");
  for (const char* text : {"1m30s", "500ms", "1h2m3s4ms", "2d"}) {
    CHECK(config::format_duration(*config::parse_duration(text)) == text);
  }
}

TEST_CASE("sizes parse binary and decimal units") {
  const std::pair<const char*, std::size_t> valid[] = {
      {"16MiB", 16u << 20}, {"512KiB", 512u << 10}, {"1GiB", 1u << 30}, {"4096", 4096},
      {"4096B", 4096},      {"10KB", 10'000},       {"2MB", 2'000'000}, {"1GB", 1'000'000'000}};
  for (const auto& [text, expected] : valid) {
    CAPTURE(text);
    const auto parsed = config::parse_size(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == expected);
  }
  for (const char* text :
       {"", "MiB", "16 MiB", "16mib", "1.5MiB", "-1", "16TiB", "99999999999999999999GiB"}) {
    CAPTURE(text);
    CHECK_FALSE(config::parse_size(text).has_value());
  }
}

}  // namespace test_units
