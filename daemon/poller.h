// One poll of one collector on one target: a session from the target's pool, every query of
// the collector, the transform into metric families and the per-poll bounds. The App records
// the outcome (cache, logs, back-off). Sessions come through a factory, so unit tests drive a
// Poller with fake sessions and no network (tests/daemon/test_poller.cpp).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth_factory.h"
#include "collectors/collector.h"
#include "connect_cause.h"
#include "query_cache.h"
#include "scheduler.h"
#include "winrm/session.h"
#include "winrm/task.h"

namespace exporter {

// What a poll needs of a WinRM session: winrm::Session in production.
class QuerySession {
 public:
  virtual ~QuerySession() = default;
  virtual winrm::Result<std::vector<winrm::Row>> enumerate(std::string_view wmi_namespace,
                                                           std::string_view wql,
                                                           winrm::Deadline deadline) = 0;
  // The same without holding a thread while requests are in flight (winrm/task.h). The
  // default runs enumerate() as one blocking step (test fakes).
  virtual winrm::Task<winrm::Result<std::vector<winrm::Row>>> enumerate_async(
      std::string wmi_namespace, std::string wql, winrm::Deadline deadline) {
    co_return enumerate(wmi_namespace, wql, deadline);
  }
  // Set by SessionPool on a new session: why it was made (the cause its connections count
  // under, ConnectCauses). Test fakes ignore it.
  virtual void set_connect_cause(ConnectCause cause) { (void)cause; }
};

using SessionFactory = std::function<std::unique_ptr<QuerySession>()>;

// Real sessions: one Auth per session (Negotiate binds it to the connection). Each counts the
// connections its transport opens in `causes` (null: not counted): the first under the
// cause the pool gave the session, every later one as ConnectCause::kClosed.
SessionFactory winrm_session_factory(winrm::SessionOptions options, AuthMaker make_auth,
                                     std::shared_ptr<winrm::TransportCounters> counters,
                                     std::shared_ptr<ConnectCauses> causes = nullptr);

// Exporter-wide bound on the idle sessions that pools keep beyond their `keep` (below).
struct LingerBudget {
  explicit LingerBudget(std::size_t max_sessions) : max(max_sessions) {}
  std::atomic<std::size_t> max;
  std::atomic<std::size_t> used{0};
  bool take() {
    if (used.fetch_add(1) < max.load()) return true;
    used.fetch_sub(1);
    return false;
  }
  void give(std::size_t n) { used.fetch_sub(n); }
};

// Sessions of one target, created lazily: one per poll in flight. Up to `keep` idle ones
// (per_target_concurrency: one per parallel slot) stay alive for the next polls. A session
// released beyond that (the extra one a poll opened beside a slow poll, Scheduler) lingers for
// `linger` (the target's interval: the other slow polls of the same WMI stall reuse it instead
// of a new TLS handshake each), within the exporter-wide budget, then closes; so between stalls
// a fleet keeps `keep` connections per host, not its peak.
// Every session it makes gets a ConnectCause: `first` (kFirst, or kReload for a pool rebuilt
// by a reload) until one came back, kError when it replaces one dropped after a failed query
// (discard), kBusy when others are out (a slow poll), else kOther.
class SessionPool {
 public:
  using Clock = std::chrono::steady_clock;
  SessionPool(SessionFactory make_session, std::size_t keep,
              std::chrono::milliseconds linger = std::chrono::milliseconds(0),
              std::shared_ptr<LingerBudget> budget = nullptr,
              ConnectCause first = ConnectCause::kFirst)
      : make_session_(std::move(make_session)),
        keep_(keep),
        linger_(linger),
        budget_(std::move(budget)),
        first_cause_(first) {}
  ~SessionPool();
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;
  std::unique_ptr<QuerySession> acquire();
  void release(std::unique_ptr<QuerySession> session);
  // A session not fit for reuse (its query failed): closed; the next one made replaces it.
  void discard(std::unique_ptr<QuerySession> session);
  // A reload may change per_target_concurrency or the interval; surplus idle sessions close.
  void configure(std::size_t keep, std::chrono::milliseconds linger);
  std::size_t idle() const;
  std::size_t created() const { return created_.load(); }
  std::size_t closed() const { return closed_.load(); }  // idle beyond `keep`, closed
  // Sessions made for `cause` (tests; the connections they open count in ConnectCauses).
  std::size_t created(ConnectCause cause) const;

