// Poll scheduler for many targets on few cores: one min-heap of (next_due, job) and a
// fixed worker pool. No thread per target; with an AsyncPollFunction no thread per poll in
// flight either: workers start polls and run their posted CPU steps (Scheduler::post). Admission
// enforces a global cap on targets in flight and a per-target cap on parallel polls; a job that
// cannot start is parked (never blocks a worker) and released when a slot frees up.
//
// Wake-ups (leader/followers): one idle worker, the leader, sleeps until the heap top is
// due and then runs that poll itself; the other idle workers sleep on their own condition
// variable and are woken one at a time (notify_one), only when work is runnable now.
// While the leader runs its poll, leadership stays vacant: the first worker to come back
// leads again, and a kernel timer (timerfd, re-armed without waking anyone) hands the lead
// to an idle follower if the next poll comes due before that. In steady state (polls
// shorter than the gap between due times) each poll costs one wake-up: the leader's timer.
//
// Phases: a target's collectors at one interval sit evenly apart, interval / n (one hash of
// the target for the base phase, the collectors in name order), so two polls of a host only
// overlap when one runs longer than interval / n, e.g. a WMI stall (stagger_offset).
//
// Slow polls: a poll still running `SlowPollPolicy::after` after its start is slow (a WMI
// provider stall, not the host's normal pace). When another poll of its target is parked on
// the per-target cap, a slow poll gives up its slot, so the parked poll starts at once (on
// another WinRM session) instead of waiting out the stall; the slow poll runs on to its
// deadline, counted against the slow-poll caps (per target, exporter-wide) instead of the
// per-target cap. Its target stays in flight (the global cap counts it). Never during a
// quota hold, and never while the exporter itself is behind (exporter_behind_locked): then
// a poll is slow because of the exporter's own backlog, not the host, and another
// connection would only add to it. The session pool closes the extra session once it is
// idle (SessionPool).
//
// Back-off: a target whose polls fail as unreachable, or hit a WinRM quota fault, has its
// polls skipped for a capped, jittered, exponentially growing time (see BackoffPolicy), so
// an outage of many hosts cannot hold the global slots that healthy hosts need.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <expected>
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

// What a poll tells the scheduler about its target.
enum class PollOutcome {
  kOk,           // success: ends any back-off of the target
  kFailed,       // failed for a reason of this collector (bad WQL, parse, series limit)
  kUnreachable,  // the host failed (transport, TLS, timeout, auth, HTTP): back off
  kQuota,        // WinRM quota fault: back off and poll the target one query at a time
};

// Back-off of a target after n consecutive kUnreachable/kQuota polls, counting at most one
// per interval (its collectors fail together), n >= 2 (a single failure is retried at the
// normal interval; a quota fault counts as at least 2):
//   delay = min(interval x 2^(n-1), cap) x (1 - jitter x u),  u uniform in [0, 1)
//   cap   = max(interval, min(max_intervals x interval, max_delay))
// The target's polls that come due within the delay are skipped (counted); each job keeps
// its phase (its next tick at or after the end). A kOk poll ends the back-off.
// After a quota fault the per-target cap is 1 for quota_hold, then the configured cap.
struct BackoffPolicy {
  std::chrono::milliseconds max_delay{10 * 60 * 1000};
  int max_intervals = 16;
  double jitter = 0.25;
  std::chrono::milliseconds quota_hold{10 * 60 * 1000};
};

struct SlowPollPolicy {
  std::chrono::milliseconds after{1000};  // zero: a poll keeps its slot to the end
  int per_target = 4;                     // slow polls of one target that gave up their slot
  int total = 1024;                       // the same exporter-wide (each holds a connection)
};

// Starts a thread running body; throws std::system_error when it cannot (as std::thread
// does). Null: std::thread. Tests inject failures through it.
using ThreadSpawner = std::function<std::thread(std::function<void()> body)>;

struct SchedulerOptions {
  int workers = 4;       // poll threads; set_workers() resizes a running pool
  int concurrency = 64;  // targets with at least one poll running
  BackoffPolicy backoff;
  std::function<double()> random;  // uniform in [0, 1) for jitter; null: a seeded PRNG
  ThreadSpawner spawn_thread = nullptr;
  SlowPollPolicy slow{};
};

// Runs one poll; must return by deadline (give or take) and must not throw.
using PollFunction = std::function<PollOutcome(const JobSpec& job, Clock::time_point deadline)>;
// Called once when a poll started by an AsyncPollFunction ends, on any thread.
using PollDone = std::function<void(PollOutcome outcome)>;
// Starts one poll and returns without waiting for it: the poll holds a slot of the
// concurrency caps, not a worker, while its requests are in flight. It calls done by its
// deadline (give or take), also at shutdown; the scheduler's workers run its CPU steps
// (Scheduler::post). job is only valid during the call.
using AsyncPollFunction =
    std::function<void(const JobSpec& job, Clock::time_point deadline, PollDone done)>;
