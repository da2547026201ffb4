#include <doctest/doctest.h>

#include "cache.h"

using namespace exporter;
using namespace std::chrono_literals;

namespace {

collectors::Families one_family(double value) {
  collectors::MetricFamily family;
  family.name = "windows_os_time";
  family.help = "OS time";
  family.samples.push_back({{}, value});
  return {family};
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
  CHECK(snapshot->families->at(0).samples.at(0).value == 42);
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
  CHECK(reader->families->at(0).samples.at(0).value == 1);
  reader.reset();
  CHECK(first.expired());
  cache.record_failure("a", "os", "timeout", "deadline exceeded", 1.0);
  std::weak_ptr<const CollectorSnapshot> second = cache.view("a").collectors[0].snapshot;
  cache.record_failure("a", "os", "timeout", "deadline exceeded", 1.0);
  CHECK(second.expired());
  CHECK(cache.view("a").collectors[0].snapshot->families->at(0).samples.at(0).value == 2);
}
