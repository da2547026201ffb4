// Process-wide self metrics: build info, config reloads, scheduler lag (prometheus-cpp
// registry + TextSerializer) and WinRM transport counters (rendered from atomics).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scheduler.h"
#include "winrm/transport.h"

namespace exporter {

class Telemetry {
 public:
  Telemetry(std::string version, std::string revision);

  void observe_lag(double seconds) { lag_->Observe(seconds); }
  void record_reload(bool success);
  void set_scheduler_stats(std::function<Scheduler::Stats()> stats,
                           std::function<std::vector<Scheduler::Backoff>()> backoffs = nullptr) {
    scheduler_stats_ = std::move(stats);
    scheduler_backoffs_ = std::move(backoffs);
  }
  const std::shared_ptr<winrm::TransportCounters>& transport() const { return transport_; }

  void render(std::string& out) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram* lag_ = nullptr;
  prometheus::Gauge* reload_successful_ = nullptr;
  prometheus::Gauge* reload_timestamp_ = nullptr;
  prometheus::Counter* reloads_total_ = nullptr;
  prometheus::Counter* reload_failures_total_ = nullptr;
  std::shared_ptr<winrm::TransportCounters> transport_ =
      std::make_shared<winrm::TransportCounters>();
  std::function<Scheduler::Stats()> scheduler_stats_;
  std::function<std::vector<Scheduler::Backoff>()> scheduler_backoffs_;
};

}  // namespace exporter
