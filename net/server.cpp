#include "server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace net {

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.add_header("Content-Type", std::move(content_type));
  return r;
}

namespace {

// epoll data tags: the inbox eventfd, listeners by index, connections by id.
constexpr std::uint64_t kInboxTag = 0;
constexpr std::uint64_t kListenerTagBase = 1;
constexpr std::uint64_t kFirstConnectionId = 1024;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kGeneratedChunk = 64 * 1024;
// Pieces of a BodyParts body per gathered write (IOV_MAX is 1024).
constexpr std::size_t kPartsPerWrite = 256;
// Body bytes written to one connection per turn of the loop: a fast reader of a large page
// (a 176 MiB /metrics) would otherwise keep the loop in one connection's writes while
// other answers (a /probe) wait; beyond it the connection waits for its next EPOLLOUT.
constexpr std::size_t kWriteBytesPerTurn = 1024 * 1024;
// Reads per readiness event, so one fast client cannot starve the others on a loop.
constexpr int kReadsPerEvent = 16;
constexpr int kAcceptsPerEvent = 64;
// After an error answer: how long unread request bytes are drained before closing, so the
// peer reads the answer instead of a reset.
constexpr std::chrono::milliseconds kDrainTime{2000};
// File descriptors kept free for everything else in the process (logs, config, clients).
constexpr rlim_t kReservedFds = 256;

std::string peer_string(const sockaddr_storage& ss, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  return buf;
}

bool header_safe(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

namespace detail {

// Work posted to a loop from other threads; woken through an eventfd. Shared with
// Responders, so a late answer after the loop has gone is dropped, not a crash.
struct Inbox {
  std::mutex mutex;
  std::vector<std::function<void()>> tasks;
  bool closed = false;
  int event_fd = -1;

  Inbox() : event_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Inbox() {
    if (event_fd >= 0) ::close(event_fd);
  }
  bool post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex);
      if (closed) return false;
      tasks.push_back(std::move(task));
    }
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(event_fd, &one, sizeof one);
    return true;
  }
};

struct Pending {
  std::shared_ptr<Inbox> inbox;
  void* loop = nullptr;  // the Loop owning the connection (only touched on that loop)
  std::uint64_t connection_id = 0;
  std::uint64_t sequence = 0;
  std::atomic<bool> done{false};
  ~Pending();
};

}  // namespace detail

class Loop;

struct Listener {
  int fd = -1;
  int port = 0;
  TlsContextProvider tls;
};

struct Server::Impl {
  ServerOptions options;
  Handler handler;
  CloseCallback close_callback;
  std::vector<Listener> listeners;
  std::vector<std::unique_ptr<Loop>> loops;
  std::atomic<std::uint64_t> next_connection_id{kFirstConnectionId};

  // Connection accounting across loops.
  std::atomic<std::size_t> open_connections{0};
  std::mutex clients_mutex;
  std::unordered_map<std::string, std::size_t> per_client;

  // Worker pool.
  std::mutex work_mutex;
  std::condition_variable work_cv;
  std::deque<std::function<void()>> work;
  bool workers_stop = false;
  std::vector<std::thread> workers;

  std::mutex state_mutex;
  std::condition_variable state_cv;
  bool started = false;
  bool stopped = false;

  struct Counters {
    std::atomic<std::uint64_t> accepted{0}, requests{0}, rejected{0}, request_timeouts{0},
        idle_closed{0}, write_timeouts{0}, protocol_errors{0}, tls_failures{0}, queue_full{0};
  } counters;

  bool admit(const std::string& peer);
  void release(const std::string& peer);
  // False when the queue is full.
  bool enqueue(std::function<void()> task);
  void worker_main();
  void name_thread(ServerOptions::ThreadKind kind) const;
};

bool Server::Impl::admit(const std::string& peer) {
  const auto& limits = options.limits;
  if (open_connections.fetch_add(1) >= limits.max_connections) {
    open_connections.fetch_sub(1);
    return false;
  }
  if (limits.max_connections_per_client > 0) {
    std::lock_guard lock(clients_mutex);
    auto& count = per_client[peer];
    if (count >= limits.max_connections_per_client) {
      if (count == 0) per_client.erase(peer);
      open_connections.fetch_sub(1);
      return false;
    }
    ++count;
  }
  return true;
}

void Server::Impl::release(const std::string& peer) {
  open_connections.fetch_sub(1);
  if (options.limits.max_connections_per_client > 0) {
    std::lock_guard lock(clients_mutex);
    auto it = per_client.find(peer);
    if (it != per_client.end() && --it->second == 0) per_client.erase(it);
  }
}

bool Server::Impl::enqueue(std::function<void()> task) {
  {
    std::lock_guard lock(work_mutex);
    if (work.size() >= options.limits.max_queued_requests) return false;
    work.push_back(std::move(task));
  }
  work_cv.notify_one();
  return true;
}

