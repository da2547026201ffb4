// Integration test: Session over HTTPS + Basic + CA verification against the real
// winrm-sim binary (testsupport/sim_process.h), one virtual host per behaviour.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testsupport/sim_process.h"
#include "winrm/auth.h"
#include "winrm/session.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_session_sim {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int kServices = 37;  // per-host override: the row count the sim must serve
constexpr int kPageSize = 5;

const char* kConfig =
    R"(https: {address: 127.0.0.1, port: 0, cert: {dir}/server.pem, key: {dir}/server.key}
keep_alive_timeout: 1s
page_size: 5
users:
  - {username: monitor, password: s3cret}
hosts:
  - {name: win01.sim.test, services: 37}
  - {name: reuse.sim.test}
  - {name: idle.sim.test}
  - {name: access.sim.test, fault: access_denied}
  - {name: class.sim.test, fault: invalid_class}
  - {name: uri.sim.test, fault: invalid_resource_uri}
  - {name: quota.sim.test, fault: quota_exceeded}
  - {name: timedout.sim.test, fault: timed_out}
  - {name: expired.sim.test, fault: context_expired}
  - {name: envelope.sim.test, fault: max_envelope}
  - {name: pulltimeouts.sim.test, services: 37, pull_timeouts: 2}
  - {name: expireonce.sim.test, services: 37, expire_context_once: true}
  - {name: trickle.sim.test, trickle_bytes_per_second: 20}
  - {name: oversized.sim.test, oversized_bytes: 20000000}
  - {name: closemid.sim.test, close_mid_body: true}
  - {name: deny.sim.test, always_401: true}
  - {name: malformed.sim.test, malformed_xml: true}
)";

// The sim process with its certificates in a temp dir; stopped by PID on scope exit.
class Sim {
 public:
  Sim() : process_(dir_.path(), kConfig) {
    port_ = process_.port("https");
    REQUIRE_MESSAGE(port_ != 0, "no https port in the ports file");
  }

  winrm::SessionOptions options(const std::string& host) const {
    winrm::SessionOptions o;
    o.endpoint.host = host;
    o.endpoint.connect_address = "127.0.0.1";
    o.endpoint.port = port_;
    o.endpoint.scheme = winrm::Scheme::kHttps;
    o.endpoint.ca_file = (dir_ / "ca.pem").string();
    o.max_elements = 32000;
    return o;
  }

 private:
  // Certificates first: the sim's config names them.
  struct CertDir : testsupport::TempDir {
    CertDir() : TempDir("winrm-sim-test") { simtest::gen_certs(path()); }
  } dir_;
  simtest::SimProcess process_;
  int port_ = 0;
};

Sim& sim() {
  static Sim instance;
  return instance;
}

std::shared_ptr<winrm::Auth> monitor() { return winrm::make_basic_auth("monitor", "s3cret"); }

winrm::Result<std::vector<winrm::Row>> query(
    const std::string& host, std::string wql, std::chrono::milliseconds budget = 10s,
    std::shared_ptr<winrm::TransportCounters> counters = nullptr,
    std::shared_ptr<winrm::Auth> auth = monitor()) {
  winrm::Session session(sim().options(host), std::move(auth), std::move(counters));
  return session.enumerate("root/cimv2", wql, winrm::Clock::now() + budget);
}

}  // namespace

TEST_CASE("multi-page enumeration returns every row the sim serves") {
  auto counters = std::make_shared<winrm::TransportCounters>();
  auto rows = query("win01.sim.test", "SELECT * FROM Win32_Service", 10s, counters);
  REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
  CHECK(rows->size() == static_cast<std::size_t>(kServices));
  std::set<std::string> names;
  for (const auto& row : *rows) names.insert(row.string("Name").value_or(""));
  CHECK(names.size() == rows->size());  // no page served twice
  // One instance in the EnumerateResponse, then pages of page_size: several Pulls.
  CHECK(counters->requests.load() >= 1 + (kServices - 1) / kPageSize);
  CHECK(counters->connections_opened.load() == 1);

  // A projection partitioned by WHERE adds up to the same rows.
  auto running = query("win01.sim.test", "SELECT Name FROM Win32_Service WHERE State = 'Running'");
  auto other = query("win01.sim.test", "SELECT Name FROM Win32_Service WHERE State <> 'Running'");
  REQUIRE(running.has_value());
  REQUIRE(other.has_value());
  CHECK(running->size() + other->size() == rows->size());
}

