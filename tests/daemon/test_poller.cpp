// The Poller with fake sessions (no network): session reuse per pool, discard after a failed
// query, the per-poll bounds, cancellation, and many threads polling many targets at once
// (also run under TSan, scripts/test-all.sh); the rows of `refresh:` queries kept between
// polls (query_cache.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "collectors/definition.h"
#include "collectors/registry.h"
#include "poller.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_poller {

using namespace exporter;
using namespace std::chrono_literals;

namespace {

using Reply = winrm::Result<std::vector<winrm::Row>>;

std::vector<winrm::Row> rows_named(const std::string& name, int count) {
  std::vector<winrm::Row> rows;
  for (int i = 0; i < count; ++i) {
    winrm::Row row;
    row.add("Name", name);
    row.add("Index", std::to_string(i));
    rows.push_back(std::move(row));
  }
  return rows;
}

// Answers each enumerate() from a script shared by all sessions of one fake host (empty
// script: one row named after the host). Fails the test if two threads use it at once.
struct FakeHost {
  explicit FakeHost(std::string name_) : name(std::move(name_)) {}
  std::string name;
  std::mutex mutex;
  std::deque<std::function<Reply(const std::string& wql)>> script;
  std::atomic<int> calls{0};
  std::atomic<bool> overlap{false};

  Reply next(const std::string& wql) {
    calls++;
    std::function<Reply(const std::string&)> step;
    {
      std::lock_guard lock(mutex);
      if (!script.empty()) {
        step = std::move(script.front());
        script.pop_front();
      }
    }
    if (step) return step(wql);
    return rows_named(name, 1);
  }
};

class FakeSession final : public QuerySession {
 public:
  explicit FakeSession(FakeHost& host) : host_(host) {}
  Reply enumerate(std::string_view, std::string_view wql, winrm::Deadline) override {
    if (busy_.exchange(true)) host_.overlap = true;
    std::this_thread::yield();  // widen the window in which a second user would show
    auto reply = host_.next(std::string(wql));
    busy_ = false;
    return reply;
  }

 private:
  FakeHost& host_;
  std::atomic<bool> busy_{false};
};

SessionFactory factory_for(FakeHost& host) {
  return [&host] { return std::make_unique<FakeSession>(host); };
}

// One gauge sample per row of every query, labelled with the row's Name.
class FakeCollector final : public collectors::Collector {
 public:
  explicit FakeCollector(int queries = 1) {
    for (int i = 0; i < queries; ++i) queries_.push_back({"root/cimv2", "Q" + std::to_string(i)});
  }
  const std::string& name() const override { return name_; }
  const std::vector<collectors::Query>& queries() const override { return queries_; }
  std::expected<collectors::Families, std::string> transform(
      const std::vector<std::vector<winrm::Row>>& rows) const override {
    if (fail_transform) return std::unexpected(std::string("bad data"));
    collectors::MetricFamily family{"fake_rows", "Rows.", collectors::MetricType::kGauge, {}, {}};
    for (const auto& query_rows : rows) {
      for (const auto& row : query_rows) {
        family.add({{"name", row.string("Name").value_or("")}}, 1);
      }
    }
    return collectors::Families{std::move(family)};
  }
  bool fail_transform = false;
  void set_refresh(std::size_t query, std::chrono::milliseconds refresh) {
    queries_.at(query).refresh = refresh;
  }

 private:
  std::string name_ = "fake";
  std::vector<collectors::Query> queries_;
};

winrm::Deadline in_10s() { return winrm::Clock::now() + 10s; }

Reply error_reply(winrm::ErrorKind kind, std::string message) {
  return std::unexpected(winrm::Error{kind, std::move(message)});
}

}  // namespace

TEST_CASE("a pool reuses its sessions across polls; pools do not share sessions") {
  FakeHost a("a");
  FakeHost b("b");
  SessionPool pool_a(factory_for(a), 1);
  SessionPool pool_b(factory_for(b), 1);
  Poller poller;
  FakeCollector collector(2);
  for (int i = 0; i < 5; ++i) {
    auto result = poller.poll(pool_a, collector, 100, in_10s());
    REQUIRE(result.has_value());
    REQUIRE(result->size() == 1);
    REQUIRE(result->front().samples.size() == 2);  // one row from each query
    CHECK(result->front().label(result->front().samples[0], "name") == "a");
  }
  auto result = poller.poll(pool_b, collector, 100, in_10s());
  REQUIRE(result.has_value());
  CHECK(result->front().label(result->front().samples[0], "name") == "b");
  CHECK(pool_a.created() == 1);
  CHECK(pool_a.idle() == 1);
  CHECK(pool_b.created() == 1);
  CHECK(a.calls == 10);
  CHECK(b.calls == 2);
}