void Server::Impl::name_thread(ServerOptions::ThreadKind kind) const {
  if (options.thread_start) options.thread_start(kind);
  if (options.thread_name.empty()) return;
  std::string name =
      options.thread_name + (kind == ServerOptions::ThreadKind::kLoop ? "-loop" : "-worker");
  name.resize(std::min<std::size_t>(name.size(), 15));  // the kernel's limit (16 with NUL)
  pthread_setname_np(pthread_self(), name.c_str());
}

void Server::Impl::worker_main() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(work_mutex);
      work_cv.wait(lock, [this] { return workers_stop || !work.empty(); });
      if (workers_stop) return;
      task = std::move(work.front());
      work.pop_front();
    }
    task();
  }
}

struct Connection {
  enum class State { kHandshake, kReading, kHandling, kWriting, kDraining };

  std::uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  const Listener* listener = nullptr;
  std::string peer;
  int peer_port = 0;
  State state = State::kReading;
  bool closed = false;
  RequestParser parser;
  std::uint32_t interest = 0;
  std::optional<Clock::time_point> deadline;
  std::uint64_t sequence = 0;  // requests started on this connection
  bool continue_sent = false;
  std::string sni;
  std::shared_ptr<x509_st> peer_certificate;

  // The response being written.
  bool keep_alive = true;
  bool head_request = false;
  std::string out;  // status line and headers (and a small body appended)
  std::size_t out_offset = 0;
  Response response;
  std::size_t body_length = 0;  // bytes of body to send (after close_after_body_bytes)
  std::size_t body_offset = 0;
  bool abort_after_body = false;  // close_after_body_bytes cut the body short
  std::string generated;          // current generated chunk (or chunk copied from body_parts)
  std::size_t generated_offset = 0;
  std::size_t part_index = 0;   // body_parts: the next byte not yet sent (or not yet copied
  std::size_t part_offset = 0;  // into `generated` when the parts go out in chunks)
  std::size_t pace_left = 0;    // body bytes allowed before the next pace pause
  bool pace_waiting = false;
  std::size_t tls_retry_length = 0;  // SSL_write must be retried with the same length

  explicit Connection(ParserLimits limits) : parser(limits) {}
};

