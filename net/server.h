// A small event-loop HTTP/1.1 server: epoll, non-blocking sockets (plain and OpenSSL TLS),
// a fixed number of loop threads, an optional worker pool for handlers that do real work,
// deferred and scheduled responses, and a bound on every resource a client controls.
// Why it exists and how its limits behave: docs/http-server.md.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace net {

using Clock = std::chrono::steady_clock;

struct ServerLimits {
  // Open connections in all; the process's RLIMIT_NOFILE is raised to fit when allowed,
  // otherwise this is lowered to what the limit allows (see Server::limits()).
  std::size_t max_connections = 32768;
  // Open connections from one peer address; 0 = no per-address cap.
  std::size_t max_connections_per_client = 0;
  std::size_t max_head_bytes = 16 * 1024;    // request line + headers -> 431
  std::size_t max_header_count = 100;        // -> 431
  std::size_t max_body_bytes = 1024 * 1024;  // Content-Length or de-chunked -> 413
  // Total time from a request's first byte to its last (and for a TLS handshake, from
  // accept to its end): a client that trickles bytes is answered 408 and closed then.
  std::chrono::milliseconds request_timeout{30000};
  // A keep-alive connection with no request in progress is closed after this.
  std::chrono::milliseconds idle_timeout{120000};
  // A response that makes no write progress for this long closes the connection.
  std::chrono::milliseconds write_timeout{30000};
  // Requests waiting for a worker thread; beyond it -> 503 and close.
  std::size_t max_queued_requests = 4096;
};

struct ServerOptions {
  int loop_threads = 1;
  // 0: handlers run on the loop thread and must not block. N: handlers run on N workers.
  int worker_threads = 0;
  // With workers: a request for which this returns true (called on the loop thread, must be
  // cheap and thread-safe) is handled on the loop thread, like worker_threads = 0. For short
  // handlers whose latency matters: a hand-off to a worker and back is two thread wake-ups,
  // each of which can wait for the next scheduler tick on a busy core.
  std::function<bool(const Request&)> run_inline;
  ServerLimits limits;
  // stop(): in-flight requests get this long to finish before connections are cut.
  std::chrono::milliseconds stop_grace{5000};
  bool raise_fd_limit = true;
  // Thread names (`NAME-loop`, `NAME-worker`, at most 15 bytes: cut), so top -H and perf
  // tell the server's threads from the rest of the process. Empty: not renamed.
  std::string thread_name;
  // Run first on every loop and worker thread (e.g. to set its scheduling priority); the
  // argument tells which kind the thread is.
  enum class ThreadKind { kLoop, kWorker };
  std::function<void(ThreadKind)> thread_start;
};

// A body in pieces that stay valid while `owner` lives, e.g. cached segments of a page: sent
// with gathered writes straight from the pieces, never joined into one buffer per page.
struct BodyParts {
  std::vector<std::string_view> parts;
  std::size_t size = 0;  // of all parts
  std::shared_ptr<const void> owner;
};

struct Response {
  int status = 200;
  // Sent as given (names and values with CR, LF or NUL are dropped). The server writes
  // Content-Length and Connection itself; do not set them.
  std::vector<Header> headers;
  // The body: `body`, or `shared_body` when set (no copy of a shared payload), or
  // `body_parts` (the same, in pieces), or generated_length bytes produced by
  // body_generator(offset, out, n) on the loop thread. A shared body or parts whose last
  // reference the response holds are released on a worker thread (when there are workers),
  // so that freeing a large page never stalls the loop.
  std::string body;
  std::shared_ptr<const std::string> shared_body;
  std::shared_ptr<const BodyParts> body_parts;
  std::function<void(std::size_t offset, char* out, std::size_t n)> body_generator;
  std::size_t generated_length = 0;
  // Close the connection after this response.
  bool close = false;
  // Called once on the loop thread when the response is done: its last byte written, or the
  // connection closed before that (e.g. request duration metrics, measured from
  // Request::received).
  std::function<void()> on_done;
  // Fault injection (the simulator's slow and broken servers): send the body pace_bytes
  // at a time, pace_interval apart; stop after close_after_body_bytes body bytes and close.
  std::size_t pace_bytes = 0;
  std::chrono::milliseconds pace_interval{0};
  std::optional<std::size_t> close_after_body_bytes;

  void add_header(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
  }
  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
};

namespace detail {
struct Pending;
}

// Completes one request, exactly once, from any thread. A Responder dropped without an
// answer sends 500 and closes the connection. Answers for a connection that has gone are
// discarded.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::shared_ptr<detail::Pending> pending) : pending_(std::move(pending)) {}
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&&) noexcept = default;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void send(Response response);
  // Sends at `when` (a loop timer: no thread waits). A time in the past sends now.
  void send_at(Clock::time_point when, Response response);
  std::uint64_t connection_id() const;
  bool valid() const { return pending_ != nullptr; }

 private:
  std::shared_ptr<detail::Pending> pending_;
};

using Handler = std::function<void(Request, Responder)>;
// Called for every accepted TLS connection: the SSL_CTX to use (SSL_new takes its own
// reference, so the provider may swap contexts, e.g. on certificate reload). Null refuses
// the connection. Called on loop threads: must be thread-safe.
using TlsContextProvider = std::function<ssl_ctx_st*()>;
// Called on a loop thread when a connection closes (per-connection state cleanup).
using CloseCallback = std::function<void(std::uint64_t connection_id)>;

struct ServerStats {
  std::uint64_t connections = 0;  // open now
  std::uint64_t accepted = 0;
  std::uint64_t requests = 0;
  std::uint64_t rejected_connections = 0;  // over max_connections or the per-client cap
  std::uint64_t request_timeouts = 0;      // 408 at the request deadline
  std::uint64_t idle_closed = 0;           // idle keep-alive connections closed
  std::uint64_t write_timeouts = 0;
  std::uint64_t protocol_errors = 0;  // 400/413/431/501/505/417 answers
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t queue_full = 0;  // 503 because no worker was free in time
};

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Before start(): binds and listens on address:port (port 0 picks one) and returns the
  // bound port. With `tls`, connections on it speak TLS.
  std::expected<int, std::string> listen(const std::string& address, int port,
                                         TlsContextProvider tls = {});
  void on_close(CloseCallback callback);  // before start()
  void start();
  // Stops accepting, closes idle connections, lets in-flight requests finish within
  // stop_grace, then closes the rest and joins every thread. Idempotent; any thread
  // except a loop or worker thread.
  void stop();
  // Blocks until stop() has finished.
  void wait();

  ServerStats stats() const;
  const ServerLimits& limits() const;  // effective limits (max_connections after the fd limit)

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace net
