// winrm-sim's latency model: the seeded distribution's median and p99 per class, its
// determinism, the performance adapter stall's schedule, and the YAML that configures it
// (with the sim config's file:line errors). Pure functions of the seed: no clocks, no timing.
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "latency.h"
#include "testsupport/temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_latency {

using sim::LatencyClass;
using sim::LatencyModel;
using sim::Millis;

namespace {

std::vector<long long> draws(const LatencyModel& m, const char* host, LatencyClass cls, int n) {
  std::vector<long long> out;
  for (int i = 0; i < n; ++i)
    out.push_back(m.draw(host, cls, static_cast<std::uint64_t>(i)).count());
  std::sort(out.begin(), out.end());
  return out;
}

long long quantile(const std::vector<long long>& sorted, double q) {
  return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
}

}  // namespace

TEST_CASE("classes: perf counters fast, services and processes slow") {
  CHECK(sim::latency_class("Win32_PerfRawData_PerfOS_Processor") == LatencyClass::kPerf);
  CHECK(sim::latency_class("win32_perfrawdata_tcpip_tcpv4") == LatencyClass::kPerf);
  CHECK(sim::latency_class("Win32_Service") == LatencyClass::kSlow);
  CHECK(sim::latency_class("Win32_Process") == LatencyClass::kSlow);
  CHECK(sim::latency_class("Win32_ProcessStartup") == LatencyClass::kDefault);
  CHECK(sim::latency_class("Win32_OperatingSystem") == LatencyClass::kDefault);
  CHECK(sim::latency_class("") == LatencyClass::kDefault);
}

TEST_CASE("default profile: median ~150 ms and p99 ~1 s from the seeded generator") {
  sim::LatencyConfig config;
  config.enabled = true;
  LatencyModel model(config);
  for (const char* host : {"win01.sim.test", "host-b", "DC01"}) {
    CAPTURE(host);
    auto d = draws(model, host, LatencyClass::kDefault, 20000);
    CHECK(quantile(d, 0.5) >= 140);
    CHECK(quantile(d, 0.5) <= 160);
    CHECK(quantile(d, 0.99) >= 900);
    CHECK(quantile(d, 0.99) <= 1100);
    CHECK(d.front() >= 0);
    CHECK(d.back() <= 10 * 1000);  // capped tail
  }
  auto perf = draws(model, "win01", LatencyClass::kPerf, 20000);
  auto slow = draws(model, "win01", LatencyClass::kSlow, 20000);
  CHECK(quantile(perf, 0.5) >= 55);
  CHECK(quantile(perf, 0.5) <= 65);
  CHECK(quantile(perf, 0.99) >= 360);
  CHECK(quantile(perf, 0.99) <= 440);
  CHECK(quantile(slow, 0.5) >= 280);
  CHECK(quantile(slow, 0.5) <= 320);
  CHECK(quantile(slow, 0.99) >= 1800);
  CHECK(quantile(slow, 0.99) <= 2200);
}

TEST_CASE("the same seed gives the same latencies; hosts and seeds differ") {
  sim::LatencyConfig a_config, b_config;
  b_config.seed = 2;
  LatencyModel a(a_config), a2(a_config), b(b_config);
  int same_host_other_seed = 0, other_host = 0;
  for (std::uint64_t i = 0; i < 100; ++i) {
    CHECK(a.draw("win01", LatencyClass::kDefault, i) ==
          a2.draw("WIN01", LatencyClass::kDefault, i));
    same_host_other_seed +=
        a.draw("win01", LatencyClass::kDefault, i) == b.draw("win01", LatencyClass::kDefault, i);
    other_host +=
        a.draw("win01", LatencyClass::kDefault, i) == a.draw("win02", LatencyClass::kDefault, i);
  }
  CHECK(same_host_other_seed < 10);
  CHECK(other_host < 10);
  // next() walks the per-host sequence.
  LatencyModel c(a_config);
  for (std::uint64_t i = 0; i < 5; ++i)
    CHECK(c.next("win01", "Win32_OperatingSystem", Millis(0)) ==
          a.draw("win01", LatencyClass::kDefault, i));
}

TEST_CASE("the perf adapter stall: duration per period, per-host phase, perf classes only") {
  sim::LatencyConfig config;  // every 990 s, 60 s long, 20 s answers
  LatencyModel model(config);
  const long long period = config.stall_every.count();
  auto stalled_seconds = [&](const char* host, long long from_s, long long to_s) {
    long long n = 0;
    for (long long s = from_s; s < to_s; ++s) n += model.stalled(host, Millis(s * 1000));
    return n;
  };
  for (const char* host : {"win01", "win02", "win03"}) {
    CAPTURE(host);
    CHECK(stalled_seconds(host, 0, 3 * period / 1000) == 3 * 60);
    // One window per period: the next period repeats the same seconds.
    for (long long s = 0; s < period / 1000; s += 7)
      CHECK(model.stalled(host, Millis(s * 1000)) ==
            model.stalled(host, Millis(s * 1000 + period)));
  }
  // Hosts do not all stall at once.
  int together = 0;
  for (long long s = 0; s < period / 1000; ++s)
    together += model.stalled("win01", Millis(s * 1000)) &&
                model.stalled("win02", Millis(s * 1000)) &&
                model.stalled("win03", Millis(s * 1000));
  CHECK(together < 60);
  // During a stall perf classes answer after stall_delay; other classes do not stall.
  long long t = 0;
  while (!model.stalled("win01", Millis(t))) t += 1000;
  CHECK(model.next("win01", "Win32_PerfRawData_PerfOS_Memory", Millis(t)) == Millis(20000));
  CHECK(model.next("win01", "Win32_OperatingSystem", Millis(t)) < Millis(20000));
  sim::LatencyConfig off = config;
  off.stall = false;
  LatencyModel no_stall(off);
  CHECK_FALSE(no_stall.stalled("win01", Millis(t)));
}