TEST_CASE("each fault kind becomes a kWsmanFault with its class") {
  const std::vector<std::pair<std::string, winrm::FaultClass>> cases = {
      {"access.sim.test", winrm::FaultClass::kAccessDenied},
      {"class.sim.test", winrm::FaultClass::kInvalidClass},
      {"uri.sim.test", winrm::FaultClass::kInvalidResourceUri},
      {"quota.sim.test", winrm::FaultClass::kQuotaExceeded},
      {"timedout.sim.test", winrm::FaultClass::kTimedOut},
      {"expired.sim.test", winrm::FaultClass::kContextExpired},
      {"envelope.sim.test", winrm::FaultClass::kMaxEnvelopeExceeded},
  };
  for (const auto& [host, expected] : cases) {
    CAPTURE(host);
    auto rows = query(host, "SELECT * FROM Win32_OperatingSystem");
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kWsmanFault);
    CHECK(rows.error().http_status == 500);
    REQUIRE(rows.error().fault.has_value());
    CHECK(std::string(winrm::to_string(winrm::classify(*rows.error().fault))) ==
          std::string(winrm::to_string(expected)));
  }
  // An unknown class on a healthy host is the CannotProcessFilter fault.
  auto unknown = query("win01.sim.test", "SELECT * FROM Win32_NoSuchClass");
  REQUIRE_FALSE(unknown.has_value());
  REQUIRE(unknown.error().fault.has_value());
  CHECK(winrm::classify(*unknown.error().fault) == winrm::FaultClass::kInvalidClass);
}

TEST_CASE("timed-out Pulls are retried and an expired context restarts once") {
  for (std::string host : {"pulltimeouts.sim.test", "expireonce.sim.test"}) {
    CAPTURE(host);
    auto counters = std::make_shared<winrm::TransportCounters>();
    auto rows = query(host, "SELECT * FROM Win32_Service", 10s, counters);
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    CHECK(rows->size() == static_cast<std::size_t>(kServices));
    // The retries really happened: more requests than a clean run needs.
    CHECK(counters->requests.load() > 1 + (kServices - 1) / kPageSize);
  }
}

TEST_CASE("transport failures: trickle deadline, size cap, close mid-body, malformed XML") {
  SUBCASE("trickling host hits the deadline") {
    const auto start = winrm::Clock::now();
    auto rows = query("trickle.sim.test", "SELECT * FROM Win32_Service", 2s);
    const auto elapsed = winrm::Clock::now() - start;
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kTimeout);
    CHECK(elapsed < 8s);  // sanity bound; the full trickle would take minutes
  }
  SUBCASE("oversized response hits the size cap") {
    auto options = sim().options("oversized.sim.test");
    options.endpoint.max_response_bytes = 1024 * 1024;
    winrm::Session session(options, monitor(), nullptr);
    auto rows = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                  winrm::Clock::now() + 10s);
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kTransport);
    CHECK(rows.error().message == "response exceeds 1048576 bytes");
    CHECK(rows.error().limit == winrm::Limit::kResponseBytes);
  }
  SUBCASE("connection closed mid-body") {
    auto rows = query("closemid.sim.test", "SELECT * FROM Win32_OperatingSystem");
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kTransport);
  }
  SUBCASE("malformed XML") {
    auto rows = query("malformed.sim.test", "SELECT * FROM Win32_OperatingSystem");
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kParse);
  }
}

TEST_CASE("authentication failures are kAuth") {
  auto denied = query("deny.sim.test", "SELECT * FROM Win32_OperatingSystem");
  REQUIRE_FALSE(denied.has_value());
  CHECK(denied.error().kind == winrm::ErrorKind::kAuth);
  CHECK(denied.error().http_status == 401);
  CHECK(denied.error().message.find("Basic") != std::string::npos);

  auto wrong = query("win01.sim.test", "SELECT * FROM Win32_OperatingSystem", 10s, nullptr,
                     winrm::make_basic_auth("monitor", "not-the-password"));
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().kind == winrm::ErrorKind::kAuth);
  CHECK(wrong.error().message.find("not-the-password") == std::string::npos);

  // Certificate verification is on: a CA that did not sign the sim's cert fails.
  auto options = sim().options("win01.sim.test");
  options.endpoint.ca_file = "/etc/ssl/certs/ca-certificates.crt";
  winrm::Session session(options, monitor(), nullptr);
  auto untrusted = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                     winrm::Clock::now() + 10s);
  REQUIRE_FALSE(untrusted.has_value());
  CHECK(untrusted.error().kind == winrm::ErrorKind::kTls);
}

TEST_CASE("reconnect after the sim closes an idle connection") {
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(sim().options("idle.sim.test"), monitor(), counters);
  auto first = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                 winrm::Clock::now() + 10s);
  REQUIRE_MESSAGE(first.has_value(), first.error().describe());
  std::this_thread::sleep_for(1500ms);  // keep_alive_timeout is 1 s
  auto second = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                  winrm::Clock::now() + 10s);
  REQUIRE_MESSAGE(second.has_value(), second.error().describe());
  CHECK(second->size() == first->size());
  CHECK(counters->reconnects.load() == 1);
  CHECK(counters->connections_opened.load() == 2);
}

TEST_CASE("100 sequential queries to one host use one TLS connection") {
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(sim().options("reuse.sim.test"), monitor(), counters);
  for (int i = 0; i < 100; ++i) {
    auto rows = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                  winrm::Clock::now() + 10s);
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    REQUIRE(rows->size() == 1);
  }
  CHECK(counters->connections_opened.load() == 1);
  CHECK(counters->tls_handshakes.load() == 1);
  CHECK(counters->reconnects.load() == 0);
}

}  // namespace test_session_sim
