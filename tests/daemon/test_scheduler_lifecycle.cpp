// Scheduler life cycle: the first round of polls, progressing() (the watchdog's and
// /-/healthy's source), and thread start failures (a clean error, never std::terminate).
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "scheduler.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_scheduler_lifecycle {

using namespace exporter;
using namespace std::chrono_literals;

namespace {

// Polls that return at once until hang() is called; then they block until release().
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool hanging = false;
  bool released = false;
  std::atomic<int> polls{0};

  PollOutcome poll(const JobSpec&, Clock::time_point) {
    ++polls;
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return !hanging || released; });
    return PollOutcome::kOk;
  }
  void hang() {
    std::lock_guard lock(mutex);
    hanging = true;
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    cv.notify_all();
  }
};

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// A spawner that fails (as pthread_create with EAGAIN does) once `fail` is set.
ThreadSpawner failing_spawner(std::shared_ptr<std::atomic<bool>> fail) {
  return [fail](std::function<void()> body) {
    if (*fail)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(std::move(body));
  };
}

}  // namespace

TEST_CASE("first round: a small fleet polls everything at once, then moves to its phase") {
  std::mutex mutex;
  std::map<std::string, std::vector<Clock::time_point>> starts;  // job -> poll start times
  Scheduler scheduler(SchedulerOptions{8, 64, {}, [] { return 0.5; }},
                      [&](const JobSpec& job, Clock::time_point) {
                        std::lock_guard lock(mutex);
                        starts[job.target + "/" + job.collector].push_back(Clock::now());
                        return PollOutcome::kOk;
                      });
  // 5 hosts x 7 collectors, interval 4 s: the whole first round within 35 / 200 s = 175 ms
  // (before: splayed over the 4 s interval).
  std::vector<JobSpec> jobs;
  std::unordered_map<std::string, int> caps;
  for (int host = 0; host < 5; ++host) {
    std::string target = "win0" + std::to_string(host);
    caps[target] = 2;
    for (const char* collector :
         {"cpu", "memory", "os", "logical_disk", "net", "service", "system"}) {
      jobs.push_back(JobSpec{target, collector, 4000ms, 1000ms});
    }
  }
  auto set_at = Clock::now();
  scheduler.set_jobs(jobs, caps);
  REQUIRE(scheduler.start());
  // Bounded wait for the first round; the assertion is on all 35 being polled well before
  // any regular tick could have covered them (the old splay spread them over 4 s).
  REQUIRE(wait_until(
      [&] {
        std::lock_guard lock(mutex);
        return starts.size() == 35;
      },
      4000ms));
  Clock::time_point last_first{};
  {
    std::lock_guard lock(mutex);
    for (auto& [job, times] : starts) last_first = std::max(last_first, times.front());
  }
  CHECK(last_first - set_at < 1500ms);  // 175 ms by design; generous for a loaded machine
  // The second polls: at the regular phase, never sooner than half an interval later.
  REQUIRE(wait_until(
      [&] {
        std::lock_guard lock(mutex);
        for (auto& [job, times] : starts) {
          if (times.size() < 2) return false;
        }
        return true;
      },
      8000ms));
  scheduler.stop();
  std::lock_guard lock(mutex);
  std::set<std::int64_t> second_offsets;  // ms after set_jobs, to see they spread out
  for (auto& [job, times] : starts) {
    CAPTURE(job);
    CHECK(times[1] - times[0] >= 2000ms - 50ms);
    second_offsets.insert(
        std::chrono::duration_cast<std::chrono::milliseconds>(times[1] - set_at).count() / 250);
  }
  CHECK(second_offsets.size() > 4);  // spread over the interval again, not all in one burst
}

TEST_CASE("first round: a large fleet keeps the full splay (bounded start-up burst)") {
  std::atomic<int> polls{0};
  Scheduler scheduler(SchedulerOptions{4, 64, {}, [] { return 0.5; }},
                      [&](const JobSpec&, Clock::time_point) {
                        ++polls;
                        return PollOutcome::kOk;
                      });
  // 2,000 new jobs at 200/s would take 10 s > the 3 s interval: the interval bounds it.
  std::vector<JobSpec> jobs;
  std::unordered_map<std::string, int> caps;
  for (int i = 0; i < 2000; ++i) {
    jobs.push_back(JobSpec{"t" + std::to_string(i), "cpu", 3000ms, 1000ms});
    caps["t" + std::to_string(i)] = 1;
  }
  scheduler.set_jobs(jobs, caps);
  REQUIRE(scheduler.start());
  std::this_thread::sleep_for(1000ms);
  int after_one_second = polls.load();
  scheduler.stop();
  // About a third of the fleet in the first of 3 s; far from all of it.
  CHECK(after_one_second > 200);
  CHECK(after_one_second < 1400);
}