class Loop {
 public:
  explicit Loop(Server::Impl& server);
  ~Loop();
  void start() {
    thread_ = std::thread([this] {
      server_.name_thread(ServerOptions::ThreadKind::kLoop);
      run();
    });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  void begin_stop(Clock::time_point grace_end);
  const std::shared_ptr<detail::Inbox>& inbox() const { return inbox_; }

  // On the loop thread.
  void complete(std::uint64_t connection_id, std::uint64_t sequence, Response response);
  void complete_at(Clock::time_point when, std::uint64_t connection_id, std::uint64_t sequence,
                   Response response);

 private:
  void run();
  void drain_inbox();
  void run_timers();
  int wait_timeout_ms() const;
  void on_accept(Listener& listener);
  void on_event(Connection& c, std::uint32_t events);
  void handshake(Connection& c);
  void read_requests(Connection& c);
  void process_buffered(Connection& c);
  void dispatch(Connection& c);
  void start_response(Connection& c, Response response);
  void error_response(Connection& c, int status, std::string_view reason);
  void write_some(Connection& c);
  void finish_response(Connection& c);
  void begin_drain(Connection& c);
  void drain(Connection& c);
  void go_idle(Connection& c);
  void set_interest(Connection& c, std::uint32_t events);
  void set_deadline(Connection& c, std::optional<Clock::time_point> when);
  void on_deadline(Connection& c);
  void close(Connection& c);
  // >0 bytes, 0 EOF, -1 would block (want_write set when TLS needs to write), -2 error.
  long read_raw(Connection& c, char* buf, std::size_t n, bool& want_write);
  long write_raw(Connection& c, const char* buf, std::size_t n, bool& want_read);
  // body_parts: one gathered write of at most `limit` bytes from the cursor (plain sockets).
  long write_parts(Connection& c, std::size_t limit);
  // body_parts: copies n bytes from the cursor (TLS and paced bodies go out in chunks).
  void copy_parts(Connection& c, char* out, std::size_t n);
  // Hands the body's last reference to a worker: freeing a large page can take milliseconds.
  void release_body(Response& response);
  // Runs (and clears) the response's on_done.
  static void report_done(Response& response);
  Connection* find(std::uint64_t id);

  Server::Impl& server_;
  int epoll_fd_ = -1;
  int reserve_fd_ = -1;  // released to accept-and-close when out of file descriptors
  std::shared_ptr<detail::Inbox> inbox_;
  std::thread thread_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::set<std::pair<Clock::time_point, std::uint64_t>> deadlines_;
  std::multimap<Clock::time_point, std::function<void()>> timers_;
  std::vector<std::uint64_t> dead_;
  std::vector<char> scratch_;
  bool stopping_ = false;
  Clock::time_point grace_end_{};
};

detail::Pending::~Pending() {
  if (done.load()) return;
  // Dropped without an answer (a handler bug or an exception): answer 500 and close.
  auto* target = static_cast<Loop*>(loop);
  inbox->post([target, id = connection_id, seq = sequence] {
    Response r = Response::text(500, "internal error: the request was not answered\n");
    r.close = true;
    target->complete(id, seq, std::move(r));
  });
}

Responder::~Responder() = default;

void Responder::send(Response response) {
  if (!pending_ || pending_->done.exchange(true)) return;
  auto* target = static_cast<Loop*>(pending_->loop);
  pending_->inbox->post([target, id = pending_->connection_id, seq = pending_->sequence,
                         r = std::make_shared<Response>(std::move(response))]() mutable {
    target->complete(id, seq, std::move(*r));
  });
  pending_.reset();
}

void Responder::send_at(Clock::time_point when, Response response) {
  if (!pending_ || pending_->done.exchange(true)) return;
  auto* target = static_cast<Loop*>(pending_->loop);
  pending_->inbox->post([target, when, id = pending_->connection_id, seq = pending_->sequence,
                         r = std::make_shared<Response>(std::move(response))]() mutable {
    target->complete_at(when, id, seq, std::move(*r));
  });
  pending_.reset();
}

std::uint64_t Responder::connection_id() const { return pending_ ? pending_->connection_id : 0; }

Loop::Loop(Server::Impl& server)
    : server_(server),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)),
      inbox_(std::make_shared<detail::Inbox>()),
      scratch_(kReadChunk) {
  if (epoll_fd_ < 0 || inbox_->event_fd < 0)
    throw std::runtime_error(std::string("epoll/eventfd: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kInboxTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, inbox_->event_fd, &ev);
  for (std::size_t i = 0; i < server_.listeners.size(); ++i) {
    // EPOLLEXCLUSIVE: one loop wakes per new connection, not all of them.
    epoll_event lev{};
    lev.events = EPOLLIN | EPOLLEXCLUSIVE;
    lev.data.u64 = kListenerTagBase + i;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, server_.listeners[i].fd, &lev);
  }
}

Loop::~Loop() {
  join();
  for (auto& [id, c] : connections_)
    if (!c->closed) close(*c);
  connections_.clear();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void Loop::begin_stop(Clock::time_point grace_end) {
  inbox_->post([this, grace_end] {
    stopping_ = true;
    grace_end_ = grace_end;
    for (std::size_t i = 0; i < server_.listeners.size(); ++i)
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, server_.listeners[i].fd, nullptr);
    for (auto& [id, c] : connections_) {
      if (c->closed) continue;
      // Idle and half-read connections go now; requests being answered finish first.
      if (c->state == Connection::State::kHandshake || c->state == Connection::State::kReading ||
          c->state == Connection::State::kDraining)
        close(*c);
    }
  });
}

Connection* Loop::find(std::uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() || it->second->closed ? nullptr : it->second.get();
}

void Loop::run() {
  // SSL_write writes with plain write(): with SIGPIPE blocked on this thread a peer that
  // has gone yields EPIPE instead of killing the process.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  std::vector<epoll_event> events(256);
  for (;;) {
    if (stopping_) {
      std::size_t live = 0;
      for (auto& [id, c] : connections_) live += c->closed ? 0 : 1;
      if (live == 0 || Clock::now() >= grace_end_) break;
    }
    int n =
        epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), wait_timeout_ms());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      const auto tag = events[i].data.u64;
      if (tag == kInboxTag) {
        drain_inbox();
      } else if (tag < kFirstConnectionId) {
        if (!stopping_) on_accept(server_.listeners[tag - kListenerTagBase]);
      } else if (auto* c = find(tag)) {
        on_event(*c, events[i].events);
      }
    }
    drain_inbox();
    run_timers();
    for (auto id : dead_) connections_.erase(id);
    dead_.clear();
  }
  // Late answers are dropped from now on.
  std::vector<std::function<void()>> orphaned;
  {
    std::lock_guard lock(inbox_->mutex);
    inbox_->closed = true;
    orphaned.swap(inbox_->tasks);
  }
  orphaned.clear();
  for (auto& [id, c] : connections_)
    if (!c->closed) close(*c);
  connections_.clear();
  timers_.clear();
  deadlines_.clear();
}

void Loop::drain_inbox() {
  std::uint64_t count;
  [[maybe_unused]] auto r = ::read(inbox_->event_fd, &count, sizeof count);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(inbox_->mutex);
    tasks.swap(inbox_->tasks);
  }
  for (auto& t : tasks) t();
}

int Loop::wait_timeout_ms() const {
  auto next = Clock::now() + std::chrono::seconds(1);  // also bounds the stop check
  if (!deadlines_.empty()) next = std::min(next, deadlines_.begin()->first);
  if (!timers_.empty()) next = std::min(next, timers_.begin()->first);
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 1000));
}

void Loop::run_timers() {
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const auto id = deadlines_.begin()->second;
    if (auto* c = find(id)) {
      on_deadline(*c);
    } else {
      deadlines_.erase(deadlines_.begin());
    }
  }
  // Timers added by these tasks wait for the next round.
  std::vector<std::function<void()>> due;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    due.push_back(std::move(timers_.begin()->second));
    timers_.erase(timers_.begin());
  }
  for (auto& t : due) t();
}

