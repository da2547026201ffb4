// Coroutines for the event-driven poll (docs/transport.md, "No thread parked per request"):
// a poll is a chain of coroutines (Poller -> Session -> Auth) whose leaves are HTTP round
// trips on the transport's I/O thread. While a request is in flight the chain is suspended
// and holds no thread; the I/O thread hands the answer to an Executor (the daemon's CPU
// workers), which resumes the chain, so parsing and GSS work never run on the I/O thread.
//
// Why coroutines and not callback state machines: Session::enumerate (Enumerate, Pull,
// retries, restarts, Release on every early exit) and the Negotiate handshake are loops
// with many exits; as coroutines they keep their synchronous shape line for line, and the
// synchronous APIs are the same code run by run_sync.
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "winrm/error.h"
#include "winrm/transport.h"

namespace winrm {

// Runs resumed coroutines: the daemon's scheduler workers, or run_sync's waiting thread.
class Executor {
 public:
  virtual ~Executor() = default;
  // Called from any thread, the I/O thread included: must only queue.
  virtual void post(std::coroutine_handle<> handle) = 0;
};

namespace detail {

struct PromiseBase {
  Executor* executor = nullptr;  // inherited from the awaiting coroutine
  std::coroutine_handle<> continuation;
  std::suspend_always initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> self) noexcept {
      auto next = self.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  // Errors are values on these paths; an exception here is a bug.
  void unhandled_exception() noexcept { std::terminate(); }
};

template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  template <class U>
  void return_value(U&& result) {
    value.emplace(std::forward<U>(result));
  }
};

template <>
struct Promise<void> : PromiseBase {
  void return_void() noexcept {}
};

}  // namespace detail

// A lazily started coroutine returning T; co_await it from another coroutine, or start it
// with spawn() or run_sync().
template <class T>
class [[nodiscard]] Task {
 public:
  struct promise_type : detail::Promise<T> {
    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) = delete;
  Task(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
    handle_.promise().continuation = parent;
    handle_.promise().executor = parent.promise().executor;
    return handle_;
  }
  T await_resume() {
    if constexpr (!std::is_void_v<T>) return std::move(*handle_.promise().value);
  }

 private:
  explicit Task(Handle handle) : handle_(handle) {}
  Handle handle_;
};

