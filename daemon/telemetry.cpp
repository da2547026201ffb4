#include "telemetry.h"

#include <algorithm>
#include <chrono>

#include "exposition.h"
#include "winrm/error.h"

namespace exporter {

Telemetry::Telemetry(std::string version, std::string revision)
    : build_labels_(render_label_pairs(
          {{"compiler", "g++ " __VERSION__}, {"revision", revision}, {"version", version}})) {}

void Telemetry::observe_lag(double seconds) {
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kLagBuckets.begin(), kLagBuckets.end(), seconds) - kLagBuckets.begin());
  std::lock_guard lock(lag_mutex_);
  ++lag_buckets_[bucket];
  lag_sum_ += seconds;
}

void Telemetry::record_reload(bool success) {
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard lock(reload_mutex_);
  ++reloads_total_;
  reload_successful_ = success ? 1 : 0;
  if (success) {
    reload_timestamp_ = now;
  } else {
    ++reload_failures_total_;
  }
}

void Telemetry::render(std::string& out) const {
  using collectors::MetricType;
  FamilyWriter(out, "winrm_exporter_build_info",
               "A metric with a constant '1' value labeled by version, revision and compiler.",
               MetricType::kGauge)
      .sample(build_labels_, 1);
  {
    std::unique_lock lock(reload_mutex_);
    const double successful = reload_successful_, timestamp = reload_timestamp_;
    const auto reloads = reloads_total_, failures = reload_failures_total_;
    lock.unlock();
    FamilyWriter(out, "winrm_exporter_config_last_reload_successful",
                 "Whether the last configuration load or reload succeeded.", MetricType::kGauge)
        .sample("", successful);
    FamilyWriter(out, "winrm_exporter_config_last_reload_success_timestamp_seconds",
                 "Unix time of the last successful configuration load.", MetricType::kGauge)
        .sample("", timestamp);
    FamilyWriter(out, "winrm_exporter_config_reloads_total",
                 "Configuration loads and reloads attempted.", MetricType::kCounter)
        .sample("", static_cast<double>(reloads));
    FamilyWriter(out, "winrm_exporter_config_reload_failures_total",
                 "Configuration loads and reloads that failed.", MetricType::kCounter)
        .sample("", static_cast<double>(failures));
  }
  {
    std::unique_lock lock(lag_mutex_);
    const auto buckets = lag_buckets_;
    const double sum = lag_sum_;
    lock.unlock();
    FamilyWriter::histogram(out, "winrm_exporter_scheduler_lag_seconds",
                            "Delay between a poll's due time and its start.")
        .histogram_sample("", kLagBuckets, buckets, sum);
  }

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
    FamilyWriter family(out, "winrm_exporter_winrm_connections_by_cause_total",
                        "WinRM connections opened, by why: first of a "
                        "target, reload, busy (every kept connection busy), error (replaces one "
                        "dropped after a failed query), closed (the server closed the kept one), "
                        "other.",
                        MetricType::kCounter);
    for (int i = 0; i < kConnectCauseCount; ++i) {
      const auto cause = static_cast<ConnectCause>(i);
      family.sample(render_label_pairs({{"cause", std::string(connect_cause_label(cause))}}),
                    static_cast<double>(connect_causes_->get(cause)));
    }
  }
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
    gauge("winrm_exporter_scheduler_slow_polls",
          "Slow polls running now that gave their per-target slot to the target's next poll.",
          static_cast<double>(stats.slow));
    counter("winrm_exporter_scheduler_polls_started_total", "Polls started.", stats.polls_started);
    counter("winrm_exporter_scheduler_slow_polls_total",
            "Polls that ran past slow_poll_after and gave their per-target slot to the "
            "target's next due poll (which opened another connection).",
            stats.polls_slow);
    counter("winrm_exporter_scheduler_slow_polls_refused_total",
            "Slow polls that kept their slot while the target's next poll waited: "
            "max_slow_polls_per_target or max_slow_polls was reached.",
            stats.slow_refused);
    counter("winrm_exporter_scheduler_slow_polls_held_total",
            "Slow polls that kept their slot while the target's next poll waited, because the "
            "exporter itself was behind (a due poll waited longer than slow_poll_after for it).",
            stats.slow_held);
    counter("winrm_exporter_scheduler_polls_skipped_total",
            "Due polls skipped because their target was backing off after failures.",
            stats.polls_skipped);
    counter("winrm_exporter_scheduler_polls_missed_total",
            "Due polls that never ran because the collector's previous poll on the target "
            "(or the exporter's backlog) held it past its next tick.",
            stats.polls_missed);
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
