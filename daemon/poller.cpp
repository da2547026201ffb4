#include "poller.h"

#include <chrono>

#include "collectors/poll_time.h"
#include "common/duration.h"

namespace exporter {

namespace {

class WinrmQuerySession final : public QuerySession {
 public:
  WinrmQuerySession(const winrm::SessionOptions& options, std::shared_ptr<winrm::Auth> auth,
                    std::shared_ptr<winrm::TransportCounters> counters,
                    std::shared_ptr<ConnectCauses> causes)
      : session_(options, std::move(auth), std::move(counters)), causes_(std::move(causes)) {}
  void set_connect_cause(ConnectCause cause) override { cause_ = cause; }
  winrm::Result<std::vector<winrm::Row>> enumerate(std::string_view wmi_namespace,
                                                   std::string_view wql,
                                                   winrm::Deadline deadline) override {
    return winrm::run_sync(enumerate_async(std::string(wmi_namespace), std::string(wql), deadline));
  }

  winrm::Task<winrm::Result<std::vector<winrm::Row>>> enumerate_async(
      std::string wmi_namespace, std::string wql, winrm::Deadline deadline) override {
    const double request = common::unix_seconds_now();
    // Sliding windows ({{now-15m}}) are filled in with the exporter's clock as the query goes.
    const bool stamp = collectors::wants_poll_time(wql);
    std::string sent = collectors::has_wql_placeholders(wql)
                           ? collectors::expand_wql_placeholders(wql, request)
                           : std::move(wql);
    auto rows =
        co_await session_.enumerate_async(std::move(wmi_namespace), std::move(sent), deadline);
    count_connections();
    // Host-clock rows carry the exporter's clock around the exchange (the clock collector).
    if (rows && stamp) collectors::stamp_poll_time(*rows, request, common::unix_seconds_now());
    co_return std::move(rows);
  }

 private:
  // The connection id moves by one per connection opened: the session's first connection
  // counts under its cause, every later one was a reopened (server-closed) connection.
  void count_connections() {
    if (!causes_) return;
    const std::uint64_t id = session_.connection_id();
    if (id <= seen_) return;
    std::uint64_t opened = id - seen_;
    if (seen_ == 0) {
      causes_->add(cause_, 1);
      --opened;
    }
    if (opened > 0) causes_->add(ConnectCause::kClosed, opened);
    seen_ = id;
  }

  winrm::Session session_;
  std::shared_ptr<ConnectCauses> causes_;
  ConnectCause cause_ = ConnectCause::kOther;
  std::uint64_t seen_ = 0;  // connection id after the last request
};

PollFailure failure(std::string kind, std::string message) {
  return PollFailure{std::move(kind), std::move(message), PollOutcome::kFailed, std::nullopt,
                     false};
}

PollFailure cancelled_failure(std::string message) {
  return PollFailure{"cancelled", std::move(message), PollOutcome::kFailed, std::nullopt, true};
}

}  // namespace

SessionFactory winrm_session_factory(winrm::SessionOptions options, AuthMaker make_auth,
                                     std::shared_ptr<winrm::TransportCounters> counters,
                                     std::shared_ptr<ConnectCauses> causes) {
  return [options = std::move(options), make_auth = std::move(make_auth),
          counters = std::move(counters),
          causes = std::move(causes)]() -> std::unique_ptr<QuerySession> {
    return std::make_unique<WinrmQuerySession>(options, make_auth(), counters, causes);
  };
}

SessionPool::~SessionPool() {
  if (budget_ && lingering_ > 0) budget_->give(lingering_);
}

void SessionPool::expire_locked(Clock::time_point now, std::vector<Idle>& out) {
  std::size_t expired = 0;
  while (expired < lingering_ && expired < idle_.size() && now - idle_[expired].since >= linger_) {
    ++expired;
  }
  if (expired == 0) return;
  for (std::size_t i = 0; i < expired; ++i) out.push_back(std::move(idle_[i]));
  idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(expired));
  lingering_ -= expired;
  if (budget_) budget_->give(expired);
}

