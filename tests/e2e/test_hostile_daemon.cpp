// End to end: the daemon polls healthy winrm-sim hosts next to hostile endpoints
// (tests/winrm/hostile_server.h) that send oversized, endless or trickled byte streams or
// never answer. The daemon must survive (no signal), keep the healthy hosts on schedule,
// classify every hostile poll, end each within its timeout + 1 s, and stay under 256 MiB.
#include <doctest/doctest.h>

#include "e2e_util.h"
#include "hostile_server.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_hostile_daemon {

using namespace e2e;

namespace {

constexpr double kTimeoutSeconds = 1.5;  // the exporter's per-poll timeout below

long peak_rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Every hostile script reads the request first, like a real (broken) server would.
const std::vector<std::pair<std::string, hostile::Script>>& hostile_scripts() {
  static const std::vector<std::pair<std::string, hostile::Script>> scripts = {
      {"status-line",  // 8 MiB status line, no end
       [](hostile::Peer& peer) {
         if (!peer.read_request()) return;
         peer.send("HTTP/1.1 200 ");
         peer.send_repeated('A', 8u << 20);
       }},
      {"header-trickle",  // one header byte every 100 ms, for ever
       [](hostile::Peer& peer) {
         if (!peer.read_request()) return;
         peer.send("HTTP/1.1 200 OK\r\n");
         peer.trickle(std::string(100000, 'x'), std::chrono::milliseconds(100));
       }},
      {"endless-chunked",  // a body that never ends, in 64 KiB chunks
       [](hostile::Peer& peer) {
         if (!peer.read_request()) return;
         peer.send(
             "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
         const std::string chunk = "10000\r\n" + std::string(1 << 16, '<') + "\r\n";
         for (int i = 0; i < 20000 && peer.send(chunk); ++i) {
         }
       }},
      {"silent",  // accepts, reads the request, never answers
       [](hostile::Peer& peer) {
         if (!peer.read_request()) return;
         peer.wait_for_close(std::chrono::seconds(30));
       }},
      {"garbage",  // not HTTP at all
       [](hostile::Peer& peer) {
         if (!peer.read_request()) return;
         peer.send_repeated('\0', 1u << 20);
       }},
  };
  return scripts;
}

}  // namespace

TEST_CASE("the daemon survives hostile endpoints and keeps healthy hosts on schedule") {
  TempDir dir;
  write_file(dir / "monitor.pass", "s3cret\n");
  Sim sim(dir,
          "keep_alive_timeout: 30s\npage_size: 50\nusers:\n  - {username: monitor, password: "
          "s3cret}\nhosts:\n  - {name: good1.sim.test}\n  - {name: good2.sim.test}\n"
          "  - {name: good3.sim.test}\n");
  const hostile::TlsFiles tls{(dir / "server.pem").string(), (dir / "server.key").string()};
  std::vector<std::unique_ptr<hostile::Server>> servers;
  std::string yaml = "global:\n  interval: 2s\n  timeout: 1500ms\n  scheme: https\n  port: " +
                     std::to_string(sim.https_port) +
                     "\n  tls_ca_file: " + (dir / "ca.pem").string() +
                     "\n  credential: sim\ncredentials:\n  sim:\n    auth: basic\n"
                     "    username: monitor\n    password_file: " +
                     (dir / "monitor.pass").string() + "\ntargets:\n";
  const std::vector<std::string> healthy = {"good1.sim.test", "good2.sim.test", "good3.sim.test"};
  for (const auto& host : healthy) {
    yaml += "  - {name: " + host + ", connect_address: 127.0.0.1, collectors: [os, memory]}\n";
  }
  std::vector<std::string> evil;
  for (const auto& [name, script] : hostile_scripts()) {
    // Serial servers: a second parallel poll waits in the listen backlog, which is one more
    // hostile case (a TLS handshake that never starts).
    servers.push_back(
        std::make_unique<hostile::Server>(script, &tls, 1000, std::chrono::seconds(120)));
    evil.push_back(name + ".sim.test");
    yaml += "  - {name: " + evil.back() +
            ", connect_address: 127.0.0.1, port: " + std::to_string(servers.back()->port()) +
            ", collectors: [os, memory]}\n";
  }
  write_file(dir / "exporter.yml", yaml);
  Exporter exporter(dir, dir / "exporter.yml");

  auto errors_seen = [&](const std::string& body) {
    for (const auto& target : evil) {
      if (body.find("winrm_exporter_collector_errors_total{target=\"" + target) ==
          std::string::npos) {
        return false;
      }
    }
    return true;
  };
  auto healthy_ok = [&](const std::string& body) {
    for (const auto& target : healthy) {
      for (const char* collector : {"os", "memory"}) {
        auto value = sample_value(body, "winrm_exporter_collector_success{target=\"" + target +
                                            "\",collector=\"" + collector + "\"}");
        if (!value || *value != 1) return false;
      }
    }
    return true;
  };
  // Several rounds of hostile polls (interval 2 s, back-off after repeated failures).
  auto first = exporter.metrics_when(
      [&](const std::string& body) { return errors_seen(body) && healthy_ok(body); }, 30s);
  REQUIRE_MESSAGE(first.ok, first.body.substr(0, 4000));
  const auto started_before =
      sample_value(first.body, "winrm_exporter_scheduler_polls_started_total");
  REQUIRE(started_before.has_value());
  std::this_thread::sleep_for(6s);
  REQUIRE(exporter.process->running());
  const std::string body = exporter.metrics();
  CHECK(healthy_ok(body));
  // Healthy hosts kept their 2 s schedule: 3 hosts x 2 collectors x ~3 rounds in 6 s.
  const auto started_after = sample_value(body, "winrm_exporter_scheduler_polls_started_total");
  REQUIRE(started_after.has_value());
  CHECK(*started_after - *started_before >= 12);

  for (const auto& target : evil) {
    CAPTURE(target);
    // Classified: one of the transport-level kinds, never a crash or "other".
    bool classified = false;
    for (const char* kind : {"transport", "timeout", "tls", "http", "parse"}) {
      classified |= body.find("winrm_exporter_collector_errors_total{target=\"" + target +
                              "\",collector=\"os\",kind=\"" + kind + "\"}") != std::string::npos;
    }
    CHECK(classified);
    auto duration = sample_value(body, "winrm_exporter_collector_duration_seconds{target=\"" +
                                           target + "\",collector=\"os\"}");
    REQUIRE(duration.has_value());
    CHECK(*duration <= kTimeoutSeconds + 1.0);
    auto success = sample_value(
        body, "winrm_exporter_collector_success{target=\"" + target + "\",collector=\"os\"}");
    CHECK(success.value_or(-1) == 0);
  }
  const long peak_kib = peak_rss_kib(exporter.process->pid());
  MESSAGE("exporter peak RSS: " << peak_kib / 1024 << " MiB");
  CHECK(peak_kib > 0);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine and shadow memory inflate RSS
  CHECK(peak_kib < 256 * 1024);
#endif
  CHECK(exporter.process->stop() == 0);  // a clean exit on SIGTERM, not a signal
}

}  // namespace test_hostile_daemon
