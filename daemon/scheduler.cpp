#include "scheduler.h"

#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <system_error>
#include <tuple>

#include "common/thread_priority.h"

namespace exporter {

namespace {

std::string job_key(std::string_view target, std::string_view collector) {
  std::string key;
  key.reserve(target.size() + collector.size() + 1);
  key.append(target).push_back('\0');
  key.append(collector);
  return key;
}

// FNV-1a: stable across runs and builds (std::hash is not guaranteed to be).
std::uint64_t fnv1a(std::string_view data, std::uint64_t hash = 14695981039346656037ull) {
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

constexpr Clock::time_point kNever = Clock::time_point::max();

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::chrono::milliseconds stagger_offset(std::string_view target, std::size_t index,
                                         std::size_t count, std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return std::chrono::milliseconds(0);
  const auto span = static_cast<std::uint64_t>(interval.count());
  std::uint64_t hash = fnv1a(target);
  // Mix the high bits in: FNV's low bits are weak for short keys.
  hash ^= hash >> 29;
  const std::uint64_t step = index * span / std::max<std::size_t>(count, 1);
  return std::chrono::milliseconds((hash % span + step) % span);
}

Scheduler::Scheduler(SchedulerOptions options, AsyncPollFunction poll, LagObserver lag)
    : Scheduler(std::move(options), PollFunction(), std::move(lag)) {
  poll_async_ = std::move(poll);
}

Scheduler::Scheduler(SchedulerOptions options, PollFunction poll, LagObserver lag)
    : options_(std::move(options)), poll_(std::move(poll)), lag_(std::move(lag)) {
  options_.workers = std::max(1, options_.workers);
  options_.concurrency = std::max(1, options_.concurrency);
  random_ = options_.random;
  if (!random_) {
    random_ = [engine = std::mt19937_64(std::random_device{}())]() mutable {
      return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
  }
  // steady_clock is CLOCK_MONOTONIC on Linux, so its time points arm the timer as they are.
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) throw std::runtime_error(std::string("timerfd_create: ") + strerror(errno));
}

Scheduler::~Scheduler() {
  stop();
  close(timer_fd_);
}

Scheduler::TargetState& Scheduler::target_state(const std::string& name) { return targets_[name]; }

void Scheduler::push_heap(const JobPtr& job) {
  heap_.push(HeapEntry{job->due, seq_++, job, Clock::now()});
}

void Scheduler::clean_heap_top_locked() {
  while (!heap_.empty()) {
    const HeapEntry& top = heap_.top();
    if (!top.job->removed && top.due == top.job->due && !top.job->busy) return;
    heap_.pop();  // superseded entry
  }
}

Clock::time_point Scheduler::next_phase_tick(const Job& job, Clock::time_point at) const {
  Clock::duration interval = std::max(job.spec->interval, std::chrono::milliseconds(1));
  Clock::time_point tick = epoch_ + job.phase;
  if (tick < at) tick += interval * ((at - tick + interval - Clock::duration(1)) / interval);
  return tick;
}

void Scheduler::set_jobs(std::vector<JobSpec> jobs,
                         const std::unordered_map<std::string, int>& per_target_concurrency) {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  std::unordered_map<std::string, JobPtr> next;
  next.reserve(jobs.size());
  std::size_t new_jobs = 0;
  for (const auto& spec : jobs)
    new_jobs += jobs_.contains(job_key(spec.target, spec.collector)) ? 0 : 1;
  auto first_round = std::chrono::milliseconds(static_cast<std::int64_t>(new_jobs) * 1000 /
                                               kFirstRoundPollsPerSecond);
  std::vector<JobPtr> fresh;
  for (auto& spec : jobs) {
    std::string key = job_key(spec.target, spec.collector);
    if (next.contains(key)) continue;
    if (auto it = jobs_.find(key); it != jobs_.end()) {
      // Keeps its due time; a running poll finishes with the spec it started with.
      it->second->spec = std::make_shared<const JobSpec>(std::move(spec));
      next.emplace(std::move(key), it->second);
      jobs_.erase(it);
      continue;
    }
    auto job = std::make_shared<Job>();
    job->spec = std::make_shared<const JobSpec>(std::move(spec));
    fresh.push_back(job);
    next.emplace(std::move(key), std::move(job));
  }
  // Phases: each target's collectors at one interval, in name order, evenly apart.
  std::map<std::tuple<std::string_view, std::int64_t, std::string_view>, Job*> groups;
  for (auto& [key, job] : next)
    groups.emplace(std::tuple(std::string_view(job->spec->target), job->spec->interval.count(),
                              std::string_view(job->spec->collector)),
                   job.get());
  for (auto it = groups.begin(); it != groups.end();) {
    auto end = it;
    std::size_t count = 0;
    while (end != groups.end() && std::get<0>(end->first) == std::get<0>(it->first) &&
           std::get<1>(end->first) == std::get<1>(it->first)) {
      ++end;
      ++count;
    }
    std::size_t index = 0;
    for (; it != end; ++it, ++index) {
      Job& job = *it->second;
      Clock::duration phase = stagger_offset(job.spec->target, index, count, job.spec->interval);
      if (job.phase != phase) job.to_phase = true;  // new, or moved once by this reload
      job.phase = phase;
      if (job.due == Clock::time_point{}) {  // new: its first poll within the first round
        job.due = now + stagger_offset(job.spec->target, index, count,
                                       std::min(job.spec->interval, first_round));
      }
    }
  }
  for (auto& job : fresh) {
    job->to_phase = true;  // also when its phase happens to be 0
    push_heap(job);
  }
  for (auto& [key, job] : jobs_) job->removed = true;  // heap/queue entries skip it
  jobs_ = std::move(next);
  max_timeout_ = Clock::duration::zero();
  for (const auto& [key, job] : jobs_) {
    max_timeout_ = std::max<Clock::duration>(max_timeout_, job->spec->timeout);
  }

  for (auto& [name, cap] : per_target_concurrency) {
    TargetState& state = target_state(name);
    state.configured_cap = std::max(1, cap);
    state.cap = state.quota ? 1 : state.configured_cap;
  }
  for (auto it = targets_.begin(); it != targets_.end();) {
    bool unused = !per_target_concurrency.contains(it->first) && it->second.running == 0 &&
                  it->second.slow == 0;
    it = unused ? targets_.erase(it) : std::next(it);
  }
  attend_locked(now);
}

void Scheduler::set_concurrency(int concurrency) {
  std::lock_guard lock(mutex_);
  options_.concurrency = std::max(1, concurrency);
}

void Scheduler::set_slow_polls(SlowPollPolicy policy) {
  std::lock_guard lock(mutex_);
  policy.after = std::max(policy.after, std::chrono::milliseconds(0));
  policy.per_target = std::max(0, policy.per_target);
  policy.total = std::max(0, policy.total);
  options_.slow = policy;
}

std::expected<void, std::string> Scheduler::set_workers(int workers) {
  std::lock_guard lock(mutex_);
  int previous = options_.workers;
  options_.workers = std::max(1, workers);
  if (!started_) return {};
  auto spawned = spawn_workers_locked();
  if (!spawned) options_.workers = previous;  // the extra threads that did start exit below
  // Not a hot path: idle workers re-check, and the surplus exit.
  if (live_workers_ > options_.workers) {
    for (Worker* worker : idle_) wake_locked(*worker);
    idle_.clear();
    if (leader_) wake_locked(*leader_);
  }
  return spawned;
}

std::thread Scheduler::spawn(std::function<void()> body) {
  if (options_.spawn_thread) return options_.spawn_thread(std::move(body));
  return std::thread(std::move(body));
}

std::expected<void, std::string> Scheduler::spawn_workers_locked() {
  while (live_workers_ < options_.workers) {
    auto state = std::make_unique<Worker>();
    Worker* worker = state.get();
    try {
      threads_.push_back(spawn([this, worker] {
        // Named so that tools (top -H, perf, bench/scale.py) tell polling CPU from serving
        // CPU; threads it starts (libcurl's resolver) inherit the name.
        pthread_setname_np(pthread_self(), kWorkerThreadName);
        // Below the web threads (--scheduler.nice); inherited by the threads it starts.
        (void)common::apply_polling_priority();
        worker_loop(*worker);
      }));
    } catch (const std::system_error& error) {
      return std::unexpected("cannot start a scheduler worker thread (" +
                             std::to_string(live_workers_) + " running, " +
                             std::to_string(options_.workers) + " wanted): " + error.what());
    }
    // The thread blocks on mutex_ (held here) before it touches its state.
    worker_states_.push_back(std::move(state));
    ++live_workers_;
  }
  return {};
}

std::expected<void, std::string> Scheduler::start() {
  std::expected<void, std::string> started;
  {
    std::lock_guard lock(mutex_);
    if (started_) return {};
    started_ = true;
    stopping_ = false;
    last_start_ = Clock::now();
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) {
      started_ = false;
      return std::unexpected(std::string("scheduler: eventfd: ") + strerror(errno));
    }
    try {
      backstop_ = spawn([this] { backstop_loop(); });
      started = spawn_workers_locked();
    } catch (const std::system_error& error) {
      started =
          std::unexpected(std::string("cannot start the scheduler timer thread: ") + error.what());
    }
    if (started) return {};
  }
  stop();  // joins what did start
  return started;
}

void Scheduler::stop() {
  std::vector<std::thread> threads;
  std::thread backstop;
  {
    std::lock_guard lock(mutex_);
    if (!started_) return;
    stopping_ = true;
    started_ = false;
    threads = std::move(threads_);
    threads_.clear();
    backstop = std::move(backstop_);
    wake_all_locked();
    std::uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof one) != sizeof one) {
      spdlog::error("scheduler: cannot signal the backstop timer thread: {}", strerror(errno));
    }
  }
  // Polls still running end by their deadlines; no new poll starts.
  for (auto& thread : threads) thread.join();
  if (backstop.joinable()) backstop.join();
  std::lock_guard lock(mutex_);
  close(stop_fd_);
  stop_fd_ = -1;
  live_workers_ = 0;
  leader_ = nullptr;
  idle_.clear();
  worker_states_.clear();
  arm_backstop_locked(kNever);
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(mutex_);
  Stats stats;
  stats.jobs = jobs_.size();
  stats.running = running_;
  stats.targets_in_flight = targets_in_flight_;
  stats.parked = global_waiting_.size() + ready_.size();
  for (auto& [name, state] : targets_) stats.parked += state.waiting.size();
  stats.polls_started = polls_started_;
  stats.polls_skipped = polls_skipped_;
  stats.polls_missed = polls_missed_;
  stats.wakeups = wakeups_;
  stats.workers = static_cast<std::size_t>(options_.workers);
  stats.slow = slow_;
  stats.polls_slow = polls_slow_;
  stats.slow_refused = slow_refused_;
  stats.slow_held = slow_held_;
  return stats;
}

