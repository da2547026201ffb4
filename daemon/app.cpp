#include "app.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "auth_factory.h"
#include "exposition.h"
#include "pages.h"
#include "service_discovery.h"

namespace exporter {

winrm::EndpointOptions endpoint_for(const config::Config& config, const config::Target& target) {
  winrm::EndpointOptions endpoint;
  endpoint.host = target.host.empty() ? target.name : target.host;
  endpoint.connect_address = target.connect_address;
  endpoint.port = target.port;
  endpoint.scheme =
      target.scheme == config::Scheme::kHttp ? winrm::Scheme::kHttp : winrm::Scheme::kHttps;
  endpoint.ca_file = target.tls_ca_file;
  endpoint.insecure_skip_verify = target.tls_insecure_skip_verify;
  if (auto it = config.credentials.find(target.credential);
      it != config.credentials.end() && it->second.method == config::AuthMethod::kCertificate) {
    endpoint.client_cert_file = it->second.cert_file;  // sent in the TLS handshake
    endpoint.client_key_file = it->second.key_file;
    endpoint.client_key_password = it->second.password.reveal();  // key_password_file
  }
  endpoint.proxy = target.proxy.url;
  endpoint.proxy_username = target.proxy.username;
  endpoint.proxy_password = target.proxy.password.reveal();
  endpoint.proxy_ca_file = target.proxy.ca_file;
  endpoint.no_proxy = target.no_proxy;
  // The session lowers this ceiling to target.limits (auto: from MaxEnvelopeSize); it only
  // has to make room for an explicit setting above the transport's default.
  endpoint.max_response_bytes =
      std::max(endpoint.max_response_bytes, target.limits.max_response_bytes);
  return endpoint;
}

winrm::SessionOptions session_options_for(const config::Config& config,
                                          const config::Target& target) {
  winrm::SessionOptions options;
  options.endpoint = endpoint_for(config, target);
  options.max_envelope_size = target.winrm.max_envelope_size;
  options.max_elements = target.winrm.max_elements;
  options.operation_timeout = target.winrm.operation_timeout;
  options.locale = target.winrm.locale;
  options.limits.max_response_bytes = target.limits.max_response_bytes;  // 0 = auto in both
  options.limits.max_poll_bytes = target.limits.max_poll_bytes;
  options.limits.max_rows_per_poll = target.limits.max_rows_per_poll;
  options.limits.max_properties_per_instance = target.limits.max_properties_per_instance;
  return options;
}

int worker_count(int flag_value, const config::Defaults& defaults) {
  if (flag_value > 0) return std::min(flag_value, kMaxSchedulerWorkers);
  long most_in_flight = static_cast<long>(std::max(1, defaults.concurrency)) *
                        std::max(1, defaults.per_target_concurrency);
  const long cores = std::max(1u, std::thread::hardware_concurrency());
  const long wanted = std::max<long>(kMinDefaultSchedulerWorkers, cores);
  return static_cast<int>(
      std::clamp<long>(std::min(wanted, most_in_flight), 1, kMaxSchedulerWorkers));
}

namespace {

std::string fingerprint_of(const config::Config& config, const config::Target& target) {
  const auto options = session_options_for(config, target);
  const auto& endpoint = options.endpoint;
  std::string out =
      endpoint.host + '\n' + endpoint.connect_address + '\n' + std::to_string(endpoint.port) +
      '\n' + (endpoint.scheme == winrm::Scheme::kHttps ? "https" : "http") + '\n' +
      endpoint.ca_file + '\n' + (endpoint.insecure_skip_verify ? "1" : "0") + '\n' +
      std::to_string(endpoint.max_response_bytes) + '\n' + target.credential + '\n' +
      endpoint.client_cert_file + '\n' + endpoint.client_key_file + '\n' + endpoint.proxy + '\n' +
      endpoint.proxy_username + '\n' + target.proxy.password_file + '\n' + endpoint.no_proxy +
      '\n' + endpoint.proxy_ca_file + '\n';
  // WinRM options and limits live in the pooled sessions: a change rebuilds them.
  out += std::to_string(options.max_envelope_size) + '\n' + std::to_string(options.max_elements) +
         '\n' + std::to_string(options.operation_timeout.count()) + '\n' + options.locale + '\n' +
         std::to_string(options.limits.max_response_bytes) + '\n' +
         std::to_string(options.limits.max_poll_bytes) + '\n' +
         std::to_string(options.limits.max_rows_per_poll) + '\n' +
         std::to_string(options.limits.max_properties_per_instance) + '\n';
  if (auto it = config.credentials.find(target.credential); it != config.credentials.end()) {
    // The password is compared apart (password_of): no per-target copy of it.
    const auto& profile = it->second;
    out += credential_fingerprint(profile) + spn_service_for(profile, target) + '\n' +
           target.spn_host + '\n';
  }
  return out;
}

// The target's enabled collectors, as polled (restricted to its compat name sets).
std::map<std::string, collectors::CollectorPtr> enabled_collectors(const config::Config& config,
                                                                   const config::Target& target) {
  const auto& polled = target.compat_collectors ? *target.compat_collectors : config.collectors;
  std::map<std::string, collectors::CollectorPtr> out;
  for (const auto& name : target.collectors) {
    if (auto it = polled.find(name); it != polled.end()) out.emplace(name, it->second);
  }
  return out;
}

// The profile's password, shared (a reference, not a copy of its bytes).
config::Secret password_of(const config::Config& config, const config::Target& target) {
  auto it = config.credentials.find(target.credential);
  return it == config.credentials.end() ? config::Secret() : it->second.password;
}

}  // namespace

App::App(std::string config_path, int workers, std::string version, std::string revision,
         Shard shard, ThreadSpawner spawn_thread)
    : config_path_(std::move(config_path)),
      workers_flag_(workers),
      shard_(shard),
      telemetry_(std::move(version), std::move(revision)),
      scheduler_(
          SchedulerOptions{worker_count(workers, config::Defaults{}), 64, BackoffPolicy{}, nullptr,
                           std::move(spawn_thread)},
          AsyncPollFunction([this](const JobSpec& job, Clock::time_point deadline, PollDone done) {
            if (polls_begun_.fetch_add(1) >= stall_after_.load()) {
              done(stall_if_asked());  // the test hook blocks its worker, as a hung poll would
              return;
            }
            winrm::spawn(poll(job, deadline), executor_, std::move(done));
          }),
          [this](double lag) { telemetry_.observe_lag(lag); }) {
  telemetry_.set_scheduler_stats([this] { return scheduler_.stats(); },
                                 [this] { return scheduler_.backoffs(); });
  inventory_ = std::make_unique<LdapInventoryRunner>(
      [this](const config::CredentialProfile& profile) {
        return auth_factory_.manager_for(profile);  // the pollers' ticket cache and refresh
      },
      [this] {
        std::lock_guard lock(load_mutex_);
        if (!base_config_) return;
        if (auto applied = apply_with_inventory(base_config_); !applied) {
          spdlog::error("inventory change not applied: {}", applied.error());
        }
      });
}

App::~App() { stop(); }

std::expected<void, std::string> App::load() {
  std::lock_guard lock(load_mutex_);
  std::shared_ptr<const config::Config> loaded;
  try {
    loaded = std::make_shared<const config::Config>(config::load(config_path_));
  } catch (const config::ConfigError& error) {
    telemetry_.record_reload(false);
    return std::unexpected(std::string(error.what()));
  } catch (const std::exception& error) {
    telemetry_.record_reload(false);
    return std::unexpected(config_path_ + ": " + error.what());
  }
  inventory_->configure(loaded);
  if (auto applied = apply_with_inventory(loaded); !applied) {
    telemetry_.record_reload(false);
    return applied;
  }
  base_config_ = std::move(loaded);
  telemetry_.record_reload(true);
  ready_ = true;
  return {};
}

PollOutcome App::stall_if_asked() {
  std::unique_lock lock(stall_mutex_);
  stall_cv_.wait(lock, [this] { return stall_released_; });
  return PollOutcome::kOk;
}

std::expected<void, std::string> App::apply(std::shared_ptr<const config::Config> config) {
  // Everything is prepared first; the one step that can fail (starting worker threads)
  // runs before anything running is replaced, and undoes itself when it fails.
  std::unordered_map<std::string, std::shared_ptr<Runtime>> runtimes;
  std::vector<TargetInfo> infos;
  std::vector<JobSpec> jobs;
  std::unordered_map<std::string, int> caps;
  const auto& defaults = config->defaults;
  std::vector<std::string> insecure;  // rebuilt targets that skip TLS verification
  auto auth_before = auth_factory_.save();
  {
    std::lock_guard lock(mutex_);
    for (const auto& target : config->targets) {
      if (!shard_.owns(target.name)) continue;
      auto runtime = std::make_shared<Runtime>();
      runtime->target = &target;
      runtime->config = config;
      runtime->fingerprint = fingerprint_of(*config, target);
      runtime->password = password_of(*config, target);
      runtime->proxy_password = target.proxy.password;  // shared, not a copy
      auto old = runtimes_.find(target.name);
      if (old != runtimes_.end() && old->second->fingerprint == runtime->fingerprint &&
          old->second->password == runtime->password &&
          old->second->proxy_password == target.proxy.password) {
        runtime->make_auth = old->second->make_auth;  // keep live sessions of unchanged targets
        runtime->auth_error = old->second->auth_error;
        runtime->auth_stats = old->second->auth_stats;
        runtime->pool = old->second->pool;
        runtime->pool->configure(static_cast<std::size_t>(defaults.per_target_concurrency),
                                 target.interval);
        // Kept rows stay while their query is unchanged and its collector still polled.
        if (defaults.query_refresh) runtime->query_cache = old->second->query_cache;
        if (runtime->query_cache) runtime->query_cache->retain(enabled_collectors(*config, target));
      } else {
        auto profile = config->credentials.find(target.credential);
        if (profile == config->credentials.end()) {
          runtime->auth_error = "unknown credential profile " + target.credential;
        } else if (auto maker =
                       auth_factory_.make(profile->second, target, runtime->auth_stats->negotiate);
                   maker) {
          runtime->make_auth = std::move(*maker);
        } else {
          runtime->auth_error = maker.error().message;
        }
        winrm::SessionOptions options = session_options_for(*config, target);
        options.endpoint.cancel = poller_.cancel_flag();
        // A target that was polled before and changed reconnects because of the reload.
        runtime->pool = std::make_shared<SessionPool>(
            winrm_session_factory(options, runtime->make_auth, telemetry_.transport(),
                                  telemetry_.connect_causes()),
            static_cast<std::size_t>(defaults.per_target_concurrency), target.interval,
            linger_budget_, old != runtimes_.end() ? ConnectCause::kReload : ConnectCause::kFirst);
        if (options.endpoint.insecure_skip_verify) insecure.push_back(target.name);
      }
      if (!runtime->query_cache) runtime->query_cache = std::make_shared<QueryCache>(query_stats_);
      TargetInfo info;
      info.name = target.name;
      for (const auto& [name, value] : target.labels) info.labels.emplace_back(name, value);
      info.interval = target.interval;
      info.stale_after_intervals = defaults.stale_after_intervals;
      info.collectors = target.collectors;
      infos.push_back(std::move(info));
      for (const auto& collector : target.collectors) {
        jobs.push_back(JobSpec{target.name, collector, target.interval, target.timeout});
      }
      caps[target.name] = defaults.per_target_concurrency;
      runtimes[target.name] = std::move(runtime);
    }
  }
  if (auto grown = scheduler_.set_workers(worker_count(workers_flag_, defaults)); !grown) {
    auth_factory_.restore(std::move(auth_before));
    return std::unexpected(grown.error());
  }
  for (const auto& name : insecure) {
    spdlog::warn("target={} TLS certificate verification is disabled", name);
  }
  {
    std::lock_guard lock(mutex_);
    runtimes_ = std::move(runtimes);
    config_ = config;
  }
  auth_factory_.retain(config->credentials);
  cache_.set_targets(infos);
  scheduler_.set_concurrency(defaults.concurrency);
  linger_budget_->max = static_cast<std::size_t>(defaults.max_slow_polls);
  scheduler_.set_slow_polls(SlowPollPolicy{
      defaults.slow_poll_after, defaults.max_slow_polls_per_target, defaults.max_slow_polls});
  scheduler_.set_jobs(std::move(jobs), caps);
  auto stats = scheduler_.stats();
  spdlog::info("configuration loaded file={} targets={} owned={} shard={}/{} jobs={} workers={}",
               config->path, config->targets.size(), infos.size(), shard_.index, shard_.total,
               stats.jobs, stats.workers);
  return {};
}

std::expected<void, std::string> App::apply_with_inventory(
    std::shared_ptr<const config::Config> base) {
  auto merged = merge_inventory(base, inventory_->hosts());
  auto applied = apply(std::move(merged.config));
  if (applied) inventory_->set_merge_stats(merged.stats);
  return applied;
}

std::shared_ptr<App::Runtime> App::runtime(const std::string& target) const {
  std::lock_guard lock(mutex_);
  auto it = runtimes_.find(target);
  return it == runtimes_.end() ? nullptr : it->second;
}

std::shared_ptr<const config::Config> App::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

std::expected<void, std::string> App::start() {
  poller_.resume();
  if (auto started = scheduler_.start(); !started) return started;
  return inventory_->start();
}

void App::stop() {
  {
    std::lock_guard lock(stall_mutex_);
    stall_released_ = true;
  }
  stall_cv_.notify_all();
  if (inventory_) inventory_->stop();  // no inventory change applied while stopping
  poller_.cancel();  // polls in flight end within about a second, not at their deadlines
  scheduler_.stop();
}

winrm::Task<PollOutcome> App::poll(JobSpec job, Clock::time_point deadline) {
  auto runtime = this->runtime(job.target);
  if (!runtime) co_return PollOutcome::kOk;  // removed by a reload
  auto started = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };
  auto fail = [&](std::string_view kind, const std::string& message, PollOutcome outcome) {
    double duration = elapsed();
    bool news;
    {
      std::lock_guard lock(runtime->failing_mutex);
      std::string& failing = runtime->failing[job.collector];
      news = failing != kind;  // started, or a timeout became a max_rows failure, ...
      failing = kind;
    }
    // Log a failure when it starts or changes kind, then at debug level until it recovers.
    auto level = news ? spdlog::level::warn : spdlog::level::debug;
    spdlog::log(level, "poll failed target={} collector={} kind={} duration={:.3f}s error={}",
                job.target, job.collector, kind, duration, message);
    // Recorded after the log line: a scrape that shows this failure finds it in the log too.
    cache_.record_failure(job.target, job.collector, std::string(kind), message, duration);
    return outcome;
  };

