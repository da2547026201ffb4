#include <doctest/doctest.h>

#include "service_discovery.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_service_discovery {

using namespace exporter;

TEST_CASE("http_sd: empty inventory is []") { CHECK(render_sd_json({}) == "[]\n"); }

TEST_CASE("http_sd: targets grouped by identical label sets, sorted") {
  std::vector<SdTarget> targets = {
      {"web02", {{"site", "b"}, {"role", "web"}}},
      {"dc01", {{"site", "a"}}},
      {"web01", {{"role", "web"}, {"site", "b"}}},  // same set as web02, other order
      {"bare01", {}},
      {"dc02", {{"site", "a"}}},
  };
  std::string expected =
      "[\n"
      "{\"targets\":[\"bare01\"],\"labels\":{}},\n"
      "{\"targets\":[\"web01\",\"web02\"],\"labels\":{\"role\":\"web\",\"site\":\"b\"}},\n"
      "{\"targets\":[\"dc01\",\"dc02\"],\"labels\":{\"site\":\"a\"}}\n"
      "]\n";
  CHECK(render_sd_json(targets) == expected);
  // Input order does not matter.
  std::vector<SdTarget> reversed(targets.rbegin(), targets.rend());
  CHECK(render_sd_json(reversed) == expected);
}

TEST_CASE("http_sd: names and label values are JSON-escaped") {
  std::vector<SdTarget> targets = {
      {"we\"ird\\host", {{"note", "line1\nline2\ttab\x01"}, {"utf8", "caf\xc3\xa9 \xff"}}}};
  CHECK(
      render_sd_json(targets) ==
      "[\n{\"targets\":[\"we\\\"ird\\\\host\"],\"labels\":{\"note\":\"line1\\nline2\\ttab\\u0001\","
      "\"utf8\":\"caf\xc3\xa9 \xef\xbf\xbd\"}}\n]\n");
}

}  // namespace test_service_discovery
