#include <doctest/doctest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "cache.h"
#include "pages.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_cache {

using namespace exporter;
using namespace std::chrono_literals;

namespace {

collectors::Families one_family(double value) {
  collectors::MetricFamily family;
  family.name = "windows_os_time";
  family.help = "OS time";
  family.add({}, value);
  return {family};
}

// A cached family's lines as text (kept compressed by default).
std::string text_of(const RenderedFamily& family) {
  std::string out;
  append_lines(out, family);
  return out;
}

TargetInfo target(const std::string& name) {
  TargetInfo info;
  info.name = name;
  info.interval = 10s;
  info.stale_after_intervals = 3;
  info.collectors = {"os", "cpu"};
  return info;
}

}  // namespace

TEST_CASE("snapshots: success, failure keeps data, staleness drops it") {
  Cache cache;
  cache.set_targets({target("a")});
  auto view = cache.view("a");
  REQUIRE(view.info);
  REQUIRE(view.collectors.size() == 2);
  CHECK(view.collectors[0].snapshot == nullptr);

  cache.record_success("a", "os", one_family(42), 0.5);
  view = cache.view("a");
  auto snapshot = view.collectors[0].snapshot;
  REQUIRE(snapshot);
  CHECK(snapshot->success);
  CHECK(text_of(snapshot->families->families.at(0)) == "windows_os_time{target=\"a\"} 42\n");
  auto now = std::chrono::steady_clock::now();
  CHECK(Cache::fresh(*view.info, *snapshot, now));
  CHECK(Cache::fresh(*view.info, *snapshot, now + 29s));
  CHECK_FALSE(Cache::fresh(*view.info, *snapshot, now + 31s));  // 3 missed intervals

  cache.record_failure("a", "os", "timeout", "deadline exceeded", 2.0);
  view = cache.view("a");
  auto failed = view.collectors[0].snapshot;
  CHECK_FALSE(failed->success);
  CHECK(failed->families == snapshot->families);  // shared, not copied
  CHECK(failed->last_success_unix == snapshot->last_success_unix);
  CHECK(failed->error_kind == "timeout");
  CHECK(view.collectors[0].errors.by_kind.at("timeout") == 1);
  // The reader's old snapshot is immutable and still intact.
  CHECK(snapshot->success);
}

TEST_CASE("set_targets keeps snapshots of kept targets and drops removed ones") {
  Cache cache;
  cache.set_targets({target("a"), target("b")});
  cache.record_success("a", "cpu", one_family(1), 0.1);
  cache.record_success("b", "cpu", one_family(2), 0.1);
  auto a = target("a");
  a.collectors = {"cpu"};
  cache.set_targets({a, target("c")});
  CHECK(cache.view("b").info == nullptr);
  auto view = cache.view("a");
  REQUIRE(view.collectors.size() == 1);
  CHECK(view.collectors[0].snapshot);
  CHECK(cache.view_all().size() == 2);
  // A poll finishing for a removed target is ignored.
  cache.record_success("b", "cpu", one_family(3), 0.1);
  CHECK(cache.view("b").info == nullptr);
}

TEST_CASE("a never-successful collector is not fresh") {
  Cache cache;
  cache.set_targets({target("a")});
  cache.record_failure("a", "os", "auth", "401", 0.1);
  auto view = cache.view("a");
  CHECK_FALSE(
      Cache::fresh(*view.info, *view.collectors[0].snapshot, std::chrono::steady_clock::now()));
  CHECK(view.collectors[0].snapshot->families == nullptr);
}