  // The target's collectors restricted to its compat name sets.
  const auto& polled = runtime->target->compat_collectors ? *runtime->target->compat_collectors
                                                          : runtime->config->collectors;
  auto collector_it = polled.find(job.collector);
  if (collector_it == polled.end() || !collector_it->second) {
    co_return fail("config", "unknown collector", PollOutcome::kFailed);
  }
  if (!runtime->make_auth) co_return fail("auth", runtime->auth_error, PollOutcome::kFailed);
  const QueryReuse reuse{
      runtime->config->defaults.query_refresh ? runtime->query_cache.get() : nullptr,
      query_stats_.get()};
  auto result = co_await poller_.poll_async(*runtime->pool, *collector_it->second,
                                            runtime->target->limits.max_series_per_collector,
                                            deadline, reuse);
  if (!result) {
    PollFailure& failure = result.error();
    if (failure.cancelled) {  // shutting down: not the host's failure, nothing to record
      spdlog::debug("poll cancelled target={} collector={}", job.target, job.collector);
      co_return PollOutcome::kFailed;
    }
    // An unreachable host may be rebooting: after it, re-read what only a reboot changes.
    if (drops_kept_rows(failure)) runtime->query_cache->clear();
    if (failure.error) runtime->auth_stats->count_error(*failure.error);
    co_return fail(failure.kind, failure.message, failure.outcome);
  }
  double duration = elapsed();
  cache_.record_success(job.target, job.collector, *result, duration);
  // Rendered: the families' buffers go back to the collector for its next poll on this thread.
  collector_it->second->recycle(std::move(*result));
  {
    std::lock_guard lock(runtime->failing_mutex);
    auto it = runtime->failing.find(job.collector);
    if (it != runtime->failing.end() && !it->second.empty()) {
      spdlog::info("poll recovered target={} collector={}", job.target, job.collector);
      it->second.clear();
    }
  }
  spdlog::debug("poll ok target={} collector={} duration={:.3f}s", job.target, job.collector,
                duration);
  co_return PollOutcome::kOk;
}