// co_await leave_io_thread(): on the transport's I/O thread (a chain resumed there after a
// small answer, RequestAwaiter), moves the chain to its executor; anywhere else, nothing.
// Before CPU work that is not a page's parse, before anything that may block, and before a
// poll's end: the I/O thread drives every transfer of the process.
class LeaveIoThread {
 public:
  bool await_ready() const noexcept { return !on_io_thread(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> self) {
    Executor* executor = self.promise().executor;
    if (executor == nullptr) return false;  // nowhere to go: carry on here
    executor->post(self);                   // self may run elsewhere from here on
    return true;
  }
  void await_resume() noexcept {}
};

inline LeaveIoThread leave_io_thread() { return {}; }

namespace detail {

// The root of a chain: starts at once, frees itself at the end.
struct Detached {
  struct promise_type : PromiseBase {
    Detached get_return_object() {
      return Detached{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
  };
  std::coroutine_handle<promise_type> handle;
};

template <class T, class Done>
Detached run_detached(Task<T> task, Done done) {
  // done (the scheduler's bookkeeping, run_sync's hand-back) never runs on the I/O thread.
  if constexpr (std::is_void_v<T>) {
    co_await std::move(task);
    co_await leave_io_thread();
    done();
  } else {
    auto result = co_await std::move(task);
    co_await leave_io_thread();
    done(std::move(result));
  }
}

}  // namespace detail

// Starts task on the calling thread; after each suspension it resumes on executor, and
// done(result) runs on the thread that ran its last step.
template <class T, class Done>
void spawn(Task<T> task, Executor& executor, Done done) {
  auto root = detail::run_detached(std::move(task), std::move(done));
  root.handle.promise().executor = &executor;
  root.handle.resume();
}

// An executor whose tasks run on the one thread that waits in run_until.
class BlockingExecutor final : public Executor {
 public:
  void post(std::coroutine_handle<> handle) override {
    std::lock_guard lock(mutex_);  // notified under the lock: the waiter owns this object
    queue_.push_back(handle);
    ready_.notify_one();
  }
  // Resumes posted coroutines on this thread until done() is true.
  template <class Pred>
  void run_until(Pred done) {
    while (!done()) {
      std::coroutine_handle<> next;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        next = queue_.front();
        queue_.pop_front();
      }
      next.resume();
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::coroutine_handle<>> queue_;
};

// Runs task to completion on the calling thread (every step of it; the I/O thread only
// posts): the synchronous APIs (query, tests) are the coroutines run this way.
template <class T>
T run_sync(Task<T> task) {
  BlockingExecutor executor;
  bool finished = false;
  if constexpr (std::is_void_v<T>) {
    spawn(std::move(task), executor, [&] { finished = true; });
    executor.run_until([&] { return finished; });
  } else {
    std::optional<T> result;
    spawn(std::move(task), executor, [&](T value) {
      result.emplace(std::move(value));
      finished = true;
    });
    executor.run_until([&] { return finished; });
    return std::move(*result);
  }
}

// Where a chain resumes after its request: kExecutor always on its executor (a worker);
// kInlineIfSmall on the I/O thread itself when the answer is an error or a body of at most
// kInlineResumeMaxBody bytes, so that parsing a small page and sending the next request
// (Pull, the next query) costs no hand-off to a worker and back: two thread wake-ups per
// request on a shared 2-core host (bench/RESULTS.md, "hand-offs"). Only for chains that
// need no GSS call after the answer (Basic, certificate): Negotiate uses kExecutor.
enum class Resume { kExecutor, kInlineIfSmall };
// About 0.1 ms of parsing (parse_bench service3: 180 KB in 0.31 ms of CPU): the longest the
// I/O thread is held by one page.
inline constexpr std::size_t kInlineResumeMaxBody = 64 * 1024;

// co_await send_request(conn, request, deadline): Connection::start, resumed as `resume`
// says. request must outlive the co_await (it does as a local of the awaiting coroutine).
class RequestAwaiter {
 public:
  RequestAwaiter(Connection& connection, const HttpRequest& request, Deadline deadline,
                 Resume resume)
      : connection_(connection), request_(request), deadline_(deadline), resume_(resume) {}
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> waiting) {
    waiting_ = waiting;
    executor_ = waiting.promise().executor;
    // Captures only `this`: fits std::function's small buffer (no allocation per request).
    connection_.start(request_, deadline_, [this](Result<HttpResponse> r) {
      result_.emplace(std::move(r));
      // Before the suspension was decided: await_suspend sees kDone and carries on itself.
      if (state_.exchange(kDone, std::memory_order_acq_rel) == kSuspended) dispatch();
    });
    // The answer came inside start() (an early error, a synchronous Connection): no
    // suspension, no hand-off. Otherwise the callback resumes the chain; nothing of this
    // object is touched here after the exchange.
    return state_.exchange(kSuspended, std::memory_order_acq_rel) != kDone;
  }
  Result<HttpResponse> await_resume() { return std::move(*result_); }

 private:
  enum State { kStarting, kSuspended, kDone };

  void dispatch() {
    const bool small = !*result_ || (*result_)->body.size() <= kInlineResumeMaxBody;
    if (executor_ == nullptr ||
        (resume_ == Resume::kInlineIfSmall && small && on_io_thread())) {
      waiting_.resume();
    } else {
      executor_->post(waiting_);
    }
  }

  Connection& connection_;
  const HttpRequest& request_;
  Deadline deadline_;
  Resume resume_;
  std::coroutine_handle<> waiting_;
  Executor* executor_ = nullptr;
  std::atomic<int> state_{kStarting};
  std::optional<Result<HttpResponse>> result_;
};

inline RequestAwaiter send_request(Connection& connection, const HttpRequest& request,
                                   Deadline deadline, Resume resume = Resume::kExecutor) {
  return RequestAwaiter(connection, request, deadline, resume);
}

}  // namespace winrm