void Loop::set_deadline(Connection& c, std::optional<Clock::time_point> when) {
  if (c.deadline) deadlines_.erase({*c.deadline, c.id});
  c.deadline = when;
  if (when) deadlines_.insert({*when, c.id});
}

void Loop::set_interest(Connection& c, std::uint32_t events) {
  if (c.interest == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.interest = events;
}

void Loop::on_accept(Listener& listener) {
  for (int i = 0; i < kAcceptsPerEvent; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd =
        accept4(listener.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: accept with the reserve one and close at once, or the
        // level-triggered listener would spin on the same pending connection.
        if (reserve_fd_ >= 0) {
          ::close(reserve_fd_);
          int drop = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
          if (drop >= 0) ::close(drop);
          reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
          server_.counters.rejected++;
          continue;
        }
      }
      return;  // EAGAIN or a transient error
    }
    int port = 0;
    std::string peer = peer_string(ss, port);
    if (!server_.admit(peer)) {
      server_.counters.rejected++;
      if (!listener.tls) {
        static constexpr std::string_view k503 =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        [[maybe_unused]] auto n = send(fd, k503.data(), k503.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      ::close(fd);
      continue;
    }
    server_.counters.accepted++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const auto& limits = server_.options.limits;
    auto c = std::make_unique<Connection>(
        ParserLimits{limits.max_head_bytes, limits.max_header_count, limits.max_body_bytes});
    c->id = server_.next_connection_id.fetch_add(1);
    c->fd = fd;
    c->listener = &listener;
    c->peer = std::move(peer);
    c->peer_port = port;
    if (listener.tls) {
      SSL_CTX* ctx = listener.tls();
      SSL* ssl = ctx != nullptr ? SSL_new(ctx) : nullptr;
      if (ssl == nullptr) {
        server_.counters.tls_failures++;
        server_.release(c->peer);
        ::close(fd);
        continue;
      }
      // Idle connections keep no TLS record buffers.
      SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      SSL_set_fd(ssl, fd);
      SSL_set_accept_state(ssl);
      c->ssl = ssl;
      c->state = Connection::State::kHandshake;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c->id;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      if (c->ssl) SSL_free(c->ssl);
      server_.release(c->peer);
      ::close(fd);
      continue;
    }
    c->interest = EPOLLIN;
    auto& conn = *c;
    connections_.emplace(c->id, std::move(c));
    set_deadline(conn, Clock::now() + (conn.ssl ? limits.request_timeout : limits.idle_timeout));
  }
}

void Loop::on_event(Connection& c, std::uint32_t events) {
  using S = Connection::State;
  if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
    close(c);
    return;
  }
  switch (c.state) {
    case S::kHandshake:
      handshake(c);
      break;
    case S::kReading:
      read_requests(c);
      break;
    case S::kWriting:
      if (!c.pace_waiting) write_some(c);
      break;
    case S::kDraining:
      drain(c);
      break;
    case S::kHandling:
      // Interest is empty while a handler runs; only a hang-up lands here.
      if (events & (EPOLLERR | EPOLLHUP)) close(c);
      break;
  }
}

void Loop::handshake(Connection& c) {
  ERR_clear_error();
  int rc = SSL_do_handshake(c.ssl);
  if (rc == 1) {
    if (const char* sni = SSL_get_servername(c.ssl, TLSEXT_NAMETYPE_host_name)) c.sni = sni;
    if (X509* cert = SSL_get1_peer_certificate(c.ssl)) {
      if (SSL_get_verify_result(c.ssl) == X509_V_OK)
        c.peer_certificate = std::shared_ptr<x509_st>(cert, X509_free);
      else
        X509_free(cert);
    }
    c.state = Connection::State::kReading;
    go_idle(c);
    // Application data may already sit in OpenSSL's buffer.
    read_requests(c);
    return;
  }
  int err = SSL_get_error(c.ssl, rc);
  if (err == SSL_ERROR_WANT_READ) {
    set_interest(c, EPOLLIN);
  } else if (err == SSL_ERROR_WANT_WRITE) {
    set_interest(c, EPOLLOUT);
  } else {
    server_.counters.tls_failures++;
    ERR_clear_error();
    close(c);
  }
}

long Loop::read_raw(Connection& c, char* buf, std::size_t n, bool& want_write) {
  want_write = false;
  if (c.ssl == nullptr) {
    for (;;) {
      auto r = ::recv(c.fd, buf, n, 0);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
  }
  ERR_clear_error();
  int r = SSL_read(c.ssl, buf, static_cast<int>(n));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return -1;
    case SSL_ERROR_WANT_WRITE:
      want_write = true;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      return errno == 0 ? 0 : -2;  // EOF without close_notify counts as EOF
    default:
      ERR_clear_error();
      return -2;
  }
}

long Loop::write_raw(Connection& c, const char* buf, std::size_t n, bool& want_read) {
  want_read = false;
  if (c.ssl == nullptr) {
    for (;;) {
      auto r = ::send(c.fd, buf, n, MSG_NOSIGNAL);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
    }
  }
  ERR_clear_error();
  int r = SSL_write(c.ssl, buf, static_cast<int>(n));
  if (r > 0) return r;
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
      return -1;
    case SSL_ERROR_WANT_READ:
      want_read = true;
      return -1;
    default:
      ERR_clear_error();
      return -2;
  }
}