// The exporter's own families, appended after the targets' on every /metrics page.
void App::render_self_metrics(std::string& out) const {
  telemetry_.render(out);
  query_stats_->render(out);
  render_shard_metrics(out);
  render_auth_metrics(out);
  inventory_->render(out);
  if (extra_self_metrics_) extra_self_metrics_(out);
}

std::shared_ptr<const std::string> App::render_metrics() const {
  return metrics_flight_.get([this] {
    return render_metrics_page(
        cache_.view_all(), [this](std::string& out) { render_self_metrics(out); },
        std::chrono::steady_clock::now());
  });
}

std::shared_ptr<const net::BodyParts> App::render_metrics_gzip() const {
  return metrics_gzip_flight_.get([this] {
    return render_metrics_page_gzip_parts(
        cache_.view_all(), [this](std::string& out) { render_self_metrics(out); },
        std::chrono::steady_clock::now());
  });
}

void App::render_auth_metrics(std::string& out) const {
  auth_factory_.render(out);
  std::vector<std::pair<std::string, std::shared_ptr<TargetAuthStats>>> targets;
  bool any_negotiate = false;
  {
    std::lock_guard lock(mutex_);
    if (!config_) return;
    for (const auto& target : config_->targets) {
      auto it = runtimes_.find(target.name);
      if (it == runtimes_.end()) continue;
      targets.emplace_back(target.name, it->second->auth_stats);
      auto profile = config_->credentials.find(target.credential);
      any_negotiate |= profile != config_->credentials.end() &&
                       (profile->second.method == config::AuthMethod::kKerberos ||
                        profile->second.method == config::AuthMethod::kNtlm);
    }
  }
  using collectors::MetricType;
  if (any_negotiate) {
    auto per_target = [&](std::string_view name, std::string_view help, auto value) {
      FamilyWriter family(out, name, help, MetricType::kCounter);
      for (const auto& [target, stats] : targets) {
        family.sample(render_label_pairs({{"target", target}}),
                      static_cast<double>(value(*stats->negotiate)));
      }
    };
    per_target("winrm_exporter_auth_handshakes_total",
               "Kerberos/NTLM (Negotiate) handshakes completed, one per new connection.",
               [](const winrm::NegotiateStats& s) { return s.handshakes.load(); });
    per_target("winrm_exporter_auth_handshake_failures_total",
               "Kerberos/NTLM (Negotiate) handshakes that failed.",
               [](const winrm::NegotiateStats& s) { return s.handshake_failures.load(); });
    per_target("winrm_exporter_auth_reauthentications_total",
               "Re-authentications after a 401 on a live connection.",
               [](const winrm::NegotiateStats& s) { return s.reauth_on_401.load(); });
  }
  // Only classes that occurred: 7 classes x 10,000 targets of zeros is noise.
  std::vector<std::pair<std::string, double>> errors;
  for (const auto& [target, stats] : targets) {
    for (int i = 0; i < winrm::kAuthErrorClassCount; ++i) {
      auto count = stats->errors[static_cast<std::size_t>(i)].load();
      if (count == 0) continue;
      errors.emplace_back(
          render_label_pairs(
              {{"target", target},
               {"class", std::string(winrm::to_string(static_cast<winrm::AuthErrorClass>(i)))}}),
          static_cast<double>(count));
    }
  }
  if (errors.empty()) return;
  FamilyWriter family(out, "winrm_exporter_auth_errors_total",
                      "Polls that failed to authenticate, by target and error class.",
                      MetricType::kCounter);
  for (const auto& [labels, count] : errors) family.sample(labels, count);
}