TEST_CASE("progressing: true while polls start and while idle between rounds") {
  Gate gate;
  Scheduler scheduler(SchedulerOptions{2, 8, {}, [] { return 0.5; }},
                      [&](const JobSpec& job, Clock::time_point d) { return gate.poll(job, d); });
  // interval 200 ms, timeout 100 ms: the grace is 100 ms + kProgressSlack.
  scheduler.set_jobs({{"a", "cpu", 200ms, 100ms}, {"b", "cpu", 200ms, 100ms}},
                     {{"a", 1}, {"b", 1}});
  CHECK(scheduler.progressing());  // not started
  REQUIRE(scheduler.start());
  // Over more than the grace: polls keep starting, so it stays true throughout.
  auto end = Clock::now() + Scheduler::kProgressSlack + 1s;
  bool always = true;
  while (Clock::now() < end) {
    always = always && scheduler.progressing();
    std::this_thread::sleep_for(100ms);
  }
  CHECK(always);
  CHECK(gate.polls.load() > 10);
  scheduler.stop();
}

TEST_CASE("progressing: true when nothing is due for longer than the grace (idle by design)") {
  Gate gate;
  Scheduler scheduler(SchedulerOptions{1, 8, {}, [] { return 0.5; }},
                      [&](const JobSpec& job, Clock::time_point d) { return gate.poll(job, d); });
  // One job every 10 s: after its first poll nothing is due for longer than the grace
  // (100 ms + 5 s), which the loop below covers.
  scheduler.set_jobs({{"a", "cpu", 10s, 100ms}}, {{"a", 1}});
  REQUIRE(scheduler.start());
  REQUIRE(wait_until([&] { return gate.polls.load() >= 1; }, 11s));
  auto end = Clock::now() + Scheduler::kProgressSlack + 1s;
  bool always = true;
  while (Clock::now() < end) {
    always = always && scheduler.progressing();
    std::this_thread::sleep_for(200ms);
  }
  CHECK(always);
  scheduler.stop();
}

TEST_CASE("progressing: false once polls hang (workers stuck past their deadline)") {
  Gate gate;
  Scheduler scheduler(SchedulerOptions{2, 8, {}, [] { return 0.5; }},
                      [&](const JobSpec& job, Clock::time_point d) { return gate.poll(job, d); });
  scheduler.set_jobs({{"a", "cpu", 200ms, 100ms}, {"b", "cpu", 200ms, 100ms}},
                     {{"a", 1}, {"b", 1}});
  REQUIRE(scheduler.start());
  REQUIRE(wait_until([&] { return gate.polls.load() >= 4; }, 5s));
  CHECK(scheduler.progressing());
  gate.hang();
  // Grace 100 ms + 5 s; bounded wait.
  CHECK(wait_until(
      [&] { return !scheduler.progressing(); },
      std::chrono::duration_cast<std::chrono::milliseconds>(Scheduler::kProgressSlack) + 5s));
  gate.release();
  CHECK(wait_until([&] { return scheduler.progressing(); }, 5s));
  scheduler.stop();
}

TEST_CASE("progressing: a single hung job with nothing else due is a stall") {
  Gate gate;
  Scheduler scheduler(SchedulerOptions{4, 8, {}, [] { return 0.5; }},
                      [&](const JobSpec& job, Clock::time_point d) { return gate.poll(job, d); });
  gate.hang();
  // The only job hangs: the heap is empty, nothing is parked; only its overrun shows it.
  scheduler.set_jobs({{"a", "cpu", 2s, 100ms}}, {{"a", 1}});
  REQUIRE(scheduler.start());
  REQUIRE(wait_until([&] { return gate.polls.load() >= 1; }, 3s));
  CHECK(wait_until(
      [&] { return !scheduler.progressing(); },
      std::chrono::duration_cast<std::chrono::milliseconds>(Scheduler::kProgressSlack) + 5s));
  gate.release();
  scheduler.stop();
}

TEST_CASE("a worker thread that cannot start is an error, not std::terminate") {
  auto fail = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> polls{0};
  SchedulerOptions options{2, 8, {}, [] { return 0.5; }, failing_spawner(fail)};
  Scheduler scheduler(options, [&](const JobSpec&, Clock::time_point) {
    ++polls;
    return PollOutcome::kOk;
  });
  scheduler.set_jobs({{"a", "cpu", 50ms, 40ms}}, {{"a", 1}});

  SUBCASE("at start: start() fails and nothing is left running") {
    *fail = true;
    auto started = scheduler.start();
    REQUIRE_FALSE(started);
    CHECK(started.error().find("thread") != std::string::npos);
    std::this_thread::sleep_for(200ms);
    CHECK(polls.load() == 0);
    // Once threads can start again, start() works.
    *fail = false;
    REQUIRE(scheduler.start());
    CHECK(wait_until([&] { return polls.load() > 0; }, 5s));
  }
  SUBCASE("growing a running pool: set_workers fails and the pool keeps its size") {
    REQUIRE(scheduler.start());
    *fail = true;
    auto grown = scheduler.set_workers(6);
    REQUIRE_FALSE(grown);
    CHECK(grown.error().find("2 running, 6 wanted") != std::string::npos);
    CHECK(scheduler.stats().workers == 2);
    int before = polls.load();
    CHECK(wait_until([&] { return polls.load() > before + 3; }, 5s));  // still polling
    *fail = false;
    CHECK(scheduler.set_workers(6));
    CHECK(scheduler.stats().workers == 6);
  }
  scheduler.stop();
}

}  // namespace test_scheduler_lifecycle