void Loop::read_requests(Connection& c) {
  const auto& limits = server_.options.limits;
  for (int i = 0; i < kReadsPerEvent && !c.closed && c.state == Connection::State::kReading; ++i) {
    bool want_write = false;
    long n = read_raw(c, scratch_.data(), scratch_.size(), want_write);
    if (n == -1) {
      set_interest(c, want_write ? EPOLLOUT : EPOLLIN);
      return;
    }
    if (n <= 0) {
      close(c);  // EOF (mid-request too: nothing to answer) or an error
      return;
    }
    if (!c.parser.in_progress()) set_deadline(c, Clock::now() + limits.request_timeout);
    c.parser.feed(std::string_view(scratch_.data(), static_cast<std::size_t>(n)));
    process_buffered(c);
  }
}

void Loop::process_buffered(Connection& c) {
  switch (c.parser.status()) {
    case RequestParser::Status::kComplete:
      dispatch(c);
      break;
    case RequestParser::Status::kError:
      server_.counters.protocol_errors++;
      error_response(c, c.parser.error_status(), c.parser.error_reason());
      break;
    case RequestParser::Status::kNeedMore:
      if (c.parser.expects_continue() && !c.continue_sent) {
        c.continue_sent = true;
        static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
        bool want_read = false;
        // A fresh connection's send buffer takes 25 bytes; if not, give up on the client.
        if (write_raw(c, k100.data(), k100.size(), want_read) != static_cast<long>(k100.size()))
          close(c);
      }
      break;
  }
}

void Loop::dispatch(Connection& c) {
  c.state = Connection::State::kHandling;
  c.continue_sent = false;
  set_deadline(c, std::nullopt);
  set_interest(c, 0);
  Request request = c.parser.take();
  c.keep_alive = request.keep_alive();
  c.head_request = request.method == "HEAD";
  request.connection_id = c.id;
  request.peer_address = c.peer;
  request.peer_port = c.peer_port;
  request.local_port = c.listener->port;
  request.tls = c.ssl != nullptr;
  request.sni = c.sni;
  request.peer_certificate = c.peer_certificate;
  request.received = Clock::now();
  server_.counters.requests++;
  auto pending = std::make_shared<detail::Pending>();
  pending->inbox = inbox_;
  pending->loop = this;
  pending->connection_id = c.id;
  pending->sequence = ++c.sequence;
  Responder responder(std::move(pending));
  if (server_.options.worker_threads > 0 &&
      !(server_.options.run_inline && server_.options.run_inline(request))) {
    auto task =
        std::make_shared<std::pair<Request, Responder>>(std::move(request), std::move(responder));
    bool queued = server_.enqueue([handler = &server_.handler, task] {
      try {
        (*handler)(std::move(task->first), std::move(task->second));
      } catch (...) {
        // The dropped Responder answers 500.
      }
    });
    if (!queued) {
      server_.counters.queue_full++;
      // The queued task's Responder is released here: mark it answered first.
      Response r = Response::text(503, "server busy\n");
      r.close = true;
      task->second.send(std::move(r));
    }
    return;
  }
  try {
    server_.handler(std::move(request), std::move(responder));
  } catch (...) {
    // The dropped Responder answers 500.
  }
}

void Loop::complete(std::uint64_t connection_id, std::uint64_t sequence, Response response) {
  Connection* c = find(connection_id);
  if (c == nullptr || c->state != Connection::State::kHandling || c->sequence != sequence) return;
  start_response(*c, std::move(response));
}

void Loop::complete_at(Clock::time_point when, std::uint64_t connection_id, std::uint64_t sequence,
                       Response response) {
  if (when <= Clock::now()) {
    complete(connection_id, sequence, std::move(response));
    return;
  }
  timers_.emplace(when, [this, connection_id, sequence,
                         r = std::make_shared<Response>(std::move(response))]() mutable {
    complete(connection_id, sequence, std::move(*r));
  });
}