// Called with the lag (start - due) of every started poll.
using LagObserver = std::function<void(double lag_seconds)>;

// Stable phase in [0, interval) of the index-th (0-based) of a target's count collectors
// at one interval: (hash(target) + index x interval / count) % interval. Even spacing keeps
// a host's polls apart; the hash spreads hosts over the interval.
std::chrono::milliseconds stagger_offset(std::string_view target, std::size_t index,
                                         std::size_t count, std::chrono::milliseconds interval);

class Scheduler {
 public:
  // Each poll holds a worker from start to end.
  Scheduler(SchedulerOptions options, PollFunction poll, LagObserver lag = nullptr);
  // Polls hold no worker while they wait; workers run posted tasks (their CPU steps) first.
  Scheduler(SchedulerOptions options, AsyncPollFunction poll, LagObserver lag = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Replaces the job set. Jobs whose (target, collector) already exist keep their
  // schedule (and a running poll finishes). New jobs poll first within
  // min(interval, new jobs / kFirstRoundPollsPerSecond) of now (a small fleet shows data
  // at once), then move to their regular phase (stagger_offset from the scheduler's
  // start-up time), never sooner than half an interval after that first poll. When a
  // target's collectors at an interval change (one added or removed, an interval changed),
  // its kept jobs move to their new phases the same way, once, after their next poll.
  // per_target_concurrency: target name -> cap (missing = 1).
  void set_jobs(std::vector<JobSpec> jobs,
                const std::unordered_map<std::string, int>& per_target_concurrency);
  void set_concurrency(int concurrency);
  void set_slow_polls(SlowPollPolicy policy);
  // Grows the pool at once; surplus workers exit when they are next idle. When a thread
  // cannot be started the pool keeps its previous size and the error says why.
  std::expected<void, std::string> set_workers(int workers);

  // Error (nothing left running) when a thread cannot be started.
  std::expected<void, std::string> start();
  // Waits for running polls, which end by their deadlines; starts no new ones. With an
  // AsyncPollFunction the workers keep running posted tasks until the last poll is done.
  void stop();

  // Runs task on a worker, ahead of starting new polls (the continuation of a poll whose
  // answer arrived). Any thread; also while stopping, until the last poll is done.
  void post(std::function<void()> task);

  struct Stats {
    std::size_t jobs = 0;
    std::size_t running = 0;
    std::size_t targets_in_flight = 0;
    std::size_t parked = 0;
    std::uint64_t polls_started = 0;
    std::uint64_t polls_skipped = 0;  // due ticks skipped by back-off
    std::uint64_t polls_missed = 0;   // due ticks passed while the job's previous poll ran
    std::uint64_t wakeups = 0;        // worker returns from a wait (timer or notify)
    std::size_t workers = 0;          // configured pool size
    std::size_t slow = 0;             // slow polls running that gave up their slot
    std::uint64_t polls_slow = 0;     // polls that gave up their slot (overtaken)
    std::uint64_t slow_refused = 0;   // slow polls that kept their slot: a slow-poll cap was full
    std::uint64_t slow_held = 0;      // slow polls that kept their slot: the exporter was behind
  };
  Stats stats() const;

  struct Backoff {
    std::string target;
    double seconds = 0;  // current back-off delay
    bool quota = false;  // started by a quota fault (per-target cap lowered to 1)
  };
  // Targets in back-off now, and targets whose cap is lowered after a quota fault.
  std::vector<Backoff> backoffs() const;

  struct Phase {
    std::string target;
    std::string collector;
    std::chrono::milliseconds offset{0};  // in [0, interval): regular due times are
                                          // the scheduler's origin + offset + k x interval
  };
  // Every job's regular phase, by target and collector (tests, debugging).
  std::vector<Phase> phases() const;

  // False when the scheduler is stuck: no poll has started for the longest job timeout +
  // kProgressSlack while a job has been due for at least that long, or a running poll is
  // kProgressSlack past its deadline. True while polls start, while nothing is overdue
  // (idle by design, e.g. between rounds or in back-off), and when not started.
  // Drives the systemd watchdog and /-/healthy.
  bool progressing() const;
  static constexpr Clock::duration kProgressSlack = std::chrono::seconds(5);
  // The first round of new jobs starts at this rate at most (see set_jobs).
  static constexpr int kFirstRoundPollsPerSecond = 200;
  // Asynchronous polls only: a worker that wakes to start a due poll also starts those due
  // within this much more time (at most kMaxStartBatch), a little early, so that one wake-up
  // starts several (a start runs a poll to its first request: tens of microseconds). At
  // 10,000 hosts x 7 collectors a poll comes due every 0.9 ms on average.
  static constexpr std::chrono::milliseconds kStartSlack{20};
  static constexpr std::size_t kMaxStartBatch = 32;
  // Thread name (comm) of the poll workers.
  static constexpr const char* kWorkerThreadName = "poll-worker";

 private:
  struct Job {
    std::shared_ptr<const JobSpec> spec;  // replaced, not changed, by set_jobs (polls hold it)
    Clock::time_point due;
    Clock::duration phase{};  // regular due times: epoch_ + phase + k x interval
    bool removed = false;
    bool busy = false;            // queued as parked/ready or running: never run twice at once
    bool to_phase = false;        // after its next poll (the first, or after a reload): to phase
    Clock::time_point queued{};   // when it joined global_waiting_ (exporter_behind_locked)
    bool running = false;         // a worker polls it now, since started
    Clock::time_point started{};  // for progressing(): a poll stuck past its deadline
    bool slow = false;            // running, and gave up its per-target slot
    bool slow_refused = false;    // counted in slow_refused_ (once per poll)
    bool slow_held = false;       // counted in slow_held_ (once per poll)
  };
  using JobPtr = std::shared_ptr<Job>;
  struct HeapEntry {
    Clock::time_point due;
    std::uint64_t seq;
    JobPtr job;
    Clock::time_point pushed;  // a job requeued after a long poll is due at once, not late
    bool operator>(const HeapEntry& other) const {
      return due != other.due ? due > other.due : seq > other.seq;
    }
  };
  struct OvertakeEntry {  // when `target`'s oldest slot holder turns slow
    Clock::time_point at;
    std::uint64_t seq;
    std::string target;
    bool operator>(const OvertakeEntry& other) const {
      return at != other.at ? at > other.at : seq > other.seq;
    }
  };
  struct TargetState {
    int running = 0;         // polls holding a per-target slot (started or about to)
    int cap = 1;             // in effect now
    int configured_cap = 1;  // from set_jobs; cap returns to it after a quota hold
    // Due, blocked on this target's cap; a few at most. A vector: an empty libstdc++ deque
    // still holds a 512-byte node and its map (~0.6 KB per target, heaptrack).
    std::vector<JobPtr> waiting;
    int failures = 0;  // consecutive kUnreachable/kQuota polls, at most one per interval
    Clock::time_point last_failure_counted{};
    Clock::duration backoff{};  // current delay; zero: not in back-off
    Clock::time_point backoff_until{};
    bool quota = false;
    Clock::time_point quota_until{};  // cap is 1 until then
    int slow = 0;                     // its slow polls that gave up their slot
    std::vector<JobPtr> active;       // started polls holding a slot (at most cap)
    Clock::time_point overtake_at = Clock::time_point::max();  // queued check, max: none
    bool slow_blocked = false;  // in slow_blocked_: waits for the exporter-wide slow cap
  };
  struct Started {
    JobPtr job;
    std::shared_ptr<const JobSpec> spec;  // set_jobs may replace the job's meanwhile
    Clock::time_point at;
    double lag = 0;
  };
  struct Worker {
    std::condition_variable cv;
    bool signaled = false;  // set by the waker (under mutex_) before notify_one
    // Asynchronous polls taken on one wake-up, and their starts (reused buffers).
    std::vector<JobPtr> batch;
    std::vector<Started> starts;
  };

  void worker_loop(Worker& self);
  // Error when a thread cannot be started; the workers started so far keep running.
  std::expected<void, std::string> spawn_workers_locked();
  std::thread spawn(std::function<void()> body);
  // Under lock: a job that may start now (from ready_ or the heap top, if due by due_by:
  // now, or now + kStartSlack), else null. Parks due jobs that cannot start and skips the
  // ticks of targets in back-off.
  JobPtr take_runnable_locked(Clock::time_point now, Clock::time_point due_by);
  // Under lock: marks job running from started (counts, the target's slot holders).
  void begin_poll_locked(const JobPtr& job, Clock::time_point started);
  // Under lock: after the work queues changed, makes sure someone attends to them with at
  // most one wake-up: the leader, else an idle follower, else the backstop timer.
  void attend_locked(Clock::time_point now);
  void wake_locked(Worker& worker);
  void wake_all_locked();
  void arm_backstop_locked(Clock::time_point when);
  void backstop_loop();
  // Under lock: decides whether job may start now; parks it otherwise.
  bool admit(const JobPtr& job, Clock::time_point now);
  void finish(const JobPtr& job, Clock::time_point started, PollOutcome outcome);
  void record_outcome_locked(TargetState& state, const JobSpec& spec, PollOutcome outcome,
                             Clock::time_point now);
  void push_heap(const JobPtr& job);
  // Pops superseded entries; the heap top is then live (or the heap is empty).
  void clean_heap_top_locked();
  TargetState& target_state(const std::string& name);
  bool defer_for_backoff_locked(const JobPtr& job, TargetState& state, Clock::time_point now);
  // Under lock: after a target's slot was freed, hands it to the target's parked polls (or
  // requeues them while the target backs off, or queues them behind other targets).
  void hand_on_locked(TargetState& state, Clock::time_point now);
  // Under lock: gives free global slots to the targets waiting for one.
  void fill_global_locked(Clock::time_point now);
  // Under lock: the earliest of the next due poll and the next overtake check (max: none).
  Clock::time_point next_wake_locked();
  void clean_overtake_top_locked();
  // Under lock: queues an overtake check for when the target's oldest slot holder turns slow,
  // if polls are parked on its cap and the slow-poll caps leave room.
  void arm_overtake_locked(const std::string& name, TargetState& state);
  // Under lock: slot holders past SlowPollPolicy::after give their slots to parked polls.
  void overtake_locked(const std::string& name, TargetState& state, Clock::time_point now);
  void run_overtakes_locked(Clock::time_point now);
  bool slow_room_locked(const TargetState& state) const;
  static std::vector<JobPtr>::iterator oldest_active(TargetState& state);
  // Under lock: the target waits for room under the exporter-wide slow cap (or for the
  // exporter to catch up).
  void note_slow_blocked_locked(const std::string& name, TargetState& state);
  // Under lock: the exporter itself is behind: a due poll has waited longer than
  // SlowPollPolicy::after for a worker (the heap top) or for a global slot, not for its own
  // target. Its polls then run long because of the exporter, and none is overtaken.
  bool exporter_behind_locked(Clock::time_point now);
  // Under lock: the first regular due time of job at or after `at`.
  Clock::time_point next_phase_tick(const Job& job, Clock::time_point at) const;
  void push_global_waiting_locked(JobPtr job, Clock::time_point now);

  SchedulerOptions options_;
  PollFunction poll_;  // one of the two
  AsyncPollFunction poll_async_;
  LagObserver lag_;

  mutable std::mutex mutex_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, std::greater<>> heap_;
  std::uint64_t seq_ = 0;
  std::unordered_map<std::string, JobPtr> jobs_;  // key: target + '\0' + collector
  std::unordered_map<std::string, TargetState> targets_;
  std::deque<JobPtr> global_waiting_;        // due, blocked on the global cap
  std::deque<JobPtr> ready_;                 // admitted by a finishing poll, to run next
  std::deque<std::function<void()>> tasks_;  // posted: run before any new poll
  std::size_t targets_in_flight_ = 0;
  std::size_t running_ = 0;
  std::uint64_t polls_started_ = 0;
  std::uint64_t polls_skipped_ = 0;
  std::uint64_t polls_missed_ = 0;
  std::uint64_t wakeups_ = 0;
  std::priority_queue<OvertakeEntry, std::vector<OvertakeEntry>, std::greater<>> overtakes_;
  std::size_t slow_ = 0;
  std::uint64_t polls_slow_ = 0;
  std::uint64_t slow_refused_ = 0;
  std::uint64_t slow_held_ = 0;
  std::deque<std::string> slow_blocked_;          // targets waiting for the exporter-wide slow cap
  Clock::time_point last_start_{};                // last poll start (or start())
  Clock::duration max_timeout_{};                 // longest job timeout, for progressing()
  const Clock::time_point epoch_ = Clock::now();  // origin of the jobs' phases
  bool stopping_ = false;
  bool started_ = false;

  // Leader/followers. leader_ sleeps until leader_until_ (max: no timed wait).
  Worker* leader_ = nullptr;
  Clock::time_point leader_until_ = Clock::time_point::max();
  std::vector<Worker*> idle_;  // followers, most recently idle last (woken first)
  int live_workers_ = 0;       // threads in worker_loop; exited ones stay in threads_
  std::vector<std::unique_ptr<Worker>> worker_states_;
  std::vector<std::thread> threads_;

  // Backstop: a timerfd armed while leadership is vacant and followers are idle.
  int timer_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that ends backstop_loop
  Clock::time_point backstop_at_ = Clock::time_point::max();
  std::thread backstop_;

  std::function<double()> random_;
};

}  // namespace exporter