TEST_CASE("a pool keeps `keep` idle sessions: the extra one of a poll beside a slow one closes") {
  FakeHost host("h");
  std::atomic<int> alive{0};
  struct Counted final : public QuerySession {
    Counted(FakeHost& host, std::atomic<int>& alive) : session(host), alive(alive) { ++alive; }
    ~Counted() override { --alive; }
    Reply enumerate(std::string_view ns, std::string_view wql, winrm::Deadline d) override {
      return session.enumerate(ns, wql, d);
    }
    FakeSession session;
    std::atomic<int>& alive;
  };
  SessionPool pool([&] { return std::make_unique<Counted>(host, alive); }, 1);
  // A slow poll holds the kept session; the target's next poll opens a second one.
  auto slow = pool.acquire();
  Poller poller;
  FakeCollector collector;
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created() == 2);
  CHECK(pool.idle() == 1);  // the second session, idle
  CHECK(alive == 2);
  pool.release(std::move(slow));  // the slow poll ends: one session too many
  CHECK(pool.idle() == 1);
  CHECK(pool.closed() == 1);
  CHECK(alive == 1);  // closed, not kept
  // Steady state: later polls reuse the one kept session.
  for (int i = 0; i < 3; ++i) REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created() == 2);
  CHECK(alive == 1);
  // A reload to per_target_concurrency 2 keeps two; back to 1 closes the surplus idle one.
  auto a = pool.acquire();
  auto b = pool.acquire();
  pool.configure(2, 0ms);
  pool.release(std::move(a));
  pool.release(std::move(b));
  CHECK(pool.idle() == 2);
  pool.configure(1, 0ms);
  CHECK(pool.idle() == 1);
  CHECK(pool.closed() == 2);
  CHECK(alive == 1);
}

TEST_CASE("an extra idle session lingers for `linger` within the exporter-wide budget") {
  FakeHost host("h");
  auto budget = std::make_shared<LingerBudget>(1);
  SessionPool a(factory_for(host), 1, 300ms, budget);
  SessionPool b(factory_for(host), 1, 300ms, budget);
  // Each pool: a slow poll's session and its overtaker's, both released.
  auto a1 = a.acquire();
  auto a2 = a.acquire();
  auto b1 = b.acquire();
  auto b2 = b.acquire();
  a.release(std::move(a1));
  a.release(std::move(a2));  // lingers: the budget's one unit
  b.release(std::move(b1));
  b.release(std::move(b2));  // budget spent: closed at once
  CHECK(a.idle() == 2);
  CHECK(b.idle() == 1);
  CHECK(b.closed() == 1);
  CHECK(budget->used == 1);
  // The next slow poll of the same stall reuses the lingering session: no new connection.
  auto again1 = a.acquire();
  auto again2 = a.acquire();
  CHECK(a.created() == 2);
  CHECK(budget->used == 0);
  a.release(std::move(again1));
  a.release(std::move(again2));
  CHECK(budget->used == 1);
  // Idle for longer than `linger`: the next use of the pool closes it and frees the unit.
  std::this_thread::sleep_for(350ms);
  auto next = a.acquire();
  CHECK(a.idle() == 0);
  CHECK(a.closed() == 1);
  CHECK(budget->used == 0);
  a.release(std::move(next));
  CHECK(a.idle() == 1);
  CHECK(a.created() == 2);
}

