// Process-wide self metrics: build info, config reloads, scheduler lag, WinRM transport
// counters and scheduler state, all written by the exposition's own FamilyWriter (one
// serializer for the whole /metrics body; no metrics registry).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connect_cause.h"
#include "scheduler.h"
#include "winrm/transport.h"

namespace exporter {

class Telemetry {
 public:
  Telemetry(std::string version, std::string revision);

  void observe_lag(double seconds);
  void record_reload(bool success);
  void set_scheduler_stats(std::function<Scheduler::Stats()> stats,
                           std::function<std::vector<Scheduler::Backoff>()> backoffs = nullptr) {
    scheduler_stats_ = std::move(stats);
    scheduler_backoffs_ = std::move(backoffs);
  }
  const std::shared_ptr<winrm::TransportCounters>& transport() const { return transport_; }
  const std::shared_ptr<ConnectCauses>& connect_causes() const { return connect_causes_; }

  void render(std::string& out) const;

 private:
  // Upper bounds of winrm_exporter_scheduler_lag_seconds' buckets (+Inf implied).
  // 0.25-2 s around the 1 s target of issue 10 (lag p99 < 1 s must be readable).
  static constexpr std::array<double, 11> kLagBuckets = {0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                                                         1,     2,    5,    15,  60};

  std::string build_labels_;  // rendered once: compiler, revision, version
  mutable std::mutex reload_mutex_;
  double reload_successful_ = 0;
  double reload_timestamp_ = 0;
  std::uint64_t reloads_total_ = 0;
  std::uint64_t reload_failures_total_ = 0;
  // One mutex for the histogram, so a scrape sees count, sum and buckets of the same
  // observations (_count equals the +Inf bucket).
  mutable std::mutex lag_mutex_;
  std::array<std::uint64_t, kLagBuckets.size() + 1> lag_buckets_{};  // not cumulative; last: +Inf
  double lag_sum_ = 0;
  std::shared_ptr<winrm::TransportCounters> transport_ =
      std::make_shared<winrm::TransportCounters>();
  std::shared_ptr<ConnectCauses> connect_causes_ = std::make_shared<ConnectCauses>();
  std::function<Scheduler::Stats()> scheduler_stats_;
  std::function<std::vector<Scheduler::Backoff>()> scheduler_backoffs_;
};

}  // namespace exporter