void Loop::start_response(Connection& c, Response response) {
  c.response = std::move(response);
  auto& r = c.response;
  if (r.close || !c.keep_alive || stopping_) c.keep_alive = false;
  std::size_t full_length = r.shared_body      ? r.shared_body->size()
                            : r.body_parts     ? r.body_parts->size
                            : r.body_generator ? r.generated_length
                                               : r.body.size();
  c.out.clear();
  c.out.reserve(256);
  c.out += "HTTP/1.1 ";
  c.out += std::to_string(r.status);
  c.out += ' ';
  c.out += reason_phrase(r.status);
  c.out += "\r\n";
  for (const auto& h : r.headers) {
    if (h.name.empty() || !header_safe(h.name) || !header_safe(h.value)) continue;
    if (iequals(h.name, "Content-Length") || iequals(h.name, "Connection") ||
        iequals(h.name, "Transfer-Encoding"))
      continue;
    c.out += h.name;
    c.out += ": ";
    c.out += h.value;
    c.out += "\r\n";
  }
  const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  if (!no_body) {
    c.out += "Content-Length: ";
    c.out += std::to_string(full_length);
    c.out += "\r\n";
  }
  c.out += c.keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  c.out_offset = 0;
  c.body_length = (c.head_request || no_body) ? 0 : full_length;
  c.abort_after_body = false;
  if (r.close_after_body_bytes && *r.close_after_body_bytes < c.body_length) {
    c.body_length = *r.close_after_body_bytes;
    c.abort_after_body = true;
  }
  c.body_offset = 0;
  c.generated.clear();
  c.generated_offset = 0;
  c.part_index = 0;
  c.part_offset = 0;
  c.pace_left = r.pace_bytes;
  c.pace_waiting = false;
  c.tls_retry_length = 0;
  // A small in-memory body rides in the same write as the head.
  if (!r.shared_body && !r.body_parts && !r.body_generator && r.pace_bytes == 0 &&
      !c.abort_after_body && c.body_length <= 16 * 1024) {
    c.out.append(r.body, 0, c.body_length);
    c.body_length = 0;
    std::string().swap(r.body);
  }
  c.state = Connection::State::kWriting;
  set_deadline(c, Clock::now() + server_.options.limits.write_timeout);
  write_some(c);
}

void Loop::error_response(Connection& c, int status, std::string_view reason) {
  Response r = Response::text(status, std::string(reason) + "\n");
  r.close = true;
  c.keep_alive = false;
  c.head_request = false;
  c.state = Connection::State::kHandling;
  start_response(c, std::move(r));
}

void Loop::write_some(Connection& c) {
  auto& r = c.response;
  const auto write_timeout = server_.options.limits.write_timeout;
  std::size_t written = 0;  // this turn
  for (;;) {
    if (written >= kWriteBytesPerTurn && c.tls_retry_length == 0) {
      set_interest(c, EPOLLOUT);  // level-triggered: the next epoll_wait hands it back
      return;
    }
    const char* data = nullptr;
    std::size_t length = 0;
    bool is_body = false;
    // Parts go out by gathered writes on plain sockets; through TLS (no gathered write) or
    // paced, in chunks copied like a generated body.
    const bool gather = r.body_parts && c.ssl == nullptr && r.pace_bytes == 0;
    const bool chunked = r.body_generator || (r.body_parts && !gather);
    if (c.out_offset < c.out.size()) {
      data = c.out.data() + c.out_offset;
      length = c.out.size() - c.out_offset;
    } else if (c.body_offset < c.body_length) {
      is_body = true;
      length = c.body_length - c.body_offset;
      if (r.shared_body) {
        data = r.shared_body->data() + c.body_offset;
      } else if (gather) {
        // write_parts below
      } else if (chunked) {
        if (c.generated_offset >= c.generated.size()) {
          const std::size_t n = std::min(kGeneratedChunk, length);
          c.generated.resize(n);
          if (r.body_generator) {
            r.body_generator(c.body_offset, c.generated.data(), n);
          } else {
            copy_parts(c, c.generated.data(), n);
          }
          c.generated_offset = 0;
        }
        data = c.generated.data() + c.generated_offset;
        length = c.generated.size() - c.generated_offset;
      } else {
        data = r.body.data() + c.body_offset;
      }
      if (r.pace_bytes > 0) length = std::min(length, c.pace_left);
    } else {
      finish_response(c);
      return;
    }
    if (c.tls_retry_length > 0) length = c.tls_retry_length;
    length = std::min<std::size_t>(length, 1 << 30);
    bool want_read = false;
    long n = is_body && gather ? write_parts(c, length) : write_raw(c, data, length, want_read);
    if (n == -1) {
      if (c.ssl) c.tls_retry_length = length;
      set_interest(c, want_read ? EPOLLIN : EPOLLOUT);
      return;
    }
    if (n < 0) {
      close(c);
      return;
    }
    c.tls_retry_length = 0;
    const auto sent = static_cast<std::size_t>(n);
    written += sent;
    set_deadline(c, Clock::now() + write_timeout);
    if (!is_body) {
      c.out_offset += sent;
      continue;
    }
    c.body_offset += sent;
    if (chunked) c.generated_offset += sent;
    if (r.pace_bytes > 0) {
      c.pace_left -= sent;
      if (c.pace_left == 0 && c.body_offset < c.body_length) {
        // The pause is ours, not the client's: no write deadline while it lasts.
        c.pace_left = r.pace_bytes;
        c.pace_waiting = true;
        set_interest(c, 0);
        set_deadline(c, std::nullopt);
        timers_.emplace(Clock::now() + r.pace_interval, [this, id = c.id] {
          if (auto* conn = find(id); conn && conn->pace_waiting) {
            conn->pace_waiting = false;
            set_deadline(*conn, Clock::now() + server_.options.limits.write_timeout);
            write_some(*conn);
          }
        });
        return;
      }
    }
  }
}