std::expected<std::string, std::string> App::render_probe(const std::string& target) const {
  std::string page;
  auto found = render_probe(target, page);
  if (!found) return std::unexpected(std::move(found.error()));
  return page;
}

std::expected<void, std::string> App::render_probe(const std::string& target,
                                                   std::string& page) const {
  auto view = cache_.view(target);
  if (view.info) {
    render_probe_page(view, std::chrono::steady_clock::now(), page);
    return {};
  }
  auto config = this->config();
  bool configured = config && std::any_of(config->targets.begin(), config->targets.end(),
                                          [&](const auto& t) { return t.name == target; });
  if (configured && !shard_.owns(target)) {
    return std::unexpected("target " + target + " belongs to shard " +
                           std::to_string(shard_.owner_of(target)) + " of " +
                           std::to_string(shard_.total) + ", this instance is shard " +
                           std::to_string(shard_.index));
  }
  return std::unexpected("unknown target " + target);
}

std::string App::render_sd() const {
  std::vector<SdTarget> owned;
  if (auto config = this->config()) {
    for (const auto& target : config->targets) {
      if (shard_.owns(target.name)) owned.push_back(SdTarget{target.name, target.labels});
    }
  }
  return render_sd_json(owned);
}

void App::render_shard_metrics(std::string& out) const {
  std::size_t configured = 0;
  std::size_t owned = 0;
  {
    std::lock_guard lock(mutex_);
    if (config_) configured = config_->targets.size();
    owned = runtimes_.size();
  }
  using collectors::MetricType;
  FamilyWriter(out, "winrm_exporter_shard_info",
               "This instance's shard of the configured targets (--shard, --total-shards).",
               MetricType::kGauge)
      .sample(render_label_pairs({{"shard", std::to_string(shard_.index)},
                                  {"total_shards", std::to_string(shard_.total)}}),
              1);
  FamilyWriter(out, "winrm_exporter_targets_configured",
               "Targets in the configuration, on all shards.", MetricType::kGauge)
      .sample("", static_cast<double>(configured));
  FamilyWriter(out, "winrm_exporter_targets_owned",
               "Targets this instance polls and serves (its shard of the configuration).",
               MetricType::kGauge)
      .sample("", static_cast<double>(owned));
}

}  // namespace exporter