TEST_CASE("a failed query drops its session; a WS-Man fault keeps it") {
  FakeHost host("h");
  SessionPool pool(factory_for(host), 1);
  Poller poller;
  FakeCollector collector(2);

  SUBCASE("transport error: dropped, host backs off") {
    host.script.push_back([](const std::string&) {
      return error_reply(winrm::ErrorKind::kTransport, "connection reset");
    });
    auto result = poller.poll(pool, collector, 100, in_10s());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == "transport");
    CHECK(result.error().outcome == PollOutcome::kUnreachable);
    CHECK_FALSE(result.error().cancelled);
    REQUIRE(result.error().error.has_value());
    CHECK(result.error().message.find("connection reset") != std::string::npos);
    CHECK(host.calls == 1);  // the second query is not sent
    CHECK(pool.idle() == 0);
    REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
    CHECK(pool.created() == 2);  // connected afresh
  }
  SUBCASE("quota fault: kept, quota outcome") {
    host.script.push_back([](const std::string&) -> Reply {
      winrm::Fault fault;
      fault.wsman_code = 2150859174;  // ERROR_WSMAN_QUOTA_MAX_OPERATIONS
      return std::unexpected(
          winrm::Error{winrm::ErrorKind::kWsmanFault, "quota", 500, std::move(fault)});
    });
    auto result = poller.poll(pool, collector, 100, in_10s());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == "quota_exceeded");
    CHECK(result.error().outcome == PollOutcome::kQuota);
    CHECK(pool.idle() == 1);
    REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
    CHECK(pool.created() == 1);
  }
  SUBCASE("a limit of the session: parse failure of this collector, the limit kept") {
    host.script.push_back([](const std::string&) {
      return Reply(winrm::make_limit_error(winrm::ErrorKind::kParse, winrm::Limit::kRows,
                                           "poll exceeded limits.max_rows_per_poll"));
    });
    auto result = poller.poll(pool, collector, 100, in_10s());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == "parse");
    CHECK(result.error().outcome == PollOutcome::kFailed);
    REQUIRE(result.error().error.has_value());
    CHECK(result.error().error->limit == winrm::Limit::kRows);
  }
  SUBCASE("timeout: unreachable") {
    host.script.push_back(
        [](const std::string&) { return error_reply(winrm::ErrorKind::kTimeout, "deadline"); });
    auto result = poller.poll(pool, collector, 100, in_10s());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == "timeout");
    CHECK(result.error().outcome == PollOutcome::kUnreachable);
    CHECK(pool.idle() == 0);
  }
}

TEST_CASE("a pool names why it made each session: first, busy, error, reload") {
  FakeHost host("h");
  Poller poller;
  FakeCollector collector;
  SessionPool pool(factory_for(host), 1);
  // A host down at start-up: the sessions its failed polls drop are all still its first.
  for (int i = 0; i < 2; ++i) {
    host.script.push_back([](const std::string&) {
      return error_reply(winrm::ErrorKind::kTransport, "connection refused");
    });
    REQUIRE_FALSE(poller.poll(pool, collector, 100, in_10s()).has_value());
  }
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created(ConnectCause::kFirst) == 3);
  CHECK(pool.created(ConnectCause::kError) == 0);
  // Steady state: no new session.
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created() == 3);
  // A slow poll holds the kept session: the next poll's extra session is `busy`.
  auto slow = pool.acquire();
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created(ConnectCause::kBusy) == 1);
  pool.release(std::move(slow));
  // A failed query drops the session; its replacement is `error`, a WS-Man fault keeps it.
  host.script.push_back(
      [](const std::string&) { return error_reply(winrm::ErrorKind::kTimeout, "deadline"); });
  REQUIRE_FALSE(poller.poll(pool, collector, 100, in_10s()).has_value());
  host.script.push_back([](const std::string&) -> Reply {
    return std::unexpected(winrm::Error{winrm::ErrorKind::kWsmanFault, "fault", 500, {}});
  });
  REQUIRE_FALSE(poller.poll(pool, collector, 100, in_10s()).has_value());
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
  CHECK(pool.created(ConnectCause::kError) == 1);
  CHECK(pool.created(ConnectCause::kOther) == 0);
  CHECK(pool.created() == 5);
  // A pool rebuilt by a reload: its first session is `reload`.
  SessionPool rebuilt(factory_for(host), 1, 0ms, nullptr, ConnectCause::kReload);
  REQUIRE(poller.poll(rebuilt, collector, 100, in_10s()).has_value());
  CHECK(rebuilt.created(ConnectCause::kReload) == 1);
  CHECK(rebuilt.created(ConnectCause::kFirst) == 0);
}