TEST_CASE("a replaced snapshot is freed once no reader holds it") {
  Cache cache;
  cache.set_targets({target("a")});
  cache.record_success("a", "os", one_family(1), 0.1);
  std::weak_ptr<const CollectorSnapshot> first = cache.view("a").collectors[0].snapshot;
  auto reader = cache.view("a").collectors[0].snapshot;  // a scrape in progress
  cache.record_success("a", "os", one_family(2), 0.1);
  CHECK_FALSE(first.expired());  // the reader's copy stays valid
  CHECK(text_of(reader->families->families.at(0)) == "windows_os_time{target=\"a\"} 1\n");
  reader.reset();
  CHECK(first.expired());
  cache.record_failure("a", "os", "timeout", "deadline exceeded", 1.0);
  std::weak_ptr<const CollectorSnapshot> second = cache.view("a").collectors[0].snapshot;
  cache.record_failure("a", "os", "timeout", "deadline exceeded", 1.0);
  CHECK(second.expired());
  CHECK(text_of(cache.view("a").collectors[0].snapshot->families->families.at(0)) ==
        "windows_os_time{target=\"a\"} 2\n");
}

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a page shows the newest poll's data: the cached text is replaced, not appended") {
  Cache cache;
  cache.set_targets({target("a"), target("b")});
  cache.record_success("a", "os", one_family(1), 0.1);
  cache.record_success("b", "os", one_family(2), 0.1);
  auto now = std::chrono::steady_clock::now();
  std::string page = render_metrics_page(cache.view_all(), {}, now);
  CHECK(count(page, "windows_os_time{target=\"a\"} 1\n") == 1);
  CHECK(count(page, "windows_os_time{target=\"b\"} 2\n") == 1);
  CHECK(count(page, "# TYPE windows_os_time gauge") +
            count(page, "# TYPE windows_os_time untyped") ==
        1);

  cache.record_success("a", "os", one_family(3), 0.1);
  page = render_metrics_page(cache.view_all(), {}, now);
  CHECK(count(page, "windows_os_time{target=\"a\"} 3\n") == 1);
  CHECK(count(page, "windows_os_time{target=\"a\"} 1\n") == 0);
  CHECK(count(page, "windows_os_time{target=\"b\"} 2\n") == 1);

  // A failed poll keeps the last good text until it is stale.
  cache.record_failure("a", "os", "timeout", "slow", 1.0);
  page = render_metrics_page(cache.view_all(), {}, now);
  CHECK(count(page, "windows_os_time{target=\"a\"} 3\n") == 1);
  page = render_metrics_page(cache.view_all(), {}, now + 31s);
  CHECK(count(page, "windows_os_time{") == 0);

  // A removed target's text is gone from the next page.
  cache.record_success("a", "os", one_family(4), 0.1);
  cache.set_targets({target("a")});
  page = render_metrics_page(cache.view_all(), {}, std::chrono::steady_clock::now());
  CHECK(count(page, "windows_os_time{target=\"a\"} 4\n") == 1);
  CHECK(count(page, "target=\"b\"") == 0);
}

TEST_CASE("changed target labels re-label the kept text; /probe drops the target label") {
  Cache cache;
  cache.set_targets({target("a")});
  cache.record_success("a", "os", one_family(5), 0.1);
  auto relabelled = target("a");
  relabelled.labels = {{"site", "east"}};
  cache.set_targets({relabelled});
  auto view = cache.view("a");
  CHECK(text_of(view.collectors[0].snapshot->families->families.at(0)) ==
        "windows_os_time{target=\"a\",site=\"east\"} 5\n");
  auto now = std::chrono::steady_clock::now();
  std::string probe = render_probe_page(view, now);
  CHECK(count(probe, "windows_os_time{site=\"east\"} 5\n") == 1);
  // New polls render with the new labels too.
  cache.record_success("a", "os", one_family(6), 0.1);
  std::string page = render_metrics_page(cache.view_all(), {}, now);
  CHECK(count(page, "windows_os_time{target=\"a\",site=\"east\"} 6\n") == 1);
}

