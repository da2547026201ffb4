#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "scheduler.h"

using namespace exporter;
using namespace std::chrono_literals;

namespace {

// Records every poll and the concurrency seen while it ran.
struct Recorder {
  std::mutex mutex;
  std::vector<std::string> started;  // "target/collector" in start order
  std::map<std::string, int> running_per_target;
  std::set<std::string> targets_running;
  int max_per_target = 0;
  std::size_t max_targets = 0;
  std::map<std::string, std::chrono::milliseconds> sleep_for;  // target -> poll duration

  void poll(const JobSpec& job, Clock::time_point deadline) {
    CHECK(deadline > Clock::now() - 1s);  // the deadline passed is start + timeout
    std::chrono::milliseconds pause{5};
    {
      std::lock_guard lock(mutex);
      started.push_back(job.target + "/" + job.collector);
      int& running = ++running_per_target[job.target];
      targets_running.insert(job.target);
      max_per_target = std::max(max_per_target, running);
      max_targets = std::max(max_targets, targets_running.size());
      if (auto it = sleep_for.find(job.target); it != sleep_for.end()) pause = it->second;
    }
    std::this_thread::sleep_for(pause);
    std::lock_guard lock(mutex);
    if (--running_per_target[job.target] == 0) targets_running.erase(job.target);
  }
  std::size_t count(const std::string& prefix) {
    std::lock_guard lock(mutex);
    return static_cast<std::size_t>(std::count_if(
        started.begin(), started.end(), [&](auto& s) { return s.rfind(prefix, 0) == 0; }));
  }
};

// Waits (bounded) until pred holds.
template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("splay offset is stable, in range and spreads jobs") {
  auto a = splay_offset("win01", "cpu", 30s);
  CHECK(a == splay_offset("win01", "cpu", 30s));
  std::set<long> offsets;
  for (int i = 0; i < 1000; ++i) {
    auto offset = splay_offset("host" + std::to_string(i), "cpu", 30s);
    CHECK(offset >= 0ms);
    CHECK(offset < 30s);
    offsets.insert(offset.count() / 1000);  // seconds bucket
  }
  CHECK(offsets.size() >= 25);  // 1000 hosts land in (nearly) every second of 30
  CHECK(splay_offset("x", "y", 0ms) == 0ms);
}

TEST_CASE("caps: per-target parallel polls and targets in flight are bounded") {
  Recorder recorder;
  for (int t = 0; t < 6; ++t) recorder.sleep_for["t" + std::to_string(t)] = 30ms;
  Scheduler scheduler(SchedulerOptions{8, 2},
                      [&](const JobSpec& job, Clock::time_point d) { recorder.poll(job, d); });
  std::vector<JobSpec> jobs;
  std::unordered_map<std::string, int> caps;
  for (int t = 0; t < 6; ++t) {
    std::string target = "t" + std::to_string(t);
    caps[target] = 2;
    for (int c = 0; c < 4; ++c) jobs.push_back({target, "c" + std::to_string(c), 20ms, 15ms});
  }
  scheduler.set_jobs(jobs, caps);
  scheduler.start();
  REQUIRE(wait_for([&] { return recorder.count("") >= 80; }));
  scheduler.stop();
  CHECK(recorder.max_per_target == 2);  // reached, never exceeded
  CHECK(recorder.max_targets == 2);
  for (int t = 0; t < 6; ++t) CHECK(recorder.count("t" + std::to_string(t) + "/") > 0);
}

TEST_CASE("a slow target does not hold workers: parked jobs are requeued") {
  Recorder recorder;
  recorder.sleep_for["slow"] = 400ms;
  // Two workers, slow target has 4 collectors but cap 1: only one worker may be
  // busy with it; the other keeps polling the fast target.
  Scheduler scheduler(SchedulerOptions{2, 10},
                      [&](const JobSpec& job, Clock::time_point d) { recorder.poll(job, d); });
  std::vector<JobSpec> jobs;
  for (int c = 0; c < 4; ++c) jobs.push_back({"slow", "c" + std::to_string(c), 10ms, 400ms});
  jobs.push_back({"fast", "c0", 10ms, 5ms});
  scheduler.set_jobs(jobs, {{"slow", 1}, {"fast", 1}});
  scheduler.start();
  REQUIRE(wait_for([&] { return recorder.count("slow/") >= 1; }));
  auto fast_before = recorder.count("fast/");
  // While the first slow poll runs (400 ms), the fast target keeps going.
  CHECK(wait_for([&] { return recorder.count("fast/") >= fast_before + 5; }, 350ms));
  scheduler.stop();
  CHECK(recorder.max_per_target == 1);
  auto stats = scheduler.stats();
  CHECK(stats.running == 0);
}

TEST_CASE("ordering: with one worker, jobs start in due order (splay order)") {
  Recorder recorder;
  Scheduler scheduler(SchedulerOptions{1, 100},
                      [&](const JobSpec& job, Clock::time_point d) { recorder.poll(job, d); });
  std::vector<JobSpec> jobs;
  std::vector<std::pair<std::chrono::milliseconds, std::string>> expected;
  for (int t = 0; t < 8; ++t) {
    std::string target = "host" + std::to_string(t);
    jobs.push_back({target, "os", 2000ms, 100ms});
    expected.emplace_back(splay_offset(target, "os", 2000ms), target + "/os");
  }
  std::sort(expected.begin(), expected.end());
  std::unordered_map<std::string, int> caps;
  for (auto& job : jobs) caps[job.target] = 1;
  scheduler.set_jobs(jobs, caps);
  scheduler.start();
  REQUIRE(wait_for([&] { return recorder.count("") >= 8; }, 3000ms));
  scheduler.stop();
  std::vector<std::string> first_round(recorder.started.begin(), recorder.started.begin() + 8);
  std::vector<std::string> expected_names;
  for (auto& [offset, name] : expected) expected_names.push_back(name);
  CHECK(first_round == expected_names);
}

TEST_CASE("set_jobs: removed targets stop polling, kept ones continue") {
  Recorder recorder;
  std::atomic<int> lag_observations{0};
  Scheduler scheduler(
      SchedulerOptions{2, 10},
      [&](const JobSpec& job, Clock::time_point d) { recorder.poll(job, d); },
      [&](double lag) {
        CHECK(lag >= 0);
        ++lag_observations;
      });
  scheduler.set_jobs({{"a", "cpu", 10ms, 5ms}, {"b", "cpu", 10ms, 5ms}}, {{"a", 1}, {"b", 1}});
  scheduler.start();
  REQUIRE(wait_for([&] { return recorder.count("b/") >= 3 && recorder.count("a/") >= 3; }));
  scheduler.set_jobs({{"a", "cpu", 10ms, 5ms}}, {{"a", 1}});
  std::this_thread::sleep_for(30ms);  // let a poll of b that was already running end
  auto b_after = recorder.count("b/");
  auto a_after = recorder.count("a/");
  REQUIRE(wait_for([&] { return recorder.count("a/") >= a_after + 5; }));
  CHECK(recorder.count("b/") == b_after);
  CHECK(scheduler.stats().jobs == 1);
  scheduler.stop();
  CHECK(lag_observations.load() == static_cast<int>(recorder.count("")));
}

TEST_CASE("set_workers resizes a running pool: more workers run more polls at once") {
  Recorder recorder;
  for (int t = 0; t < 6; ++t) recorder.sleep_for["t" + std::to_string(t)] = 40ms;
  Scheduler scheduler(SchedulerOptions{1, 6},
                      [&](const JobSpec& job, Clock::time_point d) { recorder.poll(job, d); });
  std::vector<JobSpec> jobs;
  std::unordered_map<std::string, int> caps;
  for (int t = 0; t < 6; ++t) {
    jobs.push_back({"t" + std::to_string(t), "c", 10ms, 40ms});
    caps["t" + std::to_string(t)] = 1;
  }
  scheduler.set_jobs(jobs, caps);
  scheduler.start();
  REQUIRE(wait_for([&] { return recorder.count("") >= 6; }));
  {
    std::lock_guard lock(recorder.mutex);
    CHECK(recorder.max_targets == 1);  // one worker: one poll at a time
  }
  scheduler.set_workers(6);
  CHECK(scheduler.stats().workers == 6);
  // Every target is always due, so six workers soon overlap.
  CHECK(wait_for([&] {
    std::lock_guard lock(recorder.mutex);
    return recorder.max_targets >= 3;
  }));
  scheduler.set_workers(2);  // surplus workers exit when idle
  CHECK(scheduler.stats().workers == 2);
  {
    std::lock_guard lock(recorder.mutex);
    recorder.max_targets = 0;
  }
  auto before = recorder.count("");
  REQUIRE(wait_for([&] { return recorder.count("") >= before + 12; }));
  scheduler.stop();
  {
    std::lock_guard lock(recorder.mutex);
    CHECK(recorder.max_targets <= 2 + 4);  // at most: two, plus polls that were running
    CHECK(recorder.max_targets >= 1);
  }
  CHECK(scheduler.stats().running == 0);
}
