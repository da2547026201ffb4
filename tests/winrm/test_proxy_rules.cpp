// winrm::proxy_bypassed: the NO_PROXY rules the transport applies per host.
#include <doctest/doctest.h>

#include "winrm/transport.h"

using winrm::proxy_bypassed;

TEST_CASE("no_proxy: names, domain suffixes, wildcard") {
  CHECK_FALSE(proxy_bypassed("web01.corp.example", ""));
  CHECK(proxy_bypassed("web01.corp.example", "*"));
  CHECK(proxy_bypassed("web01.corp.example", "web01.corp.example"));
  CHECK(proxy_bypassed("WEB01.Corp.Example", "web01.corp.example"));
  CHECK(proxy_bypassed("web01.corp.example", "corp.example"));
  CHECK(proxy_bypassed("web01.corp.example", ".corp.example"));
  CHECK(proxy_bypassed("corp.example", ".corp.example"));
  CHECK_FALSE(proxy_bypassed("web01.notcorp.example", "corp.example"));
  CHECK_FALSE(proxy_bypassed("corp.example.net", "corp.example"));
  CHECK(proxy_bypassed("b.example", "a.example, b.example"));
  CHECK(proxy_bypassed("b.example", "a.example,,b.example"));
  CHECK(proxy_bypassed("b.example", " a.example\tb.example "));
  CHECK_FALSE(proxy_bypassed("c.example", "a.example,b.example"));
}

TEST_CASE("no_proxy: addresses and CIDR ranges") {
  CHECK(proxy_bypassed("127.0.0.1", "127.0.0.1"));
  CHECK_FALSE(proxy_bypassed("127.0.0.2", "127.0.0.1"));
  CHECK(proxy_bypassed("10.20.30.40", "10.0.0.0/8"));
  CHECK_FALSE(proxy_bypassed("11.20.30.40", "10.0.0.0/8"));
  CHECK(proxy_bypassed("192.168.1.130", "192.168.1.128/25"));
  CHECK_FALSE(proxy_bypassed("192.168.1.127", "192.168.1.128/25"));
  CHECK(proxy_bypassed("1.2.3.4", "0.0.0.0/0"));
  CHECK(proxy_bypassed("fd00::1234", "fd00::/8"));
  CHECK(proxy_bypassed("[fd00::1234]", "fd00::/8"));
  CHECK(proxy_bypassed("fd00::1", "[fd00::1]"));
  CHECK_FALSE(proxy_bypassed("fe80::1", "fd00::/8"));
  CHECK_FALSE(proxy_bypassed("10.1.1.1", "10.0.0.0/33"));  // malformed prefix: no match
  CHECK_FALSE(proxy_bypassed("10.1.1.1", "fd00::/8"));     // other family
  // A name is never matched against a CIDR range.
  CHECK_FALSE(proxy_bypassed("host10.example", "10.0.0.0/8"));
}