std::unique_ptr<QuerySession> SessionPool::acquire() {
  std::vector<Idle> expired;  // closed outside the lock: closing a connection takes a moment
  ConnectCause cause = ConnectCause::kOther;
  {
    std::lock_guard lock(mutex_);
    expire_locked(Clock::now(), expired);
    closed_ += expired.size();
    ++out_;
    if (!idle_.empty()) {
      auto session = std::move(idle_.back().session);
      idle_.pop_back();
      if (lingering_ > 0) {
        --lingering_;
        if (budget_) budget_->give(1);
      }
      return session;
    }
    // Until a session came back (it connected), a new one is still the target's first: a
    // host down at start-up opens no connection with the sessions it fails.
    if (!released_ && out_ == 1) {
      cause = first_cause_;
      dropped_ = 0;
    } else if (dropped_ > 0) {
      --dropped_;
      cause = ConnectCause::kError;
    } else if (out_ > 1) {
      cause = ConnectCause::kBusy;
    }
    ++created_by_cause_[static_cast<int>(cause)];
    created_++;
  }
  expired.clear();
  auto session = make_session_();  // outside the lock: a session's set-up may take a while
  if (session) session->set_connect_cause(cause);
  return session;
}

void SessionPool::release(std::unique_ptr<QuerySession> session) {
  std::vector<Idle> expired;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    expire_locked(now, expired);
    if (out_ > 0) --out_;
    released_ = true;
    if (idle_.size() < keep_) {
      idle_.push_back(Idle{std::move(session), now});
    } else if (linger_.count() > 0 && (!budget_ || budget_->take())) {
      idle_.push_back(Idle{std::move(session), now});
      ++lingering_;
    }
  }
  closed_ += expired.size() + (session ? 1 : 0);
  // Here, outside the lock, the expired sessions and one not kept close.
}

void SessionPool::discard(std::unique_ptr<QuerySession> session) {
  {
    std::lock_guard lock(mutex_);
    if (out_ > 0) --out_;
    ++dropped_;
  }
  session.reset();  // outside the lock
}

std::size_t SessionPool::created(ConnectCause cause) const {
  std::lock_guard lock(mutex_);
  return created_by_cause_[static_cast<int>(cause)];
}

void SessionPool::configure(std::size_t keep, std::chrono::milliseconds linger) {
  std::vector<Idle> surplus;
  {
    std::lock_guard lock(mutex_);
    keep_ = keep;
    linger_ = linger;
    while (idle_.size() > keep_) {
      surplus.push_back(std::move(idle_.front()));
      idle_.erase(idle_.begin());
    }
    if (budget_ && lingering_ > 0) budget_->give(lingering_);
    lingering_ = 0;
  }
  closed_ += surplus.size();
}

std::size_t SessionPool::idle() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

PollResult Poller::poll(SessionPool& pool, const collectors::Collector& collector,
                        std::size_t max_series, winrm::Deadline deadline, QueryReuse reuse) const {
  return winrm::run_sync(poll_async(pool, collector, max_series, deadline, reuse));
}

namespace {

// Adds a poll's query counts to the exporter-wide ones however the poll ends.
struct QueryTally {
  QueryStats* stats;
  const std::string& collector;
  std::uint64_t sent = 0;
  std::uint64_t reused = 0;
  ~QueryTally() {
    if (stats) stats->add(collector, sent, reused);
  }
};

}  // namespace