std::vector<Scheduler::Phase> Scheduler::phases() const {
  std::lock_guard lock(mutex_);
  std::vector<Phase> out;
  out.reserve(jobs_.size());
  for (const auto& [key, job] : jobs_) {
    out.push_back(Phase{job->spec->target, job->spec->collector,
                        std::chrono::duration_cast<std::chrono::milliseconds>(job->phase)});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
    return std::tie(a.target, a.collector) < std::tie(b.target, b.collector);
  });
  return out;
}

bool Scheduler::progressing() const {
  std::lock_guard lock(mutex_);
  if (!started_) return true;
  auto now = Clock::now();
  auto grace = max_timeout_ + kProgressSlack;
  if (now - last_start_ < grace) return true;
  // Nothing started for a while: fine only if no job has been due that long (queued or
  // parked) and no poll has overrun its deadline by the slack (a hung poll).
  for (const auto& [key, job] : jobs_) {
    if (job->running) {
      if (now - job->started >= job->spec->timeout + kProgressSlack) return false;
    } else if (now - job->due >= grace) {
      return false;
    }
  }
  return true;
}

std::vector<Scheduler::Backoff> Scheduler::backoffs() const {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  std::vector<Backoff> out;
  for (const auto& [name, state] : targets_) {
    bool quota_held = state.quota && now < state.quota_until;
    if (state.backoff == Clock::duration::zero() && !quota_held) continue;
    out.push_back(Backoff{name, seconds(state.backoff), quota_held});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.target < b.target; });
  return out;
}

