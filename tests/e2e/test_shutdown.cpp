// SIGTERM while polls hang on a stalling host: the exporter cancels them and exits cleanly
// well within systemd's TimeoutStopSec (20 s), not after the 60 s poll timeout.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "e2e_util.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_shutdown {

using namespace e2e;

TEST_CASE("SIGTERM cancels polls in flight: exit status 0 in far less than the poll timeout") {
  TempDir dir;
  const std::string password = "shutdown-test-password";
  write_file(dir / "monitor.pass", password + "\n");
  // Every request to the stall hosts waits for the whole OperationTimeout (about 58 s here)
  // before the sim answers, as a hung Windows host would.
  Sim sim(dir, "keep_alive_timeout: 120s\nusers:\n  - {username: monitor, password: \"" + password +
                   "\"}\nhosts:\n  - {name: stall1.sim.test, delay: 300s}\n"
                   "  - {name: stall2.sim.test, delay: 300s}\n");
  std::string yaml = "global:\n  interval: 61s\n  timeout: 60s\n  scheme: http\n  port: " +
                     std::to_string(sim.http_port) +
                     "\n  credential: sim\n  winrm: {operation_timeout: 60s}\n"
                     "credentials:\n  sim:\n    auth: basic\n"
                     "    username: monitor\n    password_file: " +
                     (dir / "monitor.pass").string() + "\ntargets:\n";
  for (const char* host : {"stall1.sim.test", "stall2.sim.test"}) {
    yaml += std::string("  - {name: ") + host + ", connect_address: 127.0.0.1}\n";
  }
  write_file(dir / "exporter.yml", yaml);
  Exporter exporter(dir, dir / "exporter.yml", {"--log.level=debug"});

  // Jobs start at a splay offset within the 61 s interval; with 2 hosts x the default
  // collectors the first comes within seconds (the offsets are fixed by the names).
  auto in_flight = exporter.metrics_when(
      [](const std::string& body) {
        auto running = sample_value(body, "winrm_exporter_scheduler_polls_running");
        return running && *running >= 1;
      },
      70s);
  REQUIRE_MESSAGE(in_flight.ok, in_flight.body);
  std::this_thread::sleep_for(500ms);  // the request is on the wire, the sim sleeping on it

  const auto signalled = std::chrono::steady_clock::now();
  exporter.process->signal(SIGTERM);
  const bool exited = wait_until([&] { return !exporter.process->running(); }, 30s);
  const auto took = std::chrono::steady_clock::now() - signalled;
  const int status = exporter.process->stop();  // reaped already: returns its exit status
  const std::string log = read_file(exporter.stderr_path);
  CAPTURE(log);
  REQUIRE(exited);
  CHECK(status == 0);
  // Correctness bound, not a benchmark: libcurl looks at the cancel flag about once a
  // second, a Release gets 500 ms; the polls' own deadline is 60 s.
  CHECK(took < 10s);
  MESSAGE("exit took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms");
  CHECK(log.find("poll cancelled") != std::string::npos);
  CHECK(log.find("poll failed") == std::string::npos);  // shutdown is not a host failure
  CHECK(log.find("stopped") != std::string::npos);
}

}  // namespace test_shutdown