TEST_CASE("per-poll bounds: series limit, a transform past the deadline, bad data") {
  FakeHost host("h");
  SessionPool pool(factory_for(host), 1);
  Poller poller;
  FakeCollector collector;
  host.script.push_back([](const std::string&) { return Reply(rows_named("x", 50)); });
  auto over = poller.poll(pool, collector, 49, in_10s());
  REQUIRE_FALSE(over.has_value());
  CHECK(over.error().kind == "series_limit");
  CHECK(over.error().message == "50 series exceed limits.max_series_per_collector (49)");
  CHECK(over.error().outcome == PollOutcome::kFailed);
  CHECK(pool.idle() == 1);  // the host answered fine: its session stays

  host.script.push_back([](const std::string&) { return Reply(rows_named("x", 50)); });
  auto exact = poller.poll(pool, collector, 50, in_10s());
  REQUIRE(exact.has_value());
  CHECK(exact->front().samples.size() == 50);

  // The fake session ignores deadlines; the poller checks the deadline after the transform.
  auto late = poller.poll(pool, collector, 50, winrm::Clock::now() - 1s);
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().kind == "timeout");
  CHECK(late.error().message == "collector transform ended after the poll deadline");

  collector.fail_transform = true;
  auto bad = poller.poll(pool, collector, 50, in_10s());
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().kind == "collector");
  CHECK(bad.error().message == "bad data");
  CHECK(pool.created() == 1);
}

TEST_CASE("cancel: no poll starts, a poll stops between queries, resume undoes it") {
  FakeHost host("h");
  SessionPool pool(factory_for(host), 1);
  Poller poller;
  FakeCollector collector(3);
  CHECK_FALSE(poller.cancelled());
  CHECK_FALSE(poller.cancel_flag()->load());

  poller.cancel();
  CHECK(poller.cancel_flag()->load());  // what every transport of the process watches
  auto refused = poller.poll(pool, collector, 100, in_10s());
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().cancelled);
  CHECK(refused.error().kind == "cancelled");  // its own kind, not "timeout"
  CHECK(pool.created() == 0);
  CHECK(host.calls == 0);

  poller.resume();
  host.script.push_back([&](const std::string&) {
    poller.cancel();  // SIGTERM while the first query runs
    return Reply(rows_named("h", 1));
  });
  auto stopped = poller.poll(pool, collector, 100, in_10s());
  REQUIRE_FALSE(stopped.has_value());
  CHECK(stopped.error().cancelled);
  CHECK(host.calls == 1);
  CHECK(pool.idle() == 1);  // the session's connection is idle and usable

  // The transport's cancellation error (winrm::Error::cancelled) is a cancelled poll too.
  poller.resume();
  host.script.push_back([](const std::string&) -> Reply {
    winrm::Error error{winrm::ErrorKind::kCancelled, "cancelled (shutting down)"};
    error.cancelled = true;
    return std::unexpected(std::move(error));
  });
  auto aborted = poller.poll(pool, collector, 100, in_10s());
  REQUIRE_FALSE(aborted.has_value());
  CHECK(aborted.error().cancelled);
  CHECK(aborted.error().kind == "cancelled");
  CHECK(pool.idle() == 0);  // its connection was cut mid-request: dropped
  REQUIRE(poller.poll(pool, collector, 100, in_10s()).has_value());
}