TEST_CASE("concurrent polls and scrapes: every page holds each target's series exactly once") {
  // Run under TSan in the sanitizer stage: publishing and reading race by design.
  constexpr int kTargets = 8;
  constexpr int kPolls = 300;
  constexpr int kScrapes = 60;
  Cache cache;
  std::vector<TargetInfo> targets;
  for (int i = 0; i < kTargets; ++i) targets.push_back(target("t" + std::to_string(i)));
  cache.set_targets(targets);
  for (const auto& info : targets) cache.record_success(info.name, "os", one_family(0), 0.1);

  std::atomic<bool> bad_page{false};
  std::latch start(4);
  std::vector<std::thread> threads;
  for (int poller = 0; poller < 2; ++poller) {
    threads.emplace_back([&, poller] {
      start.arrive_and_wait();
      for (int i = 0; i < kPolls; ++i) {
        const auto& name = targets[static_cast<std::size_t>((i + poller) % kTargets)].name;
        if (i % 10 == 9) {
          cache.record_failure(name, "os", "timeout", "slow", 1.0);
        } else {
          cache.record_success(name, "os", one_family(i), 0.1);
        }
      }
    });
  }
  for (int scraper = 0; scraper < 2; ++scraper) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kScrapes; ++i) {
        std::string page =
            render_metrics_page(cache.view_all(), {}, std::chrono::steady_clock::now());
        for (const auto& info : targets) {
          if (count(page, "windows_os_time{target=\"" + info.name + "\"}") != 1) bad_page = true;
        }
        if (count(page, "# HELP windows_os_time ") != 1) bad_page = true;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK_FALSE(bad_page.load());
}

TEST_CASE("single flight: callers arriving during a render share it; later callers render anew") {
  SingleFlight<std::string> flight;
  std::atomic<int> renders{0};
  std::atomic<bool> release{false};
  std::atomic<bool> rendering{false};
  auto slow = [&] {
    rendering = true;
    for (int i = 0; i < 20000 && !release; ++i) std::this_thread::sleep_for(1ms);
    return "page " + std::to_string(++renders);
  };
  std::shared_ptr<const std::string> leader_result;
  std::thread leader([&] { leader_result = flight.get(slow); });
  for (int i = 0; i < 20000 && !rendering; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(rendering.load());

  constexpr int kFollowers = 4;
  std::vector<std::shared_ptr<const std::string>> results(kFollowers);
  std::vector<std::thread> followers;
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&, i] { results[static_cast<std::size_t>(i)] = flight.get(slow); });
  }
  for (int i = 0; i < 20000 && flight.waiting() < kFollowers; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  CHECK(flight.waiting() == kFollowers);
  release = true;
  leader.join();
  for (auto& follower : followers) follower.join();
  CHECK(renders.load() == 1);
  REQUIRE(leader_result);
  CHECK(*leader_result == "page 1");
  for (const auto& result : results) CHECK(result == leader_result);  // the same page object

  auto later = flight.get(slow);
  CHECK(*later == "page 2");
  CHECK(renders.load() == 2);
}

TEST_CASE("single flight: a failed render is retried by a waiter, not shared") {
  SingleFlight<std::string> flight;
  std::atomic<bool> release{false};
  std::atomic<bool> rendering{false};
  std::thread leader([&] {
    try {
      flight.get([&]() -> std::string {
        rendering = true;
        for (int i = 0; i < 20000 && !release; ++i) std::this_thread::sleep_for(1ms);
        throw std::runtime_error("render failed");
      });
    } catch (const std::runtime_error&) {
    }
  });
  for (int i = 0; i < 20000 && !rendering; ++i) std::this_thread::sleep_for(1ms);
  std::shared_ptr<const std::string> result;
  std::thread follower([&] { result = flight.get([] { return std::string("retried"); }); });
  for (int i = 0; i < 20000 && flight.waiting() < 1; ++i) std::this_thread::sleep_for(1ms);
  CHECK(flight.waiting() == 1);  // the follower waits for the leader's render
  release = true;
  leader.join();
  follower.join();
  REQUIRE(result);
  CHECK(*result == "retried");
}

}  // namespace test_cache
