// Wires configuration, sessions, the scheduler and the cache together and handles
// reloads: a bad configuration keeps the running one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth_factory.h"
#include "cache.h"
#include "config/config.h"
#include "flags.h"
#include "inventory_ldap.h"
#include "net/server.h"
#include "poller.h"
#include "scheduler.h"
#include "shard.h"
#include "telemetry.h"
#include "winrm/session.h"

namespace exporter {

// Endpoint of a configured target (shared with the query command).
winrm::EndpointOptions endpoint_for(const config::Config& config, const config::Target& target);
// Session options of a configured target: endpoint, its `winrm:` options and `limits:`
// (all but max_series_per_collector, which App::poll applies). Shared with the query command.
winrm::SessionOptions session_options_for(const config::Config& config,
                                          const config::Target& target);

// Scheduler worker count: the flag value when set, else one per core and at least
// kMinDefaultSchedulerWorkers, but no more than the polls that can run at once
// (concurrency x per_target_concurrency). A poll holds no worker while its requests are in
// flight (docs/transport.md); workers run its CPU steps (parse, GSS, transform, render)
// and the few blocking ones (a KDC request for a new service ticket), hence the slack.
inline constexpr int kMinDefaultSchedulerWorkers = 4;
int worker_count(int flag_value, const config::Defaults& defaults);

class App {
 public:
  // shard: the targets this instance owns; the others are neither polled nor served.
  // spawn_thread: null, or a test's thread starter (see ThreadSpawner).
  App(std::string config_path, int workers, std::string version, std::string revision,
      Shard shard = {}, ThreadSpawner spawn_thread = nullptr);
  ~App();

  // Loads and applies the configuration. Error text is ConfigError's "FILE:LINE: ...", or
  // why a step of applying it failed; either way the running configuration stays in
  // force unchanged (targets, sessions, jobs, workers, credential managers).
  std::expected<void, std::string> load();
  // Error when the scheduler's threads cannot be started.
  std::expected<void, std::string> start();
  void stop();

  bool ready() const { return ready_.load(); }
  // The scheduler makes progress (see Scheduler::progressing): the systemd watchdog and
  // /-/healthy follow it.
  bool healthy() const { return scheduler_.progressing(); }
  // Test hook (WINRM_EXPORTER_TEST_STALL_AFTER_POLLS): after this many polls every poll
  // blocks until stop(), stalling the scheduler as a hung poll would.
  void stall_polls_after(std::uint64_t polls) { stall_after_ = polls; }
  const Cache& cache() const { return cache_; }
  const Telemetry& telemetry() const { return telemetry_; }
  const QueryStats& query_stats() const { return *query_stats_; }
  std::shared_ptr<const config::Config> config() const;

  // The /metrics page, shared by the concurrent scrapes that asked for it (SingleFlight):
  // rendered once for all of them and sent from this one copy.
  std::shared_ptr<const std::string> render_metrics() const;
  // The same page as a gzip body (Content-Encoding: gzip), from the cached segments, in
  // parts that reference them (render_metrics_page_gzip_parts).
  std::shared_ptr<const net::BodyParts> render_metrics_gzip() const;
  // Error: the 404 text (unknown target, or which shard owns it).
  std::expected<std::string, std::string> render_probe(const std::string& target) const;
  // The same page appended to `page` (the web worker's buffer, kept between requests).
  std::expected<void, std::string> render_probe(const std::string& target, std::string& page) const;
  // Prometheus http_sd JSON of the owned targets.
  std::string render_sd() const;
  // More self series on /metrics (the web server's request durations). Set before start().
  void set_extra_self_metrics(std::function<void(std::string&)> render) {
    extra_self_metrics_ = std::move(render);
  }

 private:
  struct Runtime {
    // In *config, which the runtime holds: not a copy (~1.3 KB per host with its strings,
    // labels and collector list; heaptrack).
    const config::Target* target = nullptr;
    std::shared_ptr<const config::Config> config;
    std::string fingerprint;        // endpoint + credentials: sessions are reused while equal
    config::Secret password;        // with fingerprint; shared with the config, never copied
    config::Secret proxy_password;  // the same for the proxy's password
    AuthMaker make_auth;            // null when auth could not be built
    std::string auth_error;         // set when auth could not be built
    std::shared_ptr<TargetAuthStats> auth_stats = std::make_shared<TargetAuthStats>();
    std::shared_ptr<SessionPool> pool;
    // Rows of its `refresh:` queries; kept across reloads with the pool, dropped when the
    // target is unreachable (query_cache.h).
    std::shared_ptr<QueryCache> query_cache;
    std::mutex failing_mutex;
    // collector -> the kind its last poll failed with ("" once it succeeds): a failure is
    // logged when it starts or changes kind, not at every poll.
    std::unordered_map<std::string, std::string> failing;
  };

  std::expected<void, std::string> apply(std::shared_ptr<const config::Config> config);
  // base + the inventory sources' current lists, applied (reload and inventory changes).
  std::expected<void, std::string> apply_with_inventory(std::shared_ptr<const config::Config> base);
  PollOutcome stall_if_asked();
  // One poll as a coroutine: it holds no thread while its requests are in flight.
  winrm::Task<PollOutcome> poll(JobSpec job, Clock::time_point deadline);
  std::shared_ptr<Runtime> runtime(const std::string& target) const;
  // The exporter's own families on /metrics (telemetry, shard, auth, inventory).
  void render_self_metrics(std::string& out) const;
  // Kerberos profile metrics and per-target handshake / auth error counters.
  void render_auth_metrics(std::string& out) const;
  void render_shard_metrics(std::string& out) const;

  std::string config_path_;
  int workers_flag_;  // 0: follow the configuration
  Shard shard_;
  std::mutex load_mutex_;  // serialises SIGHUP and /-/reload
  Telemetry telemetry_;
  AuthFactory auth_factory_;
  Cache cache_;
  // Concurrent /metrics scrapes share one render of the page.
  mutable SingleFlight<std::string> metrics_flight_;
  mutable SingleFlight<net::BodyParts> metrics_gzip_flight_;
  // Idle sessions the pools keep beyond per_target_concurrency, exporter-wide (max_slow_polls).
  std::shared_ptr<LingerBudget> linger_budget_ = std::make_shared<LingerBudget>(1024);
  // Queries sent and reused per collector, and what the targets' query caches hold.
  std::shared_ptr<QueryStats> query_stats_ = std::make_shared<QueryStats>();
  Poller poller_;  // before scheduler_: its polls use it until the scheduler stops
  Scheduler scheduler_;
  SchedulerExecutor executor_{scheduler_};  // resumes polls on the scheduler's workers
  std::atomic<bool> ready_{false};
  std::function<void(std::string&)> extra_self_metrics_;

  std::atomic<std::uint64_t> stall_after_{UINT64_MAX};
  std::atomic<std::uint64_t> polls_begun_{0};
  std::mutex stall_mutex_;
  std::condition_variable stall_cv_;
  bool stall_released_ = false;

  mutable std::mutex mutex_;
  std::shared_ptr<const config::Config> config_;
  std::unordered_map<std::string, std::shared_ptr<Runtime>> runtimes_;  // owned targets only

  // The loaded configuration without discovered targets (load_mutex_); config_ is it
  // merged with the inventory. Last member: its thread stops before the rest is destroyed.
  std::shared_ptr<const config::Config> base_config_;
  std::unique_ptr<LdapInventoryRunner> inventory_;
};

}  // namespace exporter