winrm::Task<PollResult> Poller::poll_async(SessionPool& pool,
                                           const collectors::Collector& collector,
                                           std::size_t max_series, winrm::Deadline deadline,
                                           QueryReuse reuse) const {
  if (cancelled()) co_return std::unexpected(cancelled_failure("cancelled (shutting down)"));
  QueryTally tally{reuse.stats, collector.name()};
  std::unique_ptr<QuerySession> session;  // taken when the first query goes out
  std::vector<std::vector<winrm::Row>> rows;
  rows.reserve(collector.queries().size());
  // A query's small pages are parsed on the transport's I/O thread where they arrive, and
  // the next query starts from there (winrm::Resume::kInlineIfSmall); everything else of
  // the poll (the transform, the end of a session, logging) runs on a worker.
  for (std::size_t index = 0; index < collector.queries().size(); ++index) {
    const collectors::Query& query = collector.queries()[index];
    if (cancelled()) {
      co_await winrm::leave_io_thread();
      if (session) pool.release(std::move(session));
      co_return std::unexpected(cancelled_failure("cancelled (shutting down)"));
    }
    const bool keep = reuse.cache != nullptr && query.refresh.count() > 0;
    const auto sent_at = keep ? QueryCache::Clock::now() : QueryCache::Clock::time_point();
    if (keep) {
      if (auto kept = reuse.cache->lookup(collector.name(), index, query, sent_at)) {
        ++tally.reused;
        rows.push_back(std::move(*kept));
        continue;
      }
    }
    if (!session) session = pool.acquire();
    ++tally.sent;
    auto result = co_await session->enumerate_async(query.wmi_namespace, query.wql, deadline);
    if (!result) {
      co_await winrm::leave_io_thread();
      winrm::Error& error = result.error();
      if (error.kind == winrm::ErrorKind::kWsmanFault) {
        pool.release(std::move(session));
      } else {
        pool.discard(std::move(session));
      }
      if (error.cancelled) co_return std::unexpected(cancelled_failure(error.describe()));
      std::string kind = error_kind_label(error);
      std::string message = error.describe();
      const PollOutcome outcome = outcome_of(error);
      co_return std::unexpected(
          PollFailure{std::move(kind), std::move(message), outcome, std::move(error), false});
    }
    if (keep) reuse.cache->store(collector.name(), index, query, *result, sent_at);
    rows.push_back(std::move(*result));
  }
  co_await winrm::leave_io_thread();
  if (session) pool.release(std::move(session));
  auto families = collector.transform(rows);
  if (!families) {
    co_return std::unexpected(failure("collector", std::move(families.error())));
  }
  // Parsing and transforming are part of the poll: a result later than the deadline is a
  // timeout, as a late response would be.
  if (winrm::Clock::now() > deadline) {
    co_return std::unexpected(
        failure("timeout", "collector transform ended after the poll deadline"));
  }
  std::size_t series = 0;
  for (const auto& family : *families) series += family.samples.size();
  if (series > max_series) {
    co_return std::unexpected(
        failure("series_limit", std::to_string(series) +
                                    " series exceed limits.max_series_per_collector (" +
                                    std::to_string(max_series) + ")"));
  }
  co_return std::move(*families);
}

bool drops_kept_rows(const PollFailure& failure) {
  if (failure.cancelled || failure.outcome != PollOutcome::kUnreachable) return false;
  return !failure.error || failure.error->kind != winrm::ErrorKind::kWsmanFault;
}

PollOutcome outcome_of(const winrm::Error& error) {
  switch (error.kind) {
    case winrm::ErrorKind::kTransport:
    case winrm::ErrorKind::kTls:
    case winrm::ErrorKind::kAuth:  // also spares the account a lockout
    case winrm::ErrorKind::kHttp:
    case winrm::ErrorKind::kTimeout:
      return PollOutcome::kUnreachable;
    case winrm::ErrorKind::kWsmanFault:
      if (!error.fault) return PollOutcome::kFailed;
      switch (winrm::classify(*error.fault)) {
        case winrm::FaultClass::kQuotaExceeded:
          return PollOutcome::kQuota;
        case winrm::FaultClass::kTimedOut:  // the host is too busy to answer in time
          return PollOutcome::kUnreachable;
        default:
          return PollOutcome::kFailed;
      }
    case winrm::ErrorKind::kParse:
    case winrm::ErrorKind::kCancelled:  // never recorded against the host (App::poll)
      return PollOutcome::kFailed;
  }
  return PollOutcome::kFailed;
}

std::string error_kind_label(const winrm::Error& error) {
  if (error.kind == winrm::ErrorKind::kWsmanFault && error.fault) {
    return std::string(winrm::to_string(winrm::classify(*error.fault)));
  }
  return std::string(winrm::to_string(error.kind));
}

}  // namespace exporter