long Loop::write_parts(Connection& c, std::size_t limit) {
  const auto& parts = c.response.body_parts->parts;
  std::array<iovec, kPartsPerWrite> iov;
  std::size_t count = 0;
  std::size_t total = 0;
  std::size_t offset = c.part_offset;
  for (std::size_t i = c.part_index; i < parts.size() && count < iov.size() && total < limit;
       ++i, offset = 0) {
    const std::size_t n = std::min(parts[i].size() - offset, limit - total);
    if (n == 0) continue;
    iov[count++] = iovec{const_cast<char*>(parts[i].data() + offset), n};
    total += n;
  }
  msghdr message{};
  message.msg_iov = iov.data();
  message.msg_iovlen = count;
  for (;;) {
    auto r = ::sendmsg(c.fd, &message, MSG_NOSIGNAL);
    if (r >= 0) {
      // Advance the cursor past what went out.
      std::size_t left = static_cast<std::size_t>(r);
      while (left > 0 && c.part_index < parts.size()) {
        const std::size_t take = std::min(left, parts[c.part_index].size() - c.part_offset);
        c.part_offset += take;
        left -= take;
        if (c.part_offset == parts[c.part_index].size()) {
          ++c.part_index;
          c.part_offset = 0;
        }
      }
      return r;
    }
    if (errno == EINTR) continue;
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
  }
}

void Loop::copy_parts(Connection& c, char* out, std::size_t n) {
  const auto& parts = c.response.body_parts->parts;
  while (n > 0 && c.part_index < parts.size()) {
    const std::string_view part = parts[c.part_index];
    const std::size_t take = std::min(n, part.size() - c.part_offset);
    std::memcpy(out, part.data() + c.part_offset, take);
    out += take;
    n -= take;
    c.part_offset += take;
    if (c.part_offset == part.size()) {
      ++c.part_index;
      c.part_offset = 0;
    }
  }
}

void Loop::release_body(Response& response) {
  if (server_.options.worker_threads == 0) return;
  // use_count() is a hint: if another holder lets go at the same time, one of the two
  // frees it, on whichever thread; the loop only avoids being the usual one.
  if (response.shared_body && response.shared_body.use_count() == 1) {
    server_.enqueue([body = std::move(response.shared_body)] {});
  }
  if (response.body_parts && response.body_parts.use_count() == 1) {
    server_.enqueue([body = std::move(response.body_parts)] {});
  }
}

void Loop::report_done(Response& response) {
  if (!response.on_done) return;
  auto done = std::move(response.on_done);
  response.on_done = nullptr;
  done();
}

void Loop::finish_response(Connection& c) {
  report_done(c.response);
  release_body(c.response);
  if (c.abort_after_body) {
    close(c);  // the fault mode: the peer sees a short body and a closed connection
    return;
  }
  c.response = Response{};
  std::string().swap(c.out);
  std::string().swap(c.generated);
  if (!c.keep_alive) {
    begin_drain(c);
    return;
  }
  c.state = Connection::State::kReading;
  if (c.parser.buffered_bytes() > 0) {
    // A pipelined request is already here.
    set_deadline(c, Clock::now() + server_.options.limits.request_timeout);
    set_interest(c, EPOLLIN);
    c.parser.feed({});
    process_buffered(c);
    return;
  }
  go_idle(c);
  if (c.ssl && SSL_pending(c.ssl) > 0) read_requests(c);
}

void Loop::go_idle(Connection& c) {
  c.parser.release_memory();
  set_interest(c, EPOLLIN);
  set_deadline(c, Clock::now() + server_.options.limits.idle_timeout);
}

void Loop::begin_drain(Connection& c) {
  // Half-close, then read and drop what the peer still sends until it closes: closing
  // with unread bytes would reset the connection and could destroy the answer in flight.
  if (c.ssl) {
    ERR_clear_error();
    SSL_shutdown(c.ssl);
    ERR_clear_error();
  }
  ::shutdown(c.fd, SHUT_WR);
  c.state = Connection::State::kDraining;
  set_interest(c, EPOLLIN);
  set_deadline(c, Clock::now() + kDrainTime);
  drain(c);
}

void Loop::drain(Connection& c) {
  for (int i = 0; i < kReadsPerEvent; ++i) {
    auto r = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
    if (r > 0) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close(c);
    return;
  }
}

