// Windows-like response times for winrm-sim: a long-tailed (log-normal) latency per
// request by WMI class, and the WMI Performance Adapter stall (perf classes answer after
// ~20 s for a while, about every 16.5 min). Both are pure functions of a seed, the host
// name and a per-host request count, so two runs with one seed see the same latencies.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sim {

using Millis = std::chrono::milliseconds;

struct LatencyProfile {
  Millis median{150};
  Millis p99{1000};
};

struct LatencyConfig {
  bool enabled = false;
  std::uint64_t seed = 1;
  LatencyProfile fallback{Millis(150), Millis(1000)};  // YAML `default`: every other class
  LatencyProfile perf{Millis(60), Millis(400)};        // Win32_PerfRawData_* / PerfFormatted
  LatencyProfile slow{Millis(300), Millis(2000)};      // Win32_Service, Win32_Process
  bool stall = true;
  Millis stall_every{990000};    // 16.5 min between the starts of two stalls of one host
  Millis stall_duration{60000};  // how long a stall lasts
  Millis stall_delay{20000};     // perf-class answer time during a stall
};

enum class LatencyClass { kDefault, kPerf, kSlow };
LatencyClass latency_class(std::string_view wmi_class);

class LatencyModel {
 public:
  explicit LatencyModel(LatencyConfig config);

  // The n-th latency of `host` in `cls` (deterministic; no stall).
  Millis draw(std::string_view host, LatencyClass cls, std::uint64_t n) const;
  // Whether `host`'s performance adapter stall is on `elapsed` after the simulator started
  // (each host has its own phase).
  bool stalled(std::string_view host, Millis elapsed) const;
  // The latency of `host`'s next request for `wmi_class` (thread-safe; counts per host).
  Millis next(std::string_view host, std::string_view wmi_class, Millis elapsed);

  const LatencyConfig& config() const { return config_; }

 private:
  const LatencyProfile& profile(LatencyClass cls) const;

  LatencyConfig config_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::uint64_t> counters_;
};

}  // namespace sim