 private:
  struct Idle {
    std::unique_ptr<QuerySession> session;
    Clock::time_point since;
  };
  // Under lock: moves lingering sessions idle for longer than linger_ to `out`.
  void expire_locked(Clock::time_point now, std::vector<Idle>& out);

  SessionFactory make_session_;
  mutable std::mutex mutex_;
  std::size_t keep_;
  std::chrono::milliseconds linger_;
  std::shared_ptr<LingerBudget> budget_;
  std::vector<Idle> idle_;     // oldest first; acquire takes the newest
  std::size_t lingering_ = 0;  // = max(0, idle_.size() - keep_): budget units held
  std::atomic<std::size_t> created_{0};
  std::atomic<std::size_t> closed_{0};
  ConnectCause first_cause_;
  std::size_t out_ = 0;      // sessions acquired and not yet released or discarded
  std::size_t dropped_ = 0;  // discarded sessions not yet replaced
  bool released_ = false;    // a session came back: the target has been connected
  std::array<std::size_t, kConnectCauseCount> created_by_cause_{};
};

struct PollFailure {
  std::string kind;  // error class label: "timeout", "access_denied", "series_limit", ...
  std::string message;
  PollOutcome outcome = PollOutcome::kFailed;
  std::optional<winrm::Error> error;  // set when a query failed
  bool cancelled = false;             // ended by cancel(): shutdown, not the host's fault
};

using PollResult = std::expected<collectors::Families, PollFailure>;

// Where a poll finds and keeps the rows of `refresh:` queries, and counts its queries.
struct QueryReuse {
  QueryCache* cache = nullptr;  // null: every query is sent (query_refresh: false)
  QueryStats* stats = nullptr;  // null: not counted
};

class Poller {
 public:
  // The flag every session's transport checks (winrm::EndpointOptions::cancel).
  std::shared_ptr<const std::atomic<bool>> cancel_flag() const { return cancel_; }
  // Shutdown: polls in flight end within about a second (a Release still goes out on idle
  // connections), polls that start fail at once. resume() undoes it.
  void cancel() { cancel_->store(true); }
  void resume() { cancel_->store(false); }
  bool cancelled() const { return cancel_->load(std::memory_order_relaxed); }

  // Runs the collector's queries on one session of `pool` and transforms the rows. A
  // session whose query failed is dropped (the next poll connects afresh), except after a
  // WS-Man fault, which leaves the connection usable. Fails when the deadline passed
  // during the transform, or with more than max_series samples. A query with `refresh:`
  // takes its rows from reuse.cache while they are fresh enough, and leaves them there when
  // it is sent; a poll whose queries all come from the cache takes no session.
  PollResult poll(SessionPool& pool, const collectors::Collector& collector, std::size_t max_series,
                  winrm::Deadline deadline, QueryReuse reuse = {}) const;
  // The same as a coroutine: between requests it holds no thread, and every step (parse,
  // transform) runs on the awaiting chain's executor. pool, collector and reuse's objects
  // must outlive it.
  winrm::Task<PollResult> poll_async(SessionPool& pool, const collectors::Collector& collector,
                                     std::size_t max_series, winrm::Deadline deadline,
                                     QueryReuse reuse = {}) const;

 private:
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
};

// Resumes poll coroutines on the scheduler's workers (Scheduler::post).
class SchedulerExecutor final : public winrm::Executor {
 public:
  explicit SchedulerExecutor(Scheduler& scheduler) : scheduler_(scheduler) {}
  void post(std::coroutine_handle<> handle) override {
    scheduler_.post([handle] { handle.resume(); });
  }

 private:
  Scheduler& scheduler_;
};

// Whether a failed poll drops the target's kept `refresh:` rows: an unreachable host may be
// rebooting (no answer: transport, TLS, HTTP, authentication, timeout). A WS-Man fault means
// the host answered (the WMI Performance Adapter stall's TimedOut): the rows stay.
bool drops_kept_rows(const PollFailure& failure);

// Host-level failures back the whole target off; a fault about one query does not.
PollOutcome outcome_of(const winrm::Error& error);
// The error class label of a failed query: the fault class for WS-Man faults, else the kind.
std::string error_kind_label(const winrm::Error& error);

}  // namespace exporter