void Loop::on_deadline(Connection& c) {
  using S = Connection::State;
  set_deadline(c, std::nullopt);
  switch (c.state) {
    case S::kReading:
      if (c.parser.in_progress()) {
        server_.counters.request_timeouts++;
        error_response(c, 408, "request not received in time");
      } else {
        server_.counters.idle_closed++;
        close(c);
      }
      break;
    case S::kWriting:
      server_.counters.write_timeouts++;
      close(c);
      break;
    case S::kHandshake:
      server_.counters.tls_failures++;
      close(c);
      break;
    case S::kDraining:
    case S::kHandling:
      close(c);
      break;
  }
}

void Loop::close(Connection& c) {
  if (c.closed) return;
  c.closed = true;
  report_done(c.response);
  release_body(c.response);
  set_deadline(c, std::nullopt);
  if (c.ssl) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  ::close(c.fd);  // also removes it from epoll
  c.fd = -1;
  server_.release(c.peer);
  if (server_.close_callback) server_.close_callback(c.id);
  dead_.push_back(c.id);
}

Server::Server(ServerOptions options, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  auto& limits = impl_->options.limits;
  impl_->options.loop_threads = std::max(1, impl_->options.loop_threads);
  impl_->options.worker_threads = std::max(0, impl_->options.worker_threads);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    const rlim_t wanted = static_cast<rlim_t>(limits.max_connections) + kReservedFds;
    if (impl_->options.raise_fd_limit && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < wanted) {
      rlimit raised = rl;
      raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, rl.rlim_max);
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    if (rl.rlim_cur != RLIM_INFINITY) {
      const rlim_t usable =
          rl.rlim_cur > 2 * kReservedFds ? rl.rlim_cur - kReservedFds : rl.rlim_cur / 2;
      limits.max_connections =
          std::min<std::size_t>(limits.max_connections, static_cast<std::size_t>(usable));
    }
  }
}

Server::~Server() {
  stop();
  for (auto& l : impl_->listeners)
    if (l.fd >= 0) ::close(l.fd);
}

std::expected<int, std::string> Server::listen(const std::string& address, int port,
                                               TlsContextProvider tls) {
  if (impl_->started) return std::unexpected("listen() after start()");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(address.empty() ? nullptr : address.c_str(), service.c_str(), &hints,
                           &result);
      rc != 0)
    return std::unexpected("cannot resolve " + address + ": " + gai_strerror(rc));
  std::string error = "no address";
  int fd = -1;
  for (auto* ai = result; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 4096) == 0) break;
    error = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(result);
  if (fd < 0) return std::unexpected("cannot listen on " + address + ":" + service + ": " + error);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = 0;
  peer_string(ss, bound);
  impl_->listeners.push_back({fd, bound, std::move(tls)});
  return bound;
}

void Server::on_close(CloseCallback callback) { impl_->close_callback = std::move(callback); }

void Server::start() {
  std::lock_guard lock(impl_->state_mutex);
  if (impl_->started) return;
  impl_->started = true;
  for (int i = 0; i < impl_->options.loop_threads; ++i)
    impl_->loops.push_back(std::make_unique<Loop>(*impl_));
  for (int i = 0; i < impl_->options.worker_threads; ++i)
    impl_->workers.emplace_back([impl = impl_.get()] {
      impl->name_thread(ServerOptions::ThreadKind::kWorker);
      impl->worker_main();
    });
  for (auto& loop : impl_->loops) loop->start();
}

void Server::stop() {
  {
    std::lock_guard lock(impl_->state_mutex);
    if (!impl_->started || impl_->stopped) {
      impl_->stopped = true;
      impl_->state_cv.notify_all();
      return;
    }
  }
  const auto grace_end = Clock::now() + impl_->options.stop_grace;
  for (auto& loop : impl_->loops) loop->begin_stop(grace_end);
  for (auto& loop : impl_->loops) loop->join();
  {
    std::lock_guard lock(impl_->work_mutex);
    impl_->workers_stop = true;
  }
  impl_->work_cv.notify_all();
  for (auto& t : impl_->workers) t.join();
  impl_->workers.clear();
  // Queued requests' Responders go now; their answers are dropped (the loops are gone).
  impl_->work.clear();
  impl_->loops.clear();
  std::lock_guard lock(impl_->state_mutex);
  impl_->stopped = true;
  impl_->state_cv.notify_all();
}

void Server::wait() {
  std::unique_lock lock(impl_->state_mutex);
  impl_->state_cv.wait(lock, [this] { return impl_->stopped; });
}

ServerStats Server::stats() const {
  const auto& k = impl_->counters;
  ServerStats s;
  s.connections = impl_->open_connections.load();
  s.accepted = k.accepted.load();
  s.requests = k.requests.load();
  s.rejected_connections = k.rejected.load();
  s.request_timeouts = k.request_timeouts.load();
  s.idle_closed = k.idle_closed.load();
  s.write_timeouts = k.write_timeouts.load();
  s.protocol_errors = k.protocol_errors.load();
  s.tls_handshake_failures = k.tls_failures.load();
  s.queue_full = k.queue_full.load();
  return s;
}

const ServerLimits& Server::limits() const { return impl_->options.limits; }

}  // namespace net