TEST_CASE("8 threads polling 4 targets: no session used twice at once, results not mixed") {
  constexpr int kThreads = 8;
  constexpr int kTargets = 4;
  constexpr int kPollsPerThread = 300;
  std::vector<std::unique_ptr<FakeHost>> hosts;
  std::vector<std::unique_ptr<SessionPool>> pools;
  for (int t = 0; t < kTargets; ++t) {
    hosts.push_back(std::make_unique<FakeHost>("target" + std::to_string(t)));
    pools.push_back(std::make_unique<SessionPool>(factory_for(*hosts.back()), kThreads));
  }
  // Every 7th query of target 0 fails, so sessions are also dropped and re-created.
  std::atomic<int> target0_queries{0};
  Poller poller;
  FakeCollector collector(2);
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> mixed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < kPollsPerThread; ++n) {
        const int t = (i + n) % kTargets;
        if (t == 0 && target0_queries++ % 7 == 6) {
          std::lock_guard lock(hosts[0]->mutex);
          hosts[0]->script.push_back([](const std::string&) {
            return error_reply(winrm::ErrorKind::kTransport, "reset");
          });
        }
        auto result = poller.poll(*pools[t], collector, 100, in_10s());
        if (!result) {
          failed++;
          continue;
        }
        ok++;
        for (const auto& sample : result->front().samples) {
          if (result->front().label(sample, "name") != hosts[t]->name) mixed++;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(ok + failed == kThreads * kPollsPerThread);
  CHECK(failed > 0);
  CHECK(mixed == 0);
  for (int t = 0; t < kTargets; ++t) {
    CAPTURE(t);
    CHECK_FALSE(hosts[t]->overlap.load());
    CHECK(pools[t]->created() >= 1);
    CHECK(pools[t]->idle() ==
          (t == 0 ? pools[t]->created() - static_cast<std::size_t>(failed) : pools[t]->created()));
    CHECK(pools[t]->idle() <= static_cast<std::size_t>(kThreads));  // one per parallel slot
  }
}

// --- refresh: rows of static queries kept between polls (query_cache.h) ---------------------

namespace {

// A row for every `SELECT a, b FROM ...` with each property set to "2" (a number, a known
// NetConnectionStatus), names as text, and IPAddress an array; MACAddress is nil.
std::vector<winrm::Row> rows_for(const std::string& wql) {
  const auto select = wql.find("SELECT ") + 7;
  const auto from = wql.find(" FROM ");
  std::vector<winrm::Row> rows;
  for (const std::string name : {"eth 0", "eth#1"}) {
    winrm::Row row;
    std::string list = wql.substr(select, from - select);
    std::size_t start = 0;
    while (start < list.size()) {
      std::size_t comma = std::min(list.find(',', start), list.size());
      std::string property = list.substr(start, comma - start);
      property.erase(0, property.find_first_not_of(" \n"));
      property.erase(property.find_last_not_of(" \n") + 1);
      start = comma + 1;
      if (property == "Name" || property == "Description" || property == "NetConnectionID") {
        row.add(property, name);
      } else if (property == "IPAddress") {
        row.add(property, "10.0.0." + std::to_string(name.size()));
        row.add(property, "fe80::1");
        row.add(property, "2001:db8::" + std::to_string(name.size()));
      } else if (property == "MACAddress") {
        row.add_null(property);
      } else {
        row.add(property, "2", winrm::Property::Type::kPlain);
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

bool same_families(const collectors::Families& a, const collectors::Families& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].samples.size() != b[i].samples.size()) return false;
    for (std::size_t s = 0; s < a[i].samples.size(); ++s) {
      if (a[i].label_pairs(a[i].samples[s]) != b[i].label_pairs(b[i].samples[s]) ||
          a[i].samples[s].value != b[i].samples[s].value) {
        return false;
      }
    }
  }
  return true;
}

std::size_t sample_count(const collectors::Families& families) {
  std::size_t n = 0;
  for (const auto& family : families) n += family.samples.size();
  return n;
}

}  // namespace

TEST_CASE("refresh: a kept copy rebuilds the same rows (arrays, nil, types, class name)") {
  winrm::Row row("Win32_Thing");
  row.add("Name", "a");
  row.add("IPAddress", "10.0.0.1");
  row.add("IPAddress", "fe80::1");
  row.add_null("MACAddress");
  row.add("InstallDate", "2024-01-02T03:04:05Z", winrm::Property::Type::kDatetime);
  row.add("Empty", "");
  std::vector<winrm::Row> rows{row, winrm::Row()};
  const auto copy = deserialize_rows(serialize_rows(rows));
  REQUIRE(copy.size() == 2);
  CHECK(copy[0].class_name() == "Win32_Thing");
  REQUIRE(copy[0].properties().size() == row.properties().size());
  for (std::size_t i = 0; i < row.properties().size(); ++i) {
    const auto& want = row.properties()[i];
    const auto& got = copy[0].properties()[i];
    CAPTURE(want.name);
    CHECK(got.name == want.name);
    CHECK(got.type == want.type);
    CHECK(got.is_null == want.is_null);
    CHECK(got.values == want.values);
  }
  CHECK(copy[0].find("ipaddress")->values.size() == 2);  // the index works on the copy
  CHECK(copy[0].unix_time("InstallDate") == row.unix_time("InstallDate"));
  CHECK(copy[1].properties().empty());
  CHECK(deserialize_rows(serialize_rows({})).empty());
}

TEST_CASE("refresh: QueryCache hits until refresh has passed; a changed query never matches") {
  auto stats = std::make_shared<QueryStats>();
  auto cache = std::make_unique<QueryCache>(stats);
  collectors::Query query{"root/cimv2", "SELECT A FROM B", std::chrono::minutes(15)};
  const auto t0 = QueryCache::Clock::now();
  CHECK_FALSE(cache->lookup("c", 0, query, t0));
  cache->store("c", 0, query, rows_named("x", 2), t0);
  CHECK(cache->entries() == 1);
  CHECK(stats->entries() == 1);
  CHECK(stats->bytes() == static_cast<std::int64_t>(cache->bytes()));
  auto hit = cache->lookup("c", 0, query, t0 + 15min - 1ms);
  REQUIRE(hit);
  REQUIRE(hit->size() == 2);
  CHECK((*hit)[1].string("Index") == "1");
  CHECK_FALSE(cache->lookup("c", 0, query, t0 + 15min));  // refresh passed: read again
  CHECK_FALSE(cache->lookup("c", 1, query, t0));          // another query of the collector
  CHECK_FALSE(cache->lookup("d", 0, query, t0));          // another collector
  collectors::Query changed = query;
  changed.wql = "SELECT A FROM C";
  CHECK_FALSE(cache->lookup("c", 0, changed, t0));
  collectors::Query every_poll = query;
  every_poll.refresh = 0ms;
  CHECK_FALSE(cache->lookup("c", 0, every_poll, t0));
  cache->store("c", 0, every_poll, rows_named("y", 1), t0);  // not kept: no refresh
  CHECK(cache->lookup("c", 0, query, t0)->size() == 2);
  cache->store("c", 0, query, rows_named("z", 1), t0 + 1s);  // a re-read replaces the entry
  CHECK(cache->entries() == 1);
  CHECK(cache->lookup("c", 0, query, t0 + 1s)->size() == 1);

  // retain: entries of collectors no longer polled, or of changed queries, go.
  cache->store("d", 0, query, rows_named("d", 1), t0);
  REQUIRE(cache->entries() == 2);
  const auto parsed = collectors::parse_collector_definition_text(
      "name: c\nqueries:\n  - wql: SELECT A FROM B\n    refresh: 15m\n"
      "    metrics: [{name: a, type: gauge, help: h, value: A}]\n");
  REQUIRE(parsed);
  cache->retain({{"c", *parsed}});
  CHECK(cache->entries() == 1);
  CHECK(cache->lookup("c", 0, query, t0 + 1s));
  const auto edited = collectors::parse_collector_definition_text(
      "name: c\nqueries:\n  - wql: SELECT A FROM B WHERE A > 1\n    refresh: 15m\n"
      "    metrics: [{name: a, type: gauge, help: h, value: A}]\n");
  REQUIRE(edited);
  cache->retain({{"c", *edited}});
  CHECK(cache->entries() == 0);

  cache->store("c", 0, query, rows_named("x", 3), t0);
  CHECK(stats->entries() == 1);
  cache->clear();  // the target was unreachable
  CHECK(cache->entries() == 0);
  CHECK_FALSE(cache->lookup("c", 0, query, t0));
  cache->store("c", 0, query, rows_named("x", 3), t0);
  cache.reset();  // the target left the inventory
  CHECK(stats->entries() == 0);
  CHECK(stats->bytes() == 0);
}

TEST_CASE("refresh: a poll reuses kept rows, sends the rest, and the output is unchanged") {
  // The built-in net collector: its address query (refresh: 5m) has arrays and `each`
  // labels, the others are sent at every poll.
  const auto net = collectors::builtin_collector_map().at("net");
  REQUIRE(net->queries().size() == 3);
  REQUIRE(net->queries()[2].refresh.count() > 0);
  FakeHost host("h");
  std::vector<std::string> sent;
  for (int i = 0; i < 12; ++i) {
    host.script.push_back([&sent](const std::string& wql) -> Reply {
      sent.push_back(wql);
      return rows_for(wql);
    });
  }
  SessionPool pool(factory_for(host), 1);
  Poller poller;
  QueryStats stats;
  QueryCache cache;
  const QueryReuse reuse{&cache, &stats};
  auto fresh = poller.poll(pool, *net, 10000, in_10s(), reuse);
  REQUIRE(fresh);
  CHECK(host.calls == 3);
  CHECK(sample_count(*fresh) > 20);
  for (int poll = 0; poll < 3; ++poll) {
    auto again = poller.poll(pool, *net, 10000, in_10s(), reuse);
    REQUIRE(again);
    CHECK(same_families(*fresh, *again));
  }
  CHECK(host.calls == 3 + 3 * 2);
  CHECK(std::count(sent.begin(), sent.end(), net->queries()[2].wql) == 1);
  CHECK(stats.sent("net") == 9);
  CHECK(stats.reused("net") == 3);

  // Without a cache (query_refresh: false) every query goes out, with the same output.
  auto plain = poller.poll(pool, *net, 10000, in_10s(), QueryReuse{nullptr, &stats});
  REQUIRE(plain);
  CHECK(same_families(*fresh, *plain));
  CHECK(host.calls == 12);
  CHECK(stats.reused("net") == 3);
}

TEST_CASE("refresh: a poll whose rows are all kept takes no session; past refresh it re-reads") {
  FakeHost host("h");
  FakeCollector collector(1);
  collector.set_refresh(0, std::chrono::hours(1));
  SessionPool pool(factory_for(host), 0);  // keeps no idle session: each poll makes one
  Poller poller;
  QueryCache cache;
  const QueryReuse reuse{&cache, nullptr};
  REQUIRE(poller.poll(pool, collector, 100, in_10s(), reuse));
  CHECK(pool.created() == 1);
  for (int i = 0; i < 3; ++i) {
    auto result = poller.poll(pool, collector, 100, in_10s(), reuse);
    REQUIRE(result);
    CHECK(result->at(0).labels(result->at(0).samples.at(0)).at(0).second == "h");
  }
  CHECK(host.calls == 1);
  CHECK(pool.created() == 1);

  // A failed read keeps nothing: the next poll sends the query again.
  collector.set_refresh(0, std::chrono::milliseconds(1));
  std::this_thread::sleep_for(5ms);  // past refresh (no timing is asserted)
  host.script.push_back([](const std::string&) -> Reply {
    return error_reply(winrm::ErrorKind::kTransport, "connection reset");
  });
  auto failed = poller.poll(pool, collector, 100, in_10s(), reuse);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().outcome == PollOutcome::kUnreachable);
  CHECK(host.calls == 2);
  REQUIRE(poller.poll(pool, collector, 100, in_10s(), reuse));
  CHECK(host.calls == 3);
}

TEST_CASE("refresh: kept rows are dropped when the host did not answer, not on a WS-Man fault") {
  const auto failure_of = [](winrm::Error error) {
    const PollOutcome outcome = outcome_of(error);
    return PollFailure{error_kind_label(error), error.describe(), outcome, std::move(error), false};
  };
  for (auto kind : {winrm::ErrorKind::kTransport, winrm::ErrorKind::kTls, winrm::ErrorKind::kHttp,
                    winrm::ErrorKind::kAuth, winrm::ErrorKind::kTimeout}) {
    CAPTURE(static_cast<int>(kind));
    CHECK(drops_kept_rows(failure_of(winrm::Error{kind, "no answer"})));
  }
  CHECK_FALSE(drops_kept_rows(failure_of(winrm::Error{winrm::ErrorKind::kParse, "bad xml"})));
  // The WMI stall: the host answers w:TimedOut, which backs the target off but keeps its rows.
  winrm::Error stall{winrm::ErrorKind::kWsmanFault, "timed out"};
  stall.fault = winrm::Fault{};
  stall.fault->subcode = "TimedOut";
  const PollFailure stalled = failure_of(stall);
  CHECK(stalled.outcome == PollOutcome::kUnreachable);
  CHECK_FALSE(drops_kept_rows(stalled));
  PollFailure cancelled = failure_of(winrm::Error{winrm::ErrorKind::kTransport, "cancelled"});
  cancelled.cancelled = true;
  CHECK_FALSE(drops_kept_rows(cancelled));
  CHECK_FALSE(drops_kept_rows(
      PollFailure{"collector", "bad data", PollOutcome::kFailed, std::nullopt, false}));
}

}  // namespace test_poller
