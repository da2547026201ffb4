// winrm::proxy_bypassed: the NO_PROXY rules the transport applies per host.
#include <doctest/doctest.h>

#include "winrm/transport.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_proxy_rules {

using winrm::proxy_bypassed;

namespace {

// One row: the host, the NO_PROXY value, and whether the proxy is bypassed.
struct Rule {
  const char* host;
  const char* no_proxy;
  bool bypassed;
};

void check_rules(std::initializer_list<Rule> rules) {
  for (const auto& rule : rules) {
    CAPTURE(rule.host);
    CAPTURE(rule.no_proxy);
    CHECK(proxy_bypassed(rule.host, rule.no_proxy) == rule.bypassed);
  }
}

}  // namespace

TEST_CASE("no_proxy: names, domain suffixes, wildcard") {
  check_rules({
      {"web01.corp.example", "", false},
      {"web01.corp.example", "*", true},
      {"web01.corp.example", "web01.corp.example", true},
      {"WEB01.Corp.Example", "web01.corp.example", true},
      {"web01.corp.example", "corp.example", true},
      {"web01.corp.example", ".corp.example", true},
      {"corp.example", ".corp.example", true},
      {"web01.notcorp.example", "corp.example", false},
      {"corp.example.net", "corp.example", false},
      {"b.example", "a.example, b.example", true},
      {"b.example", "a.example,,b.example", true},
      {"b.example", " a.example\tb.example ", true},
      {"c.example", "a.example,b.example", false},
  });
}

TEST_CASE("no_proxy: addresses and CIDR ranges") {
  check_rules({
      {"127.0.0.1", "127.0.0.1", true},
      {"127.0.0.2", "127.0.0.1", false},
      {"10.20.30.40", "10.0.0.0/8", true},
      {"11.20.30.40", "10.0.0.0/8", false},
      {"192.168.1.130", "192.168.1.128/25", true},
      {"192.168.1.127", "192.168.1.128/25", false},
      {"1.2.3.4", "0.0.0.0/0", true},
      {"fd00::1234", "fd00::/8", true},
      {"[fd00::1234]", "fd00::/8", true},
      {"fd00::1", "[fd00::1]", true},
      {"fe80::1", "fd00::/8", false},
      {"10.1.1.1", "10.0.0.0/33", false},  // malformed prefix: no match
      {"10.1.1.1", "fd00::/8", false},     // other family
  });
  // A name is never matched against a CIDR range.
  check_rules({
      {"host10.example", "10.0.0.0/8", false},
  });
}

}  // namespace test_proxy_rules