void Scheduler::wake_locked(Worker& worker) {
  worker.signaled = true;
  worker.cv.notify_one();
}

void Scheduler::wake_all_locked() {
  for (auto& worker : worker_states_) wake_locked(*worker);
}

void Scheduler::post(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  tasks_.push_back(std::move(task));
  if (stopping_) {
    wake_all_locked();  // rare: the last continuations of polls at shutdown
  } else {
    attend_locked(Clock::now());
  }
}

void Scheduler::arm_backstop_locked(Clock::time_point when) {
  if (when == backstop_at_) return;
  backstop_at_ = when;
  itimerspec spec{};  // all zero: disarm
  if (when != kNever) {
    auto since_epoch =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch());
    spec.it_value.tv_sec = static_cast<time_t>(since_epoch.count() / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(since_epoch.count() % 1000000000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void Scheduler::backstop_loop() {
  pollfd fds[2] = {{timer_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("scheduler: backstop timer poll failed: {}", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    std::uint64_t expirations = 0;
    // EAGAIN when re-armed meanwhile: attend_locked below re-checks anyway.
    (void)!read(timer_fd_, &expirations, sizeof expirations);
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    ++wakeups_;
    auto now = Clock::now();
    if (backstop_at_ <= now) backstop_at_ = kNever;  // one-shot timer: it has fired
    attend_locked(now);
  }
}

Clock::time_point Scheduler::next_wake_locked() {
  clean_heap_top_locked();
  clean_overtake_top_locked();
  Clock::time_point next = heap_.empty() ? kNever : heap_.top().due;
  if (!overtakes_.empty()) next = std::min(next, overtakes_.top().at);
  return next;
}

void Scheduler::attend_locked(Clock::time_point now) {
  const Clock::time_point next = next_wake_locked();
  bool due_now = !tasks_.empty() || !ready_.empty() || next <= now;
  if (leader_) {
    bool earlier = next < leader_until_;
    if ((due_now || earlier) && !leader_->signaled) wake_locked(*leader_);
    return;
  }
  if (idle_.empty()) {
    // Everybody polls: the first worker to finish leads; nobody to hand work to.
    arm_backstop_locked(kNever);
    return;
  }
  if (due_now) {
    Worker* follower = idle_.back();
    idle_.pop_back();
    leader_ = follower;
    leader_until_ = kNever;
    arm_backstop_locked(kNever);
    wake_locked(*follower);
    return;
  }
  // Nothing due yet: the vacant lead is taken by whichever comes first, a worker that
  // finishes its poll or the timer at the next due time.
  arm_backstop_locked(next);
}

void Scheduler::push_global_waiting_locked(JobPtr job, Clock::time_point now) {
  job->queued = now;
  global_waiting_.push_back(std::move(job));
}

bool Scheduler::admit(const JobPtr& job, Clock::time_point now) {
  TargetState& state = target_state(job->spec->target);
  if (state.running > 0 && state.running >= state.cap) {
    state.waiting.push_back(job);
    arm_overtake_locked(job->spec->target, state);
    return false;
  }
  // While other targets wait for a global slot, busy targets do not take more work
  // ahead of them (FIFO fairness across targets).
  if (!global_waiting_.empty()) {
    push_global_waiting_locked(job, now);
    return false;
  }
  if (state.running + state.slow > 0) {  // in flight already
    ++state.running;
    return true;
  }
  if (targets_in_flight_ < static_cast<std::size_t>(options_.concurrency)) {
    ++targets_in_flight_;
    state.running = 1;
    return true;
  }
  push_global_waiting_locked(job, now);
  return false;
}

// Moves job's due time to its first phase tick at or after the target's back-off end and
// requeues it. False (nothing done) when the target is not backing off at that time.
bool Scheduler::defer_for_backoff_locked(const JobPtr& job, TargetState& state,
                                         Clock::time_point now) {
  if (now >= state.backoff_until || job->due >= state.backoff_until) return false;
  auto interval = std::max<Clock::duration>(job->spec->interval, std::chrono::milliseconds(1));
  auto ticks = (state.backoff_until - job->due + interval - Clock::duration(1)) / interval;
  job->due += interval * ticks;
  polls_skipped_ += static_cast<std::uint64_t>(ticks);
  job->busy = false;
  if (!job->removed) push_heap(job);
  return true;
}

Scheduler::JobPtr Scheduler::take_runnable_locked(Clock::time_point now, Clock::time_point due_by) {
  run_overtakes_locked(now);
  if (!ready_.empty()) {
    JobPtr job = std::move(ready_.front());
    ready_.pop_front();
    return job;
  }
  for (;;) {
    clean_heap_top_locked();
    if (heap_.empty() || heap_.top().due > due_by) return nullptr;
    JobPtr job = heap_.top().job;
    heap_.pop();
    TargetState& state = target_state(job->spec->target);
    if (defer_for_backoff_locked(job, state, now)) continue;
    if (state.quota && now >= state.quota_until) {
      state.quota = false;
      state.cap = state.configured_cap;
      spdlog::info("target quota hold ended target={} per_target_concurrency={}", job->spec->target,
                   state.cap);
    }
    job->busy = true;
    if (admit(job, now)) return job;  // else parked until a slot frees up
  }
}

void Scheduler::record_outcome_locked(TargetState& state, const JobSpec& spec, PollOutcome outcome,
                                      Clock::time_point now) {
  if (outcome == PollOutcome::kOk || outcome == PollOutcome::kFailed) {
    // The host answered: it is reachable.
    if (state.backoff != Clock::duration::zero()) {
      spdlog::info("target back-off ended target={} after_failures={}", spec.target,
                   state.failures);
    }
    state.failures = 0;
    state.backoff = Clock::duration::zero();
    state.backoff_until = {};
    return;
  }
  bool quota = outcome == PollOutcome::kQuota;
  Clock::duration interval = std::max(spec.interval, std::chrono::milliseconds(1));
  // The collectors of a target fail together: count at most one failure per interval, so
  // one bad round of 7 collectors is one failure, not 7.
  bool escalate = state.failures == 0 || now - state.last_failure_counted >= interval;
  if (escalate) {
    ++state.failures;
    state.last_failure_counted = now;
  }
  if (quota && state.failures < 2) {
    state.failures = 2;  // a quota fault backs off at once
    escalate = true;
  }
  if (quota) {
    if (!state.quota) {
      spdlog::warn(
          "target per_target_concurrency lowered to 1 for {:.0f}s after a WinRM quota fault "
          "target={}",
          seconds(options_.backoff.quota_hold), spec.target);
    }
    state.quota = true;
    state.quota_until = now + options_.backoff.quota_hold;
    state.cap = 1;
  }
  // A single failure is retried at the normal interval; polls that were already running
  // when the back-off started do not extend it.
  if (state.failures < 2 || !escalate) return;
  const BackoffPolicy& policy = options_.backoff;
  Clock::duration cap = std::max(
      interval,
      std::min<Clock::duration>(interval * std::max(1, policy.max_intervals), policy.max_delay));
  Clock::duration delay = interval;
  for (int i = 1; i < state.failures && delay < cap; ++i) delay *= 2;
  delay = std::min(delay, cap);
  double jitter = std::clamp(policy.jitter, 0.0, 1.0) * random_();
  delay = std::chrono::duration_cast<Clock::duration>(delay * (1.0 - jitter));
  if (state.backoff == Clock::duration::zero()) {
    spdlog::warn("target back-off started target={} reason={} failures={} delay={:.1f}s",
                 spec.target, quota ? "quota" : "unreachable", state.failures, seconds(delay));
  }
  state.backoff = std::max(delay, Clock::duration(1));
  state.backoff_until = std::max(state.backoff_until, now + delay);
}

void Scheduler::finish(const JobPtr& job, Clock::time_point started, PollOutcome outcome) {
  --running_;
  job->busy = false;
  job->running = false;
  auto now = Clock::now();
  TargetState& state = target_state(job->spec->target);
  record_outcome_locked(state, *job->spec, outcome, now);
  if (!job->removed) {
    Clock::duration interval = std::max(job->spec->interval, std::chrono::milliseconds(1));
    auto next = job->due + interval;
    if (job->to_phase) {
      // From the compressed first round (or a reload's new phase) to the job's regular phase.
      job->to_phase = false;
      next = next_phase_tick(*job, started + interval / 2);
    }
    // Keep the phase; skip ticks missed by a slow poll rather than firing a burst (counted:
    // a missed tick is a poll the interval promised and the host did not get).
    if (next <= started) {
      const auto missed = (started - next) / interval + 1;
      next += interval * missed;
      polls_missed_ += static_cast<std::uint64_t>(missed);
    }
    job->due = next;
    if (!defer_for_backoff_locked(job, state, now)) push_heap(job);
  }

  const std::string& name = job->spec->target;
  if (job->slow) {
    job->slow = false;
    --state.slow;
    --slow_;
  } else {
    --state.running;
    std::erase(state.active, job);
  }
  hand_on_locked(state, now);
  if (state.running + state.slow == 0) --targets_in_flight_;
  fill_global_locked(now);
  // A slow-poll cap has room again: the target's own parked polls first, then one target
  // that waited for the exporter-wide cap.
  overtake_locked(name, state, now);
  while (!slow_blocked_.empty() && slow_ < static_cast<std::size_t>(options_.slow.total) &&
         !exporter_behind_locked(now)) {
    std::string blocked = std::move(slow_blocked_.front());
    slow_blocked_.pop_front();
    auto it = targets_.find(blocked);
    if (it == targets_.end()) continue;
    it->second.slow_blocked = false;
    overtake_locked(blocked, it->second, now);
  }
}

void Scheduler::hand_on_locked(TargetState& state, Clock::time_point now) {
  if (now < state.backoff_until) {
    // Backing off: this target's parked jobs wait for the end of it, not for a slot.
    for (auto& waiting : state.waiting) {
      if (defer_for_backoff_locked(waiting, state, now)) continue;
      waiting->busy = false;
      if (!waiting->removed) push_heap(waiting);
    }
    state.waiting.clear();
  } else if (global_waiting_.empty()) {
    // Nobody else waits: hand the freed per-target slot to this target's next job.
    while (!state.waiting.empty() && state.running < state.cap) {
      JobPtr waiting = std::move(state.waiting.front());
      state.waiting.erase(state.waiting.begin());
      if (waiting->removed) {
        waiting->busy = false;
        continue;
      }
      ++state.running;
      ready_.push_back(std::move(waiting));
    }
  } else {
    // Others wait: this target's parked jobs queue up behind them, so a busy target
    // eventually leaves the in-flight set.
    for (auto& waiting : state.waiting) push_global_waiting_locked(std::move(waiting), now);
    state.waiting.clear();
  }
}

void Scheduler::fill_global_locked(Clock::time_point now) {
  while (targets_in_flight_ < static_cast<std::size_t>(options_.concurrency) &&
         !global_waiting_.empty()) {
    JobPtr waiting = std::move(global_waiting_.front());
    global_waiting_.pop_front();
    if (waiting->removed) {
      waiting->busy = false;
      continue;
    }
    TargetState& other = target_state(waiting->spec->target);
    if (defer_for_backoff_locked(waiting, other, now)) continue;
    if (other.running + other.slow == 0) {
      ++targets_in_flight_;
      other.running = 1;
    } else if (other.running < other.cap) {
      ++other.running;
    } else {
      other.waiting.push_back(std::move(waiting));
      arm_overtake_locked(other.waiting.back()->spec->target, other);
      continue;
    }
    ready_.push_back(std::move(waiting));
  }
}

// The target's poll that has held its slot longest: the first to turn slow. active is not
// empty.
std::vector<Scheduler::JobPtr>::iterator Scheduler::oldest_active(TargetState& state) {
  return std::min_element(state.active.begin(), state.active.end(),
                          [](auto& a, auto& b) { return a->started < b->started; });
}

bool Scheduler::exporter_behind_locked(Clock::time_point now) {
  const Clock::duration limit = options_.slow.after;
  if (!global_waiting_.empty() && now - global_waiting_.front()->queued > limit) return true;
  clean_heap_top_locked();
  return !heap_.empty() && now - std::max(heap_.top().due, heap_.top().pushed) > limit;
}

bool Scheduler::slow_room_locked(const TargetState& state) const {
  return options_.slow.after > Clock::duration::zero() && !state.quota &&
         state.slow < options_.slow.per_target &&
         slow_ < static_cast<std::size_t>(options_.slow.total);
}

void Scheduler::clean_overtake_top_locked() {
  while (!overtakes_.empty()) {
    const OvertakeEntry& top = overtakes_.top();
    auto it = targets_.find(top.target);
    if (it != targets_.end() && it->second.overtake_at == top.at) return;
    overtakes_.pop();  // superseded, or the target is gone
  }
}

void Scheduler::note_slow_blocked_locked(const std::string& name, TargetState& state) {
  // Only the exporter-wide cap (and the exporter's backlog) is freed by other targets' polls
  // (finish hands the room on); the per-target one by this target's own (finish calls
  // overtake_locked for it).
  if (options_.slow.after <= Clock::duration::zero() || state.quota ||
      state.slow >= options_.slow.per_target || state.slow_blocked) {
    return;
  }
  state.slow_blocked = true;
  slow_blocked_.push_back(name);
}

void Scheduler::arm_overtake_locked(const std::string& name, TargetState& state) {
  if (state.waiting.empty() || state.active.empty() || state.quota ||
      options_.slow.after <= Clock::duration::zero()) {
    return;
  }
  auto oldest = oldest_active(state);
  // Refused for want of room, or held while the exporter was behind, already: finish brings
  // the check back when room frees up (or the exporter catches up).
  if ((*oldest)->slow_refused || (*oldest)->slow_held) return;
  const Clock::time_point at = (*oldest)->started + options_.slow.after;
  if (at >= state.overtake_at) return;  // a check at or before then is queued
  state.overtake_at = at;
  overtakes_.push(OvertakeEntry{at, seq_++, name});
}

void Scheduler::run_overtakes_locked(Clock::time_point now) {
  for (;;) {
    clean_overtake_top_locked();
    if (overtakes_.empty() || overtakes_.top().at > now) return;
    std::string name = overtakes_.top().target;
    overtakes_.pop();
    TargetState& state = targets_.at(name);  // clean_overtake_top_locked found it
    state.overtake_at = kNever;
    overtake_locked(name, state, now);
  }
}

void Scheduler::overtake_locked(const std::string& name, TargetState& state,
                                Clock::time_point now) {
  while (!state.waiting.empty() && !state.active.empty()) {
    auto oldest = oldest_active(state);
    JobPtr job = *oldest;
    if (options_.slow.after <= Clock::duration::zero() || now - job->started < options_.slow.after)
      break;
    if (!slow_room_locked(state)) {
      if (state.quota) return;  // one poll at a time by design, not a refusal
      if (!job->slow_refused) {
        job->slow_refused = true;
        ++slow_refused_;
      }
      note_slow_blocked_locked(name, state);
      return;
    }
    if (exporter_behind_locked(now)) {
      // Slow because the exporter is (its polls wait for CPU), not the host: another
      // connection would only add to the backlog. Checked again when a poll ends.
      if (!job->slow_held) {
        job->slow_held = true;
        ++slow_held_;
      }
      note_slow_blocked_locked(name, state);
      return;
    }
    // The stalled poll runs on to its deadline on its own session; the parked one starts
    // now on another (the pool closes the extra session once it is idle).
    state.active.erase(oldest);
    job->slow = true;
    --state.running;
    ++state.slow;
    ++slow_;
    ++polls_slow_;
    spdlog::debug("slow poll gives up its slot target={} collector={} running_for={:.1f}s", name,
                  job->spec->collector, seconds(now - job->started));
    hand_on_locked(state, now);
  }
  arm_overtake_locked(name, state);
}

void Scheduler::begin_poll_locked(const JobPtr& job, Clock::time_point started) {
  ++running_;
  ++polls_started_;
  last_start_ = started;
  job->running = true;
  job->started = started;
  job->slow = false;
  job->slow_refused = false;
  job->slow_held = false;
  TargetState& state = target_state(job->spec->target);
  state.active.push_back(job);
  if (!state.waiting.empty()) arm_overtake_locked(job->spec->target, state);
}

void Scheduler::worker_loop(Worker& self) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stopping_) {
      // Asynchronous polls still in flight need workers for their last steps.
      if (!poll_async_ || (tasks_.empty() && running_ == 0)) break;
      if (tasks_.empty()) {
        self.signaled = false;
        self.cv.wait(lock, [&] { return self.signaled; });
        continue;
      }
    }
    if (!tasks_.empty()) {  // a poll's next step goes before new polls
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      if (leader_ == &self) {
        leader_ = nullptr;
        leader_until_ = kNever;
        if (!stopping_) attend_locked(Clock::now());
      }
      lock.unlock();
      task();
      task = nullptr;  // what it holds goes outside the lock too
      lock.lock();
      continue;
    }
    if (live_workers_ > options_.workers) {  // the pool was shrunk
      --live_workers_;
      if (leader_ == &self) {
        leader_ = nullptr;
        attend_locked(Clock::now());
      }
      return;
    }
    auto now = Clock::now();
    JobPtr job = take_runnable_locked(now, now);
    if (!job) {
      if (leader_ == nullptr) {
        leader_ = &self;
        arm_backstop_locked(kNever);
      } else if (leader_ != &self) {
        attend_locked(now);  // e.g. this worker's finish queued a job before the leader's wait
        self.signaled = false;
        idle_.push_back(&self);
        self.cv.wait(lock, [&] { return self.signaled || stopping_; });
        ++wakeups_;
        if (!self.signaled) std::erase(idle_, &self);  // stop: nobody took us off the list
        continue;
      }
      // The leader sleeps until the heap top is due (or an overtake check), or until told
      // of earlier work.
      leader_until_ = next_wake_locked();
      self.signaled = false;
      auto woken = [&] { return self.signaled || stopping_; };
      if (leader_until_ == kNever) {
        self.cv.wait(lock, woken);
      } else {
        self.cv.wait_until(lock, leader_until_, woken);
      }
      ++wakeups_;
      continue;
    }
    if (leader_ == &self) {
      leader_ = nullptr;
      leader_until_ = kNever;
    }
    if (poll_async_) {
      // Whatever else is due within kStartSlack starts on this wake-up too (a little early,
      // never late), instead of one timer wake-up (or a follower's) per poll.
      std::vector<JobPtr>& batch = self.batch;
      batch.push_back(std::move(job));
      while (batch.size() < kMaxStartBatch) {
        JobPtr more = take_runnable_locked(now, now + kStartSlack);
        if (!more) break;
        batch.push_back(std::move(more));
      }
      std::vector<Started>& starts = self.starts;
      for (JobPtr& taken : batch) {
        Started start{taken, taken->spec, Clock::now(), 0};
        start.lag = std::chrono::duration<double>(start.at - taken->due).count();
        begin_poll_locked(taken, start.at);
        starts.push_back(std::move(start));
      }
      batch.clear();
      attend_locked(now);  // more work due, or the next due time: at most one wake-up
      lock.unlock();
      for (Started& start : starts) {
        if (lag_) lag_(std::max(0.0, start.lag));  // started early (slack): no lag
        // Returns once the poll waits for its first answer; done comes later, on a worker.
        poll_async_(*start.spec, start.at + start.spec->timeout,
                    [this, job = std::move(start.job), started = start.at](PollOutcome outcome) {
                      std::lock_guard done_lock(mutex_);
                      finish(job, started, outcome);
                      if (stopping_) {
                        if (running_ == 0) wake_all_locked();  // the workers may exit now
                      } else {
                        attend_locked(Clock::now());
                      }
                    });
      }
      starts.clear();  // the specs go outside the lock too
      lock.lock();
      continue;
    }
    auto started = Clock::now();
    begin_poll_locked(job, started);
    attend_locked(now);  // more work due, or the next due time: at most one wake-up

    double lag = std::chrono::duration<double>(started - job->due).count();
    std::shared_ptr<const JobSpec> spec = job->spec;  // set_jobs may replace it meanwhile
    lock.unlock();
    if (lag_) lag_(std::max(0.0, lag));
    PollOutcome outcome = poll_(*spec, started + spec->timeout);
    lock.lock();
    finish(job, started, outcome);
  }
  if (leader_ == &self) leader_ = nullptr;
}

}  // namespace exporter
