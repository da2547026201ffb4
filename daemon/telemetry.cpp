#include "telemetry.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "exposition.h"
#include "winrm/error.h"

namespace exporter {

Telemetry::Telemetry(std::string version, std::string revision)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("winrm_exporter_build_info")
      .Help("A metric with a constant '1' value labeled by version, revision and compiler.")
      .Register(*registry_)
      .Add({{"version", version}, {"revision", revision}, {"compiler", "g++ " __VERSION__}})
      .Set(1);
  reload_successful_ = &prometheus::BuildGauge()
                            .Name("winrm_exporter_config_last_reload_successful")
                            .Help("Whether the last configuration load or reload succeeded.")
                            .Register(*registry_)
                            .Add({});
  reload_timestamp_ = &prometheus::BuildGauge()
                           .Name("winrm_exporter_config_last_reload_success_timestamp_seconds")
                           .Help("Unix time of the last successful configuration load.")
                           .Register(*registry_)
                           .Add({});
  reloads_total_ = &prometheus::BuildCounter()
                        .Name("winrm_exporter_config_reloads_total")
                        .Help("Configuration loads and reloads attempted.")
                        .Register(*registry_)
                        .Add({});
  reload_failures_total_ = &prometheus::BuildCounter()
                                .Name("winrm_exporter_config_reload_failures_total")
                                .Help("Configuration loads and reloads that failed.")
                                .Register(*registry_)
                                .Add({});
  lag_ = &prometheus::BuildHistogram()
              .Name("winrm_exporter_scheduler_lag_seconds")
              .Help("Delay between a poll's due time and its start.")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
                                                               15, 60});
}

void Telemetry::record_reload(bool success) {
  reloads_total_->Increment();
  reload_successful_->Set(success ? 1 : 0);
  if (success) {
    reload_timestamp_->Set(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  } else {
    reload_failures_total_->Increment();
  }
}

void Telemetry::render(std::string& out) const {
  std::ostringstream stream;
  prometheus::TextSerializer().Serialize(stream, registry_->Collect());
  out += stream.str();

  using collectors::MetricType;
  const auto& t = *transport_;
  auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
    FamilyWriter(out, name, help, MetricType::kCounter).sample("", static_cast<double>(value));
  };
  counter("winrm_exporter_winrm_requests_total", "WinRM HTTP requests sent.", t.requests.load());
  counter("winrm_exporter_winrm_bytes_sent_total", "WinRM request bytes sent.",
          t.bytes_sent.load());
  counter("winrm_exporter_winrm_bytes_received_total", "WinRM response bytes received.",
          t.bytes_received.load());
  counter("winrm_exporter_winrm_connections_opened_total", "WinRM TCP connections opened.",
          t.connections_opened.load());
  counter("winrm_exporter_winrm_tls_handshakes_total", "WinRM TLS handshakes completed.",
          t.tls_handshakes.load());
  counter("winrm_exporter_winrm_reconnects_total",
          "WinRM requests retried on a fresh connection after the old one was closed.",
          t.reconnects.load());
  {
    FamilyWriter family(out, "winrm_exporter_winrm_transport_errors_total",
                        "WinRM request errors by kind.", MetricType::kCounter);
    for (int i = 0; i < winrm::kErrorKindCount; ++i) {
      std::string labels = render_label_pairs(
          {{"kind", std::string(winrm::to_string(static_cast<winrm::ErrorKind>(i)))}});
      family.sample(labels, static_cast<double>(t.errors_by_kind[i].load()));
    }
  }
  if (scheduler_stats_) {
    Scheduler::Stats stats = scheduler_stats_();
    auto gauge = [&](std::string_view name, std::string_view help, double value) {
      FamilyWriter(out, name, help, MetricType::kGauge).sample("", value);
    };
    gauge("winrm_exporter_scheduler_jobs", "Scheduled (target, collector) polls.",
          static_cast<double>(stats.jobs));
    gauge("winrm_exporter_scheduler_workers", "Poll worker threads.",
          static_cast<double>(stats.workers));
    gauge("winrm_exporter_scheduler_polls_running", "Polls running now.",
          static_cast<double>(stats.running));
    gauge("winrm_exporter_scheduler_targets_in_flight", "Targets with a poll running now.",
          static_cast<double>(stats.targets_in_flight));
    gauge("winrm_exporter_scheduler_polls_waiting",
          "Due polls waiting for a global or per-target concurrency slot.",
          static_cast<double>(stats.parked));
    counter("winrm_exporter_scheduler_polls_started_total", "Polls started.", stats.polls_started);
    counter("winrm_exporter_scheduler_polls_skipped_total",
            "Due polls skipped because their target was backing off after failures.",
            stats.polls_skipped);
    counter("winrm_exporter_scheduler_wakeups_total",
            "Scheduler thread wake-ups (timer or hand-off); about one per poll when idle.",
            stats.wakeups);
  }
  if (scheduler_backoffs_) {
    // Only targets in back-off or quota hold: zeros for 10,000 healthy targets are noise.
    auto backoffs = scheduler_backoffs_();
    bool any_backoff =
        std::any_of(backoffs.begin(), backoffs.end(), [](const auto& b) { return b.seconds > 0; });
    if (any_backoff) {
      FamilyWriter family(out, "winrm_exporter_target_backoff_seconds",
                          "Current back-off delay of targets whose polls are skipped after "
                          "consecutive unreachable or quota failures.",
                          MetricType::kGauge);
      for (const auto& backoff : backoffs) {
        if (backoff.seconds > 0) {
          family.sample(render_label_pairs({{"target", backoff.target}}), backoff.seconds);
        }
      }
    }
    bool any_quota =
        std::any_of(backoffs.begin(), backoffs.end(), [](const auto& b) { return b.quota; });
    if (any_quota) {
      FamilyWriter family(out, "winrm_exporter_target_quota_limited",
                          "1 for targets polled one query at a time after a WinRM quota fault.",
                          MetricType::kGauge);
      for (const auto& backoff : backoffs) {
        if (backoff.quota) family.sample(render_label_pairs({{"target", backoff.target}}), 1);
      }
    }
  }
}

}  // namespace exporter
