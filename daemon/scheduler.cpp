#include "scheduler.h"

#include <algorithm>

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

}  // namespace

std::chrono::milliseconds splay_offset(std::string_view target, std::string_view collector,
                                       std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return std::chrono::milliseconds(0);
  std::uint64_t hash = fnv1a(job_key(target, collector));
  // Mix the high bits in: FNV's low bits are weak for short keys.
  hash ^= hash >> 29;
  return std::chrono::milliseconds(hash % static_cast<std::uint64_t>(interval.count()));
}

Scheduler::Scheduler(SchedulerOptions options, PollFunction poll, LagObserver lag)
    : options_(options), poll_(std::move(poll)), lag_(std::move(lag)) {
  options_.workers = std::max(1, options_.workers);
  options_.concurrency = std::max(1, options_.concurrency);
}

Scheduler::~Scheduler() { stop(); }

Scheduler::TargetState& Scheduler::target_state(const std::string& name) { return targets_[name]; }

void Scheduler::push_heap(const JobPtr& job) { heap_.push(HeapEntry{job->due, seq_++, job}); }

void Scheduler::set_jobs(std::vector<JobSpec> jobs,
                         const std::unordered_map<std::string, int>& per_target_concurrency) {
  std::lock_guard lock(mutex_);
  auto now = Clock::now();
  std::unordered_map<std::string, JobPtr> next;
  next.reserve(jobs.size());
  for (auto& spec : jobs) {
    std::string key = job_key(spec.target, spec.collector);
    if (next.contains(key)) continue;
    if (auto it = jobs_.find(key); it != jobs_.end()) {
      it->second->spec = std::move(spec);  // keeps its due time and any running poll
      next.emplace(std::move(key), it->second);
      jobs_.erase(it);
      continue;
    }
    auto job = std::make_shared<Job>();
    job->due = now + splay_offset(spec.target, spec.collector, spec.interval);
    job->spec = std::move(spec);
    push_heap(job);
    next.emplace(std::move(key), std::move(job));
  }
  for (auto& [key, job] : jobs_) job->removed = true;  // heap/queue entries skip it
  jobs_ = std::move(next);

  for (auto& [name, cap] : per_target_concurrency) target_state(name).cap = std::max(1, cap);
  for (auto it = targets_.begin(); it != targets_.end();) {
    bool unused = !per_target_concurrency.contains(it->first) && it->second.running == 0;
    it = unused ? targets_.erase(it) : std::next(it);
  }
  wake_.notify_all();
}

void Scheduler::set_concurrency(int concurrency) {
  std::lock_guard lock(mutex_);
  options_.concurrency = std::max(1, concurrency);
  wake_.notify_all();
}

void Scheduler::set_workers(int workers) {
  std::lock_guard lock(mutex_);
  options_.workers = std::max(1, workers);
  if (started_) spawn_workers_locked();
  wake_.notify_all();  // surplus workers notice and exit
}

void Scheduler::spawn_workers_locked() {
  while (live_workers_ < options_.workers) {
    ++live_workers_;
    workers_.emplace_back([this] { worker_loop(); });
  }
}

void Scheduler::start() {
  std::lock_guard lock(mutex_);
  if (started_) return;
  started_ = true;
  stopping_ = false;
  spawn_workers_locked();
}

void Scheduler::stop() {
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    started_ = false;
    workers = std::move(workers_);
    workers_.clear();
  }
  wake_.notify_all();
  for (auto& worker : workers) worker.join();
  std::lock_guard lock(mutex_);
  live_workers_ = 0;
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
  stats.workers = static_cast<std::size_t>(options_.workers);
  return stats;
}

bool Scheduler::admit(const JobPtr& job) {
  TargetState& state = target_state(job->spec.target);
  if (state.running > 0 && state.running >= state.cap) {
    state.waiting.push_back(job);
    return false;
  }
  // While other targets wait for a global slot, busy targets do not take more work
  // ahead of them (FIFO fairness across targets).
  if (!global_waiting_.empty()) {
    global_waiting_.push_back(job);
    return false;
  }
  if (state.running > 0) {
    ++state.running;
    return true;
  }
  if (targets_in_flight_ < static_cast<std::size_t>(options_.concurrency)) {
    ++targets_in_flight_;
    state.running = 1;
    return true;
  }
  global_waiting_.push_back(job);
  return false;
}

void Scheduler::finish(const JobPtr& job, Clock::time_point started) {
  --running_;
  job->busy = false;
  if (!job->removed) {
    auto interval = std::max(job->spec.interval, std::chrono::milliseconds(1));
    auto next = job->due + interval;
    // Keep the phase; skip ticks missed by a slow poll rather than firing a burst.
    if (next <= started) next += interval * ((started - next) / interval + 1);
    job->due = next;
    push_heap(job);
  }

  TargetState& state = target_state(job->spec.target);
  --state.running;
  if (global_waiting_.empty()) {
    // Nobody else waits: hand the freed per-target slot to this target's next job.
    while (!state.waiting.empty() && state.running < state.cap) {
      JobPtr waiting = std::move(state.waiting.front());
      state.waiting.pop_front();
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
    for (auto& waiting : state.waiting) global_waiting_.push_back(std::move(waiting));
    state.waiting.clear();
  }
  if (state.running == 0) --targets_in_flight_;
  while (targets_in_flight_ < static_cast<std::size_t>(options_.concurrency) &&
         !global_waiting_.empty()) {
    JobPtr waiting = std::move(global_waiting_.front());
    global_waiting_.pop_front();
    if (waiting->removed) {
      waiting->busy = false;
      continue;
    }
    TargetState& other = target_state(waiting->spec.target);
    if (other.running == 0) {
      ++targets_in_flight_;
      other.running = 1;
    } else if (other.running < other.cap) {
      ++other.running;
    } else {
      other.waiting.push_back(std::move(waiting));
      continue;
    }
    ready_.push_back(std::move(waiting));
  }
  if (!ready_.empty()) wake_.notify_all();
}

void Scheduler::worker_loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (live_workers_ > options_.workers) {  // the pool was shrunk
      --live_workers_;
      return;
    }
    JobPtr job;
    if (!ready_.empty()) {
      job = std::move(ready_.front());
      ready_.pop_front();
    } else if (!heap_.empty()) {
      const HeapEntry& top = heap_.top();
      if (top.job->removed || top.due != top.job->due || top.job->busy) {
        heap_.pop();  // superseded entry
        continue;
      }
      if (top.due > Clock::now()) {
        wake_.wait_until(lock, top.due);
        continue;
      }
      job = top.job;
      heap_.pop();
      job->busy = true;
      if (!admit(job)) continue;  // parked; this worker moves on
    } else {
      wake_.wait(lock);
      continue;
    }

    ++running_;
    ++polls_started_;
    auto started = Clock::now();
    JobSpec spec = job->spec;
    double lag = std::chrono::duration<double>(started - job->due).count();
    lock.unlock();
    if (lag_) lag_(std::max(0.0, lag));
    poll_(spec, started + spec.timeout);
    lock.lock();
    finish(job, started);
  }
}

}  // namespace exporter
