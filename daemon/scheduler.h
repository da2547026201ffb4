// Poll scheduler for many targets on few cores: one min-heap of (next_due, job) and a
// fixed worker pool. No thread per target. Admission enforces a global cap on targets
// in flight and a per-target cap on parallel polls; a job that cannot start is parked
// (never blocks a worker) and released when a slot frees up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace exporter {

using Clock = std::chrono::steady_clock;

struct JobSpec {
  std::string target;
  std::string collector;
  std::chrono::milliseconds interval{30000};
  std::chrono::milliseconds timeout{20000};
};

struct TargetLimits {
  int per_target_concurrency = 2;
};

struct SchedulerOptions {
  int workers = 4;       // poll threads; set_workers() resizes a running pool
  int concurrency = 64;  // targets with at least one poll running
};

// Runs one poll; must return by deadline (give or take) and must not throw.
using PollFunction = std::function<void(const JobSpec& job, Clock::time_point deadline)>;
// Called with the lag (start - due) of every started poll.
using LagObserver = std::function<void(double lag_seconds)>;

// Stable splay offset in [0, interval): hash(target, collector) % interval.
std::chrono::milliseconds splay_offset(std::string_view target, std::string_view collector,
                                       std::chrono::milliseconds interval);

class Scheduler {
 public:
  Scheduler(SchedulerOptions options, PollFunction poll, LagObserver lag = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Replaces the job set. Jobs whose (target, collector) already exist keep their
  // schedule (and a running poll finishes); new jobs start at now + splay offset.
  // per_target_concurrency: target name -> cap (missing = 1).
  void set_jobs(std::vector<JobSpec> jobs,
                const std::unordered_map<std::string, int>& per_target_concurrency);
  void set_concurrency(int concurrency);
  // Grows the pool at once; surplus workers exit when they are next idle.
  void set_workers(int workers);

  void start();
  void stop();  // waits for running polls to finish

  struct Stats {
    std::size_t jobs = 0;
    std::size_t running = 0;
    std::size_t targets_in_flight = 0;
    std::size_t parked = 0;
    std::uint64_t polls_started = 0;
    std::size_t workers = 0;  // configured pool size
  };
  Stats stats() const;

 private:
  struct Job {
    JobSpec spec;
    Clock::time_point due;
    bool removed = false;
    bool busy = false;  // queued as parked/ready or running: never run twice at once
  };
  using JobPtr = std::shared_ptr<Job>;
  struct HeapEntry {
    Clock::time_point due;
    std::uint64_t seq;
    JobPtr job;
    bool operator>(const HeapEntry& other) const {
      return due != other.due ? due > other.due : seq > other.seq;
    }
  };
  struct TargetState {
    int running = 0;
    int cap = 1;
    std::deque<JobPtr> waiting;  // due, blocked on this target's cap
  };

  void worker_loop();
  void spawn_workers_locked();
  // Under lock: decides whether job may start now; parks it otherwise.
  bool admit(const JobPtr& job);
  void finish(const JobPtr& job, Clock::time_point started);
  void push_heap(const JobPtr& job);
  TargetState& target_state(const std::string& name);

  SchedulerOptions options_;
  PollFunction poll_;
  LagObserver lag_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> heap_;
  std::uint64_t seq_ = 0;
  std::unordered_map<std::string, JobPtr> jobs_;  // key: target + '\0' + collector
  std::unordered_map<std::string, TargetState> targets_;
  std::deque<JobPtr> global_waiting_;  // due, blocked on the global cap
  std::deque<JobPtr> ready_;           // admitted by a finishing poll, to run next
  std::size_t targets_in_flight_ = 0;
  std::size_t running_ = 0;
  std::uint64_t polls_started_ = 0;
  bool stopping_ = false;
  bool started_ = false;
  int live_workers_ = 0;  // threads in worker_loop; exited ones stay in workers_ to be joined
  std::vector<std::thread> workers_;
};

}  // namespace exporter
