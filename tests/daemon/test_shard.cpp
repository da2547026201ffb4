#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "flags.h"
#include "shard.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_shard {

using namespace exporter;

// Expected values generated with Python, the formula docs/operations.md checked against
// Prometheus 2.42's `hashmod` relabel action:
//   int.from_bytes(hashlib.md5(s.encode()).digest()[8:], "big") % n
TEST_CASE("hashmod matches Prometheus (MD5, last 8 bytes big-endian, mod N)") {
  struct Case {
    const char* name;
    std::uint64_t full;  // the 64-bit value before the modulus
    int mod2, mod3, mod7, mod10;
  };
  const Case cases[] = {
      {"", 16825458760271544958ULL, 0, 1, 1, 8},
      {"web01.example.com", 2720094798014309717ULL, 1, 2, 1, 7},
      {"dc01.example.com", 17045751354906098159ULL, 1, 2, 6, 9},
      {"host01.sim.test", 10844277570413931372ULL, 0, 0, 1, 2},
      {"win01.sim.test", 17858171372964428711ULL, 1, 2, 2, 1},
      {"h00001.sim.test", 11382968294250191283ULL, 1, 0, 1, 3},
      {"\xc3\xbcn\xc3\xaf"
       "code.example",
       11899574303652840252ULL, 0, 0, 0, 2},  // UTF-8 bytes
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.name));
    // mod 2^64-1 leaves every value below it unchanged: the whole big-endian tail.
    CHECK(prometheus_hashmod(c.name, std::numeric_limits<std::uint64_t>::max()) == c.full);
    CHECK(prometheus_hashmod(c.name, 2) == static_cast<std::uint64_t>(c.mod2));
    CHECK(prometheus_hashmod(c.name, 3) == static_cast<std::uint64_t>(c.mod3));
    CHECK(prometheus_hashmod(c.name, 7) == static_cast<std::uint64_t>(c.mod7));
    CHECK(prometheus_hashmod(c.name, 10) == static_cast<std::uint64_t>(c.mod10));
    CHECK(Shard{c.mod3, 3}.owns(c.name));
    CHECK_FALSE(Shard{(c.mod3 + 1) % 3, 3}.owns(c.name));
    CHECK(Shard{0, 3}.owner_of(c.name) == c.mod3);
  }
}

TEST_CASE("shards partition the targets: each name has exactly one owner") {
  constexpr int kTotal = 4;
  int per_shard[kTotal] = {};
  for (int i = 0; i < 400; ++i) {
    std::string name = "host" + std::to_string(i) + ".example.com";
    int owners = 0;
    for (int shard = 0; shard < kTotal; ++shard) {
      if (Shard{shard, kTotal}.owns(name)) {
        ++owners;
        ++per_shard[shard];
      }
    }
    CHECK(owners == 1);
  }
  for (int count : per_shard) CHECK(count > 50);  // roughly even (100 expected)
  // Without sharding every target is owned.
  CHECK(Shard{}.owns("anything"));
  CHECK(Shard{}.owner_of("web01.example.com") == 0);
}

TEST_CASE("--shard and --total-shards") {
  auto flags = parse_flags({});
  REQUIRE(flags);
  CHECK(flags->serve.shard == 0);
  CHECK(flags->serve.total_shards == 1);
  flags = parse_flags({"--shard=2", "--total-shards", "3"});
  REQUIRE(flags);
  CHECK(flags->serve.shard == 2);
  CHECK(flags->serve.total_shards == 3);

  auto bad = parse_flags({"--shard=3", "--total-shards=3"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("--shard") != std::string::npos);
  CHECK(bad.error().find("0..2") != std::string::npos);
  CHECK_FALSE(parse_flags({"--shard=1"}));  // total defaults to 1
  CHECK_FALSE(parse_flags({"--shard=-1", "--total-shards=2"}));
  bad = parse_flags({"--total-shards=0"});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("--total-shards") != std::string::npos);
  CHECK_FALSE(parse_flags({"--total-shards=two"}));
  CHECK(usage_text().find("--shard=N") != std::string::npos);
  CHECK(usage_text().find("--total-shards=M") != std::string::npos);
}

}  // namespace test_shard