TEST_CASE("latency: in the YAML; off when absent") {
  auto plain = sim::parse_config("http: {port: 0}\n", "");
  CHECK_FALSE(plain.latency.enabled);
  auto on = sim::parse_config("http: {port: 0}\nlatency:\n", "");
  CHECK(on.latency.enabled);
  CHECK(on.latency.fallback.median == Millis(150));
  auto custom = sim::parse_config(
      "http: {port: 0}\nlatency:\n  seed: 7\n  default: {median: 100ms, p99: 2s}\n"
      "  slow: {median: 1s}\n  stall: {every: 10m, duration: 30s, delay: 25s}\n",
      "");
  CHECK(custom.latency.enabled);
  CHECK(custom.latency.seed == 7);
  CHECK(custom.latency.fallback.median == Millis(100));
  CHECK(custom.latency.fallback.p99 == Millis(2000));
  CHECK(custom.latency.slow.median == Millis(1000));
  CHECK(custom.latency.slow.p99 == Millis(2000));
  CHECK(custom.latency.stall_every == Millis(600000));
  CHECK(custom.latency.stall_delay == Millis(25000));
  CHECK_FALSE(sim::parse_config("http: {port: 0}\nlatency: {stall: false}\n", "").latency.stall);
  CHECK_THROWS(sim::parse_config("http: {port: 0}\nlatency: {bogus: 1}\n", ""));
  CHECK_THROWS(sim::parse_config("http: {port: 0}\nlatency: {perf: {median: 2s, p99: 1s}}\n", ""));
}

namespace {

// The error text of loading `yaml` from a file, "" when it loads.
std::string load_error(const testsupport::TempDir& dir, const std::string& yaml) {
  const auto path = dir / "sim.yml";
  testsupport::write_file(path, yaml);
  try {
    sim::load_config(path.string());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("sim config: errors name file:line and the key; Go-style durations") {
  testsupport::TempDir dir("sim-config");
  const std::string file = (dir / "sim.yml").string();
  CHECK(load_error(dir, "http: {port: 0}\nhosts:\n  - {name: a}\n") == "");
  // An unknown key, with the closest known one.
  CHECK(load_error(dir, "http: {port: 0}\nhosts:\n  - name: a\n    clock_ofset: 3\n") ==
        file + ":4: hosts[]: unknown key 'clock_ofset' (did you mean 'clock_offset'?)");
  CHECK(load_error(dir, "http: {port: 0}\nhttp: {port: 1}\n") ==
        file + ":2: top level: repeated key 'http'");
  // Values: the value's own line.
  CHECK(load_error(dir, "http: {port: 0}\n\nlatency:\n  stall: {every: 10m, delay: 5x}\n") ==
        file + ":4: latency.stall.delay: bad duration '5x' (e.g. 500ms, 1.5s, 2m, 1h)");
  CHECK(load_error(dir, "http: {port: 0}\nhosts:\n  - {name: a, fault: timed_ot}\n") ==
        file + ":3: hosts[].fault: unknown fault 'timed_ot' (did you mean 'timed_out'?)");
  CHECK(load_error(dir, "http:\n  port: 70000\n") == file + ":2: http.port: out of range");
  // A syntax error and a missing file carry the name too.
  CHECK(load_error(dir, "http: {port: 0\n").starts_with(file + ":"));
  CHECK_THROWS_WITH(sim::load_config((dir / "missing.yml").string()),
                    doctest::Contains("missing.yml: cannot read"));
  // Text without a file: the name given, "sim config" by default.
  CHECK_THROWS_WITH(sim::parse_config("http: {port: 0}\nbogus: 1\n", ""),
                    doctest::Contains("sim config:2: top level: unknown key 'bogus'"));
  // Durations: fractions and compound units; a bare number other than 0 is refused.
  auto c = sim::parse_config(
      "http: {port: 0}\nkeep_alive_timeout: 1.5s\nenumeration_timeout: 1h30m\n"
      "hosts: [{name: a, delay: 0}]\n",
      "");
  CHECK(c.keep_alive_timeout == Millis(1500));
  CHECK(c.enumeration_timeout == Millis(5400000));
  CHECK(c.hosts.at(0).delay == Millis(0));
  CHECK_THROWS_WITH(sim::parse_config("http: {port: 0}\nkeep_alive_timeout: 30\n", ""),
                    doctest::Contains("sim config:2: keep_alive_timeout: bad duration '30'"));
}

}  // namespace test_latency
