// libcurl transport; why libcurl and not cpp-httplib, and why this handle layout:
// docs/transport.md. Each Connection has one easy handle and its own share handle holding
// its connection cache, so its keep-alive connection (and the Kerberos/NTLM context bound
// to it) is never handed to another Connection. Every transfer runs on one I/O thread
// (IoLoop: one multi handle driven by curl_multi_socket_action on epoll), so a request in
// flight holds no thread; round_trip is start() plus a wait. libcurl enforces the absolute
// deadline itself (CURLOPT_TIMEOUT_MS covers DNS, connect, TLS, send, receive), so there
// is no watchdog and no lock shared between targets across network I/O.
#include "winrm/transport.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "common/strings.h"
#include "common/thread_priority.h"
#include "winrm/name_lookups.h"

namespace winrm {
namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";
// libcurl refuses any single response header line longer than this (CURL_MAX_HTTP_HEADER).
constexpr std::size_t kCurlMaxHeaderLine = CURL_MAX_HTTP_HEADER;

using common::iequals;
using common::trim;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("curl_global_init failed");  // start-up, not I/O
    }
  });
}

// One parsed trust store per CA file, shared by every connection that uses it. Left to
// libcurl, each TLS connection parses the whole bundle into its own SSL_CTX: about 1 MB
// and a few ms of CPU per connection, 10 GB at 10,000 targets. X509_STORE is reference
// counted and locks internally, so SSL_CTXs on many threads may share one.
using SharedStore = std::shared_ptr<X509_STORE>;

SharedStore shared_trust_store(const std::string& ca_file) {
  struct Entry {
    std::filesystem::file_time_type mtime;
    std::uintmax_t size = 0;
    std::weak_ptr<X509_STORE> store;
  };
  static std::mutex mutex;
  static std::map<std::string, Entry> cache;
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(ca_file, ec);
  if (ec) return nullptr;
  const auto size = std::filesystem::file_size(ca_file, ec);
  if (ec) return nullptr;
  std::lock_guard lock(mutex);
  for (auto it = cache.begin(); it != cache.end();) {  // forget stores nobody uses
    it = it->second.store.expired() ? cache.erase(it) : std::next(it);
  }
  Entry& entry = cache[ca_file];
  if (auto store = entry.store.lock(); store && entry.mtime == mtime && entry.size == size) {
    return store;  // a changed file (CA rotation + reload) is parsed again
  }
  X509_STORE* raw = X509_STORE_new();
  if (raw == nullptr) return nullptr;
  if (X509_STORE_load_file(raw, ca_file.c_str()) != 1) {
    X509_STORE_free(raw);
    return nullptr;  // libcurl loads it itself and reports the error at handshake
  }
  // What libcurl 7.88 sets on the stores it builds (partial chains, trusted first).
  X509_STORE_set_flags(raw, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_TRUSTED_FIRST);
  SharedStore store(raw, X509_STORE_free);
  entry = Entry{mtime, size, store};
  return store;
}

// RFC 5929 section 4.1: the certificate's signature digest, upgraded to SHA-256 when it
// is MD5/SHA-1 or has none (e.g. Ed25519, RSA-PSS).
std::optional<std::string> end_point_hash(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (cert == nullptr) return std::nullopt;
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) == 0) md_nid = NID_undef;
  const EVP_MD* md = nullptr;
  if (md_nid != NID_undef && md_nid != NID_md5 && md_nid != NID_sha1) {
    md = EVP_get_digestbynid(md_nid);
  }
  if (md == nullptr) md = EVP_sha256();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const int ok = X509_digest(cert, md, digest, &digest_len);
  X509_free(cert);
  if (ok != 1) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(digest), digest_len);
}

bool is_tls_error(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// Masks both addresses to `bits` and compares them.
bool same_prefix(const unsigned char* a, const unsigned char* b, int bits) {
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    const unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

// host (an address) in entry ("addr" or "addr/bits") of the same family.
bool address_matches(std::string_view host, std::string_view entry) {
  unsigned char host_bytes[16];
  unsigned char entry_bytes[16];
  const std::string host_text(host);
  const int family = host_text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, host_text.c_str(), host_bytes) != 1) return false;
  const int max_bits = family == AF_INET6 ? 128 : 32;
  int bits = max_bits;
  const auto slash = entry.find('/');
  if (slash != std::string_view::npos) {
    const auto prefix = entry.substr(slash + 1);
    const auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
    if (ec != std::errc() || end != prefix.data() + prefix.size() || bits < 0 || bits > max_bits) {
      return false;
    }
    entry = entry.substr(0, slash);
  }
  if (entry.size() > 2 && entry.front() == '[' && entry.back() == ']') {
    entry = entry.substr(1, entry.size() - 2);
  }
  return inet_pton(family, std::string(entry).c_str(), entry_bytes) == 1 &&
         same_prefix(host_bytes, entry_bytes, bits);
}

class HttpConnection;
class NativeConnection;
// Defined with NativeConnection, below: what the loop needs of it.
void native_event(NativeConnection* connection, std::uint32_t events);
Clock::time_point timer_at_of(const NativeConnection* connection);
bool native_cancel_requested(const NativeConnection* connection);
void native_cancel(NativeConnection* connection);

thread_local bool t_on_io_thread = false;  // set once, by IoLoop::run

// Connection::round_trip for both transports: start() and a wait for its callback, refused on
// the I/O thread (it would wait for itself: a bug, reported rather than a hang).
Result<HttpResponse> wait_for_answer(Connection& connection, const HttpRequest& request,
                                     Deadline deadline, const std::string& where) {
  if (t_on_io_thread) {
    return make_error(ErrorKind::kTransport,
                      "blocking round trip on the winrm I/O thread " + where);
  }
  std::mutex mutex;
  std::condition_variable done;
  std::optional<Result<HttpResponse>> result;
  connection.start(request, deadline, [&](Result<HttpResponse> r) {
    std::lock_guard lock(mutex);  // notified under the lock: the waiter owns these
    result.emplace(std::move(r));
    done.notify_one();
  });
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return result.has_value(); });
  return std::move(*result);
}

// The thread that drives every transfer of the process (docs/transport.md, "I/O thread"):
// one multi handle on an epoll set, curl_multi_socket_action, so a wake-up touches only
// the sockets that are ready and a request in flight costs a socket, not a thread. It runs
// libcurl and the transport's callbacks only; results go back through each request's
// callback, which hands them to another thread. The multi handle owns no connection: each
// Connection keeps its own in its share handle's cache (create_handle).
class IoLoop {
 public:
  // Never destroyed: connections and their owners may outlive static destruction, and at
  // exit the thread sleeps in epoll_wait.
  static IoLoop& instance() {
    static IoLoop* const loop = new IoLoop();
    started_.store(true, std::memory_order_release);
    return *loop;
  }
  // Whether any handle can have been on the multi handle (a transfer started).
  static bool started() { return started_.load(std::memory_order_acquire); }

  void submit(HttpConnection* connection) { post(Item{connection, nullptr}); }
  void run_soon(std::function<void()> fn) { post(Item{nullptr, std::move(fn)}); }
  // Runs fn on this thread and waits for it; not from this thread (it would wait for itself).
  void run_and_wait(const std::function<void()>& fn) {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    run_soon([&] {
      fn();
      std::lock_guard lock(mutex);  // notified under the lock: the waiter owns these
      done = true;
      done_cv.notify_one();
    });
    std::unique_lock lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }

 private:
  struct Item {
    HttpConnection* connection;  // a transfer to add
    std::function<void()> fn;    // or something to run on this thread
  };

  IoLoop();
  static inline std::atomic<bool> started_{false};
  void post(Item item) {
    bool was_empty;
    {
      std::lock_guard lock(mutex_);
      was_empty = queue_.empty();
      queue_.push_back(std::move(item));
    }
    // The loop drains the whole queue after each wake-up, so one write per batch; none
    // from the loop itself (a chain resumed there), which drains again before it sleeps.
    if (was_empty && !t_on_io_thread) {
      const std::uint64_t one = 1;
      (void)!write(wake_fd_, &one, sizeof one);
    }
  }
  void run();
  void add(HttpConnection* connection);
  void drain_done();
  void finish(HttpConnection* connection, CURLcode code);
  void check_cancels();
  static int on_socket(CURL*, curl_socket_t socket, int what, void* self_ptr, void*);
  static int on_timer(CURLM*, long timeout_ms, void* self_ptr);

 public:
  // Every connection socket libcurl opens and closes passes here (the easy handles'
  // CURLOPT_OPENSOCKETFUNCTION and CURLOPT_CLOSESOCKETFUNCTION; both run on this thread):
  // a descriptor known open since we saw it created is the same socket, so its epoll
  // registration can be trusted and kept between transfers (on_socket).
  void socket_opened(int fd) { interest(fd) = Interest{0, false, true}; }
  void socket_closed(int fd) { interest(fd) = Interest{}; }  // close() drops it from epoll

  // Native connections (NativeConnection, loop thread only): their sockets in the same epoll
  // set, dispatched to them by descriptor, and their deadlines in a heap beside libcurl's
  // timer.
  void native_watch(int fd, NativeConnection* owner, std::uint32_t events) {
    Interest& state = interest(fd);
    state.native = owner;
    state.wanted = true;
    if (state.events != events) set_interest(fd, state, events);
  }
  void native_forget(int fd) { interest(fd) = Interest{}; }  // before close(fd)
  bool native_watching(int fd, std::uint32_t events) { return interest(fd).events == events; }
  // Calls the descriptor's connection again (as for EPOLLIN) after this wake-up's events:
  // data it already holds raises no event. A descriptor forgotten by then is skipped.
  void native_again(int fd) { again_.push_back(fd); }
  void timer_set(NativeConnection* connection, Clock::time_point at);
  void timer_cancel(NativeConnection* connection);

 private:
  // What epoll_fd_ holds for a descriptor (loop thread only).
  struct Interest {
    std::uint32_t events = 0;  // registered with these events; 0: not registered
    bool wanted = false;       // libcurl watches it now; registered and not wanted: parked
    bool connection = false;   // opened through socket_opened and not closed since
    NativeConnection* native = nullptr;  // a native connection's socket (NativeConnection)
  };
  Interest& interest(int fd) {
    const auto index = static_cast<std::size_t>(fd);
    if (index >= interest_.size()) interest_.resize(std::max(index + 1, interest_.size() * 2));
    return interest_[index];
  }
  void set_interest(int fd, Interest& state, std::uint32_t events);

  CURLM* multi_ = nullptr;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::mutex mutex_;
  std::vector<Item> queue_;  // guarded by mutex_
  // Loop thread only:
  // Transfers on the multi handle; each knows its index (no node allocated per request).
  std::vector<HttpConnection*> active_;
  std::optional<Clock::time_point> timer_at_;  // libcurl's timer (CURLMOPT_TIMERFUNCTION)
  std::vector<Interest> interest_;             // by descriptor
  Clock::time_point next_cancel_check_{};
  std::vector<NativeConnection*> timers_;  // min-heap on NativeConnection::timer_at_
  std::vector<int> again_;                 // native_again, for the next turn of the loop
  std::vector<int> again_now_;             // the turn being run
  void timer_sift_up(std::size_t index);
  void timer_sift_down(std::size_t index);
  void fire_timers();
  std::thread thread_;
};

class HttpConnection final : public Connection {
 public:
  HttpConnection(EndpointOptions options, std::shared_ptr<TransportCounters> counters)
      : options_(std::move(options)), counters_(std::move(counters)) {
    if (!counters_) counters_ = std::make_shared<TransportCounters>();
    global_init();
    url_ = options_.url();
    if (!options_.connect_address.empty() && options_.connect_address != options_.host) {
      // Empty HOST:PORT matches the URL's, so an IPv6 literal host needs no matching rules.
      const bool ipv6 = options_.connect_address.find(':') != std::string::npos;
      connect_to_line_ =
          "::" + (ipv6 ? "[" + options_.connect_address + "]" : options_.connect_address) + ":" +
          std::to_string(options_.port);
      connect_to_.data = connect_to_line_.data();
      connect_to_.next = nullptr;
    }
    if (!options_.proxy.empty() && !proxy_bypassed(options_.host, options_.no_proxy)) {
      proxy_ = options_.proxy;
    }
    if (options_.scheme == Scheme::kHttps && options_.insecure_skip_verify) {
      spdlog::warn("winrm: TLS certificate verification is DISABLED for {}:{} (insecure opt-in)",
                   options_.host, options_.port);
    }
    create_handle();
  }

  ~HttpConnection() override {
    destroy_handle();
    OPENSSL_cleanse(options_.proxy_password.data(), options_.proxy_password.size());
    OPENSSL_cleanse(options_.client_key_password.data(), options_.client_key_password.size());
  }

  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  Result<HttpResponse> round_trip(const HttpRequest& request, Deadline deadline) override {
    return wait_for_answer(*this, request, deadline, where());
  }

  void start(const HttpRequest& request, Deadline deadline, ResponseCallback on_done) override {
    // CURLOPT_TIMEOUT_MS 0 would mean "no limit".
    if (deadline - Clock::now() < std::chrono::milliseconds(1)) {
      on_done(make_error(ErrorKind::kTimeout, "deadline exceeded before sending " + where()));
      return;
    }
    if (cancel_requested()) {
      on_done(cancelled_error());
      return;
    }
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    build_header_list(request);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, header_nodes_.data());
    deadline_ = deadline;
    body_size_ = request.body.size();
    on_done_ = std::move(on_done);
    IoLoop::instance().submit(this);
  }

  // On the I/O thread: puts the transfer on the multi handle, or ends it when its deadline
  // passed (or shutdown began) while it waited in the loop's queue. False: ended.
  bool attach(CURLM* multi) {
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (remaining.count() < 1) {
      complete_with(
          make_error(ErrorKind::kTimeout,
                     "deadline exceeded before sending (queued for the I/O thread) " + where()));
      return false;
    }
    if (cancel_requested()) {
      complete_with(cancelled_error());
      return false;
    }
    // The time left now, not at start(): the queue wait counts against the deadline.
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(remaining, options_.connect_timeout).count()));
    response_ = HttpResponse{};
    // A WinRM answer has 4-6 header lines (8 with Negotiate): one allocation, not four
    // growth steps. The response moves to the caller, so each request needs its own.
    response_.headers.reserve(8);
    exchange_ = Exchange{};
    exchange_.response = &response_;
    counters_->requests++;
    counters_->bytes_sent += body_size_;
    if (curl_multi_add_handle(multi, curl_) != CURLM_OK) {
      exchange_.response = nullptr;
      complete_with(make_error(ErrorKind::kTransport, "cannot start the transfer " + where()));
      return false;
    }
    return true;
  }

  // On the I/O thread: the transfer ended (or the loop aborted it: cancel). Takes the
  // handle off the multi handle, classifies, and calls on_done last: after that the owner
  // may destroy this Connection.
  void complete(CURLM* multi, CURLcode code) {
    // Whether a connection went back to this Connection's cache for reuse; asked before the
    // handle leaves the multi handle, after which CURLINFO_ACTIVESOCKET cannot find it.
    curl_socket_t socket = CURL_SOCKET_BAD;
    const bool kept = curl_easy_getinfo(curl_, CURLINFO_ACTIVESOCKET, &socket) == CURLE_OK &&
                      socket != CURL_SOCKET_BAD;
    curl_multi_remove_handle(multi, curl_);
    exchange_.response = nullptr;
    count_connections();
    // An idle TLS connection keeps OpenSSL's 16.7 KB read buffer after a TLS 1.3 exchange
    // (SSL_MODE_RELEASE_BUFFERS, which libcurl sets, releases it after TLS 1.2 only; measured
    // with bench/conn-cost.sh: 73.5 KB of heap per idle connection, 56.2 KB with 1.2).
    // SSL_free_buffers frees both buffers when nothing is pending and does nothing otherwise.
    // The SSL* is the kept connection's: it lives in this Connection's own cache, which no
    // other handle touches.
    if (kept && code == CURLE_OK && exchange_.ssl != nullptr) SSL_free_buffers(exchange_.ssl);

    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
      response_.status = static_cast<int>(status);
      connected_ = kept;
      if (status == 407 && !proxy_.empty()) {  // absolute-URI (HTTP) request refused
        complete_with(make_error(ErrorKind::kTransport,
                                 "proxy authentication failed: HTTP 407 from the proxy " + where(),
                                 407));
        return;
      }
      complete_with(std::move(response_));
      return;
    }
    connected_ = false;
    Error error = classify(code, deadline_);
    // libcurl closes a connection after a failed transfer; should one survive (or the loop
    // cut the transfer short), the stream is in an unknown state: start over.
    if (kept) recreate_handle();
    complete_with(std::unexpected(std::move(error)));
  }

  // The I/O loop cuts a transfer short at shutdown (libcurl's progress callback only runs
  // while the transfer has socket activity or a timer).
  void mark_cancelled() { exchange_.cancelled = true; }
  std::size_t active_index = 0;  // in IoLoop::active_ (loop thread only)
  bool cancel_requested() const {
    return cancellable_ && options_.cancel && options_.cancel->load(std::memory_order_relaxed);
  }
  CURL* handle() const { return curl_; }

  std::uint64_t connection_id() const override { return connection_id_.load(); }

  std::optional<std::string> tls_server_end_point() const override {
    if (server_cert_der_.empty()) return std::nullopt;
    auto hash = end_point_hash(server_cert_der_);
    if (!hash) return std::nullopt;
    return "tls-server-end-point:" + *hash;
  }

  const EndpointOptions& endpoint() const override { return options_; }

  void close() override {
    connected_ = false;
    recreate_handle();
  }

  void set_cancellable(bool cancellable) override { cancellable_ = cancellable; }

  bool is_connected() const override { return connected_; }

 private:
  // State of the transfer in progress, shared with the callbacks.
  struct Exchange {
    HttpResponse* response = nullptr;
    long connects_seen = 0;        // CURLINFO_NUM_CONNECTS at the last pre-request callback
    bool request_started = false;  // connected (and TLS done), request about to be sent
    std::size_t header_bytes = 0;
    std::size_t header_count = 0;
    int interim_status = 0;  // status of the head being read, to skip 1xx heads
    bool in_head = false;
    bool head_done = false;
    bool header_overflow = false;
    bool header_count_overflow = false;
    bool body_overflow = false;
    bool cancelled = false;      // the progress callback aborted the transfer
    SSL* ssl = nullptr;          // the TLS connection the request went on (pre-request callback)
    std::size_t body_bytes = 0;  // received, also past the cap
  };

  std::unexpected<Error> cancelled_error() const {
    Error error{ErrorKind::kCancelled, "cancelled (shutting down) " + where()};
    error.cancelled = true;
    return std::unexpected(std::move(error));
  }

  void complete_with(Result<HttpResponse> result) {
    ResponseCallback on_done = std::exchange(on_done_, nullptr);
    on_done(std::move(result));  // the last touch of this object
  }

  // libcurl calls this about once a second while a transfer waits, more often while data
  // moves; non-zero aborts with CURLE_ABORTED_BY_CALLBACK.
  static int on_progress(void* self_ptr, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* self = static_cast<HttpConnection*>(self_ptr);
    if (!self->cancel_requested()) return 0;
    self->exchange_.cancelled = true;
    return 1;
  }

  bool proxy_tls() const { return proxy_.starts_with("https://"); }

  const std::string& connect_address() const {
    return options_.connect_address.empty() ? options_.host : options_.connect_address;
  }

  std::string where() const {
    return "(" + options_.host + " via " + connect_address() + ":" + std::to_string(options_.port) +
           (proxy_.empty() ? "" : " through proxy " + proxy_) + ")";
  }

  void recreate_handle() {
    destroy_handle();
    create_handle();
  }

  // The share handle goes after the easy handle that uses it; cleaning it up closes the
  // connection in its cache.
  // On the I/O thread: tearing a handle down can reach the multi handle (libcurl calls its
  // timer callback from curl_easy_cleanup, found by TSan in winrm_test_transport), which
  // only the I/O thread may touch. Other threads hand the teardown over and wait for it.
  void destroy_handle() {
    CURL* curl = std::exchange(curl_, nullptr);
    CURLSH* share = std::exchange(share_, nullptr);
    auto teardown = [curl, share] {
      curl_easy_cleanup(curl);
      curl_share_cleanup(share);
    };
    if (t_on_io_thread || !IoLoop::started()) {
      teardown();
      return;
    }
    IoLoop::instance().run_and_wait(teardown);
  }

  // Options that stay for the life of the handle; per-request ones are set in round_trip.
  void create_handle() {
    // This Connection's own connection cache (CURL_LOCK_DATA_CONNECT): without it a
    // connection would go back to the thread's multi handle after each transfer, where any
    // Connection to the same host and port (another session's, with other credentials
    // and another Kerberos/NTLM context) could pick it up. Used by one thread at a time,
    // so no lock callbacks.
    share_ = curl_share_init();
    if (share_ == nullptr ||
        curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
      curl_share_cleanup(share_);
      throw std::bad_alloc();
    }
    curl_ = curl_easy_init();
    if (curl_ == nullptr) throw std::bad_alloc();
    curl_easy_setopt(curl_, CURLOPT_SHARE, share_);
    curl_easy_setopt(curl_, CURLOPT_PRIVATE, this);  // the I/O loop's way back
    error_buffer_[0] = '\0';
    curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM; threaded resolver instead
    // A transfer that times out while getaddrinfo still runs would otherwise wait for it
    // (Curl_resolver_kill joins the resolver thread unless quick_exit is set): a DNS server
    // that never answers held a 1.5 s request for its whole 10 s stall (winrm_test_hostile).
    // With it the resolver thread is detached and frees its own data when getaddrinfo ends.
    curl_easy_setopt(curl_, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_buffer_);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 0L);
    // Only the configured proxy: "" disables http_proxy/https_proxy from the environment
    // and NOPROXY "" ignores no_proxy there (the bypass was decided in the constructor):
    // WinRM traffic (credentials, Kerberos) must go where the configuration says.
    curl_easy_setopt(curl_, CURLOPT_PROXY, proxy_.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "");
    if (!proxy_.empty()) {
      curl_easy_setopt(curl_, CURLOPT_PROXYTYPE,
                       static_cast<long>(proxy_tls() ? CURLPROXY_HTTPS : CURLPROXY_HTTP));
      if (proxy_tls()) {  // TLS to the proxy itself, always verified, with its own CAs
        curl_easy_setopt(curl_, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(curl_, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
        const std::string ca =
            !options_.proxy_ca_file.empty() ? options_.proxy_ca_file : std::string(kSystemCaBundle);
        curl_easy_setopt(curl_, CURLOPT_PROXY_CAINFO, ca.c_str());  // libcurl copies it
        curl_easy_setopt(curl_, CURLOPT_PROXY_CAPATH, static_cast<char*>(nullptr));
        curl_easy_setopt(curl_, CURLOPT_CA_CACHE_TIMEOUT, 0L);  // see the HTTPS branch below
      }
      // HTTPS: a CONNECT tunnel; HTTP: absolute-URI requests through the proxy (no tunnel).
      curl_easy_setopt(curl_, CURLOPT_HTTPPROXYTUNNEL, options_.scheme == Scheme::kHttps ? 1L : 0L);
      // The CONNECT answer's head must not reach on_header as if it were the response's.
      curl_easy_setopt(curl_, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
      if (!options_.proxy_username.empty()) {
        curl_easy_setopt(curl_, CURLOPT_PROXYAUTH, static_cast<long>(CURLAUTH_BASIC));
        curl_easy_setopt(curl_, CURLOPT_PROXYUSERNAME, options_.proxy_username.c_str());
        curl_easy_setopt(curl_, CURLOPT_PROXYPASSWORD, options_.proxy_password.c_str());
      }
    }
    curl_easy_setopt(curl_, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(curl_, CURLOPT_HTTP09_ALLOWED, 0L);
    curl_easy_setopt(curl_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "winrm_exporter");
    curl_easy_setopt(curl_, CURLOPT_VERBOSE, 0L);  // verbose output would show Authorization
    curl_easy_setopt(curl_, CURLOPT_MAXCONNECTS, 1L);
    // Refuses an announced Content-Length over the cap before any body is read.
    curl_easy_setopt(curl_, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options_.max_response_bytes));
    if (!connect_to_line_.empty()) curl_easy_setopt(curl_, CURLOPT_CONNECT_TO, &connect_to_);
    if (options_.scheme == Scheme::kHttps && !options_.client_cert_file.empty()) {
      curl_easy_setopt(curl_, CURLOPT_SSLCERT, options_.client_cert_file.c_str());
      curl_easy_setopt(curl_, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(curl_, CURLOPT_SSLKEY, options_.client_key_file.c_str());
      curl_easy_setopt(curl_, CURLOPT_SSLKEYTYPE, "PEM");
      if (!options_.client_key_password.empty()) {
        curl_easy_setopt(curl_, CURLOPT_KEYPASSWD, options_.client_key_password.c_str());
      }
    }
    if (options_.scheme == Scheme::kHttps) {
      // libcurl 7.88 caches a CA store in the multi handle, keyed by the CAINFO name only
      // (openssl.c get_cached_x509_store), and puts it into the next SSL_CTX after our
      // SSL_CTX callback ran. With one multi handle per thread, a Connection with no CAINFO
      // (our shared store) would be verified against another Connection's CAs. Off: each
      // connection uses the store this Connection chose (shared_trust_store does the caching).
      curl_easy_setopt(curl_, CURLOPT_CA_CACHE_TIMEOUT, 0L);
      if (options_.insecure_skip_verify) {
        curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, 0L);
      } else {
        const std::string ca_file = !options_.ca_file.empty() ? options_.ca_file
                                    : std::filesystem::exists(kSystemCaBundle)
                                        ? std::string(kSystemCaBundle)
                                        : std::string();
        // Not with a TLS proxy: the SSL_CTX callback would also set the proxy's CAs.
        if (!ca_file.empty() && !trust_store_ && !proxy_tls()) {
          trust_store_ = shared_trust_store(ca_file);
        }
        if (trust_store_) {
          // No CA for libcurl to load; the shared store goes into each new SSL_CTX.
          curl_easy_setopt(curl_, CURLOPT_CAINFO, static_cast<char*>(nullptr));
          curl_easy_setopt(curl_, CURLOPT_CAPATH, static_cast<char*>(nullptr));
          curl_easy_setopt(curl_, CURLOPT_SSL_CTX_FUNCTION, &HttpConnection::on_ssl_ctx);
          curl_easy_setopt(curl_, CURLOPT_SSL_CTX_DATA, this);
        } else if (!ca_file.empty()) {
          curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file.c_str());
          curl_easy_setopt(curl_, CURLOPT_CAPATH,
                           static_cast<char*>(nullptr));  // only the configured CAs
        }                                                 // else libcurl's built-in default
      }
    }
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &HttpConnection::on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpConnection::on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl_, CURLOPT_OPENSOCKETFUNCTION, &HttpConnection::on_open_socket);
    curl_easy_setopt(curl_, CURLOPT_CLOSESOCKETFUNCTION, &HttpConnection::on_close_socket);
    curl_easy_setopt(curl_, CURLOPT_PREREQFUNCTION, &HttpConnection::on_request_start);
    curl_easy_setopt(curl_, CURLOPT_PREREQDATA, this);
    if (options_.cancel) {  // only then: the callback costs a call per loop of libcurl's
      curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &HttpConnection::on_progress);
      curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, this);
      curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    }
  }

  // Builds the request's header list in reused buffers: no allocation once the
  // capacities have grown to the usual request.
  void build_header_list(const HttpRequest& request) {
    const std::size_t count = 3 + request.headers.size();
    if (header_lines_.size() < count) header_lines_.resize(count);
    header_lines_[0].assign("Content-Type: ").append(request.content_type);
    header_lines_[1].assign("Accept-Encoding: identity");  // no compression bombs
    header_lines_[2].assign("Expect:");                    // no 100-continue round trip
    for (std::size_t i = 0; i < request.headers.size(); ++i) {
      const auto& [name, value] = request.headers[i];
      header_lines_[3 + i].assign(name).append(": ").append(value);
    }
    header_nodes_.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
      header_nodes_[i].data = header_lines_[i].data();
      header_nodes_[i].next = i + 1 < count ? &header_nodes_[i + 1] : nullptr;
    }
  }

  // libcurl's own socket(), plus close-on-exec; the loop learns which descriptors are
  // connection sockets (IoLoop::on_socket). Transfers and teardowns run on the I/O thread.
  static curl_socket_t on_open_socket(void*, curlsocktype, curl_sockaddr* address) {
    const int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    if (t_on_io_thread) IoLoop::instance().socket_opened(fd);
    return fd;
  }
  static int on_close_socket(void*, curl_socket_t fd) {
    if (t_on_io_thread) IoLoop::instance().socket_closed(fd);
    return ::close(fd);
  }

  // After connect (and TLS handshake), before the request is sent; again for every
  // connection libcurl opens while retrying a dead reused one.
  static int on_request_start(void* self_ptr, char*, char*, int, int) {
    auto* self = static_cast<HttpConnection*>(self_ptr);
    auto& x = self->exchange_;
    x.request_started = true;
    long connects = 0;
    curl_easy_getinfo(self->curl_, CURLINFO_NUM_CONNECTS, &connects);
    if (connects > x.connects_seen) {
      x.connects_seen = connects;
      self->connection_id_++;
      if (self->options_.scheme == Scheme::kHttps) self->keep_server_certificate();
    }
    if (self->options_.scheme == Scheme::kHttps) {
      curl_tlssessioninfo* info = nullptr;
      if (curl_easy_getinfo(self->curl_, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK &&
          info != nullptr && info->backend == CURLSSLBACKEND_OPENSSL) {
        x.ssl = static_cast<SSL*>(info->internals);
      }
    }
    return CURL_PREREQFUNC_OK;
  }

  static CURLcode on_ssl_ctx(CURL*, void* ssl_ctx, void* self_ptr) {
    auto* self = static_cast<HttpConnection*>(self_ptr);
    SSL_CTX_set1_cert_store(static_cast<SSL_CTX*>(ssl_ctx), self->trust_store_.get());
    return CURLE_OK;
  }

  // The SSL* is only reachable while the connection is attached to the transfer.
  void keep_server_certificate() {
    curl_tlssessioninfo* info = nullptr;
    if (curl_easy_getinfo(curl_, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || info == nullptr ||
        info->backend != CURLSSLBACKEND_OPENSSL || info->internals == nullptr) {
      server_cert_der_.clear();
      return;
    }
    X509* cert = SSL_get1_peer_certificate(static_cast<SSL*>(info->internals));
    server_cert_der_.clear();
    if (cert == nullptr) return;
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert, &der);
    if (len > 0) server_cert_der_.assign(reinterpret_cast<const char*>(der), len);
    OPENSSL_free(der);
    X509_free(cert);
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<HttpConnection*>(self_ptr);
    auto& x = self->exchange_;
    const std::size_t len = size * count;
    x.header_bytes += len;
    if (x.header_bytes > self->options_.max_header_bytes) {
      x.header_overflow = true;
      return 0;
    }
    const std::string_view line(data, len);
    if (x.head_done) return len;  // chunked trailers: bounded above, otherwise ignored
    if (!x.in_head) {             // status line of a (possibly 1xx) response head
      x.in_head = true;
      x.response->headers.clear();
      x.interim_status = 0;
      const auto space = line.find(' ');
      if (space != std::string_view::npos) {
        const auto code = line.substr(space + 1, 3);
        std::from_chars(code.data(), code.data() + code.size(), x.interim_status);
      }
      return len;
    }
    if (trim(line).empty()) {  // end of this head
      x.in_head = false;
      if (x.interim_status < 100 || x.interim_status >= 200) x.head_done = true;
      return len;
    }
    if (++x.header_count > self->options_.max_header_count) {
      x.header_count_overflow = true;
      return 0;
    }
    auto& headers = x.response->headers;
    if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
      headers.back().second.append(" ").append(trim(line));  // obsolete line folding
      return len;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return len;
    const auto name = trim(line.substr(0, colon));
    const auto value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      std::size_t length = 0;
      std::from_chars(value.data(), value.data() + value.size(), length);
      x.response->body.reserve(std::min(length, self->options_.max_response_bytes));
    }
    headers.emplace_back(name, value);
    return len;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<HttpConnection*>(self_ptr);
    auto& x = self->exchange_;
    const std::size_t len = size * count;
    x.body_bytes += len;
    self->counters_->bytes_received += len;
    if (x.response->body.size() + len > self->options_.max_response_bytes) {
      x.body_overflow = true;
      return 0;
    }
    x.response->body.append(data, len);
    return len;
  }

  void count_connections() {
    long connects = 0;
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &connects);
    if (connects <= 0) return;
    const auto opened = static_cast<std::uint64_t>(connects);
    counters_->connections_opened += opened;
    counters_->reconnects += ever_connected_ ? opened : opened - 1;
    ever_connected_ = true;
    if (options_.scheme == Scheme::kHttps) counters_->tls_handshakes += opened;
  }

  std::string phase() const {
    const auto& x = exchange_;
    if (!x.request_started) {
      // NUM_CONNECTS counts TCP connections once established, before TLS.
      long tcp_connected = 0;
      curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &tcp_connected);
      return tcp_connected > 0 && options_.scheme == Scheme::kHttps ? "TLS handshake" : "connect";
    }
    // libcurl hands over complete lines only, so a trickled status line shows up here.
    if (x.header_bytes == 0) return "waiting for response (no complete status line)";
    if (!x.head_done) {
      return "reading response headers (" + std::to_string(x.header_bytes) + " bytes received)";
    }
    return "reading response body (" + std::to_string(x.body_bytes) + " bytes received)";
  }

  int status_if_known() const {
    if (!exchange_.head_done) return 0;
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    return static_cast<int>(status);
  }

  Error classify(CURLcode code, Deadline deadline) const {
    const auto& x = exchange_;
    const std::string detail = error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(code);
    const int status = status_if_known();
    if (x.header_overflow || (code == CURLE_OUT_OF_MEMORY && !x.head_done &&
                              options_.max_header_bytes <= kCurlMaxHeaderLine)) {
      return Error{ErrorKind::kTransport,
                   "response headers exceed " + std::to_string(options_.max_header_bytes) +
                       " bytes (max_header_bytes) " + where(),
                   status, std::nullopt, Limit::kHeaderBytes};
    }
    if (code == CURLE_OUT_OF_MEMORY && !x.head_done) {
      return Error{ErrorKind::kTransport,
                   "a response header line exceeds " + std::to_string(kCurlMaxHeaderLine) +
                       " bytes " + where(),
                   0, std::nullopt, Limit::kHeaderLine};
    }
    if (x.header_count_overflow) {
      return Error{ErrorKind::kTransport,
                   "response has more than " + std::to_string(options_.max_header_count) +
                       " header lines (max_header_count) " + where(),
                   0, std::nullopt, Limit::kHeaderCount};
    }
    if (code == CURLE_ABORTED_BY_CALLBACK && x.cancelled) {
      Error error{ErrorKind::kCancelled,
                  "cancelled (shutting down) during " + phase() + " " + where(), status};
      error.cancelled = true;
      return error;
    }
    if (x.body_overflow || code == CURLE_FILESIZE_EXCEEDED) {
      return Error{ErrorKind::kTransport,
                   "response exceeds " + std::to_string(options_.max_response_bytes) + " bytes",
                   status, std::nullopt, Limit::kResponseBytes};
    }
    // The timer may fire a little early or the peer may give up at the same moment: a
    // failure that close to the deadline is the deadline, and is never retried.
    constexpr auto kTimerSlack = std::chrono::milliseconds(20);
    if (code == CURLE_OPERATION_TIMEDOUT || Clock::now() + kTimerSlack >= deadline) {
      return Error{ErrorKind::kTimeout, "deadline exceeded during " + phase() + " " + where(),
                   status, std::nullopt};
    }
    if (!proxy_.empty()) {
      long connect_code = 0;
      curl_easy_getinfo(curl_, CURLINFO_HTTP_CONNECTCODE, &connect_code);
      if (connect_code >= 300) {  // the proxy answered the CONNECT with an error
        return Error{
            ErrorKind::kTransport,
            "proxy refused the CONNECT tunnel: HTTP " + std::to_string(connect_code) +
                // tinyproxy answers a failed Basic check with 401, not 407
                (connect_code == 407 || connect_code == 401 ? " (proxy authentication failed)"
                                                            : "") +
                " " + where(),
            static_cast<int>(connect_code), std::nullopt};
      }
      if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_PROXY) {
        return Error{ErrorKind::kTransport, "proxy unreachable: " + detail + " " + where(), 0,
                     std::nullopt};
      }
    }
    if (proxy_tls() && is_tls_error(code)) {
      long connect_code = 0;
      curl_easy_getinfo(curl_, CURLINFO_HTTP_CONNECTCODE, &connect_code);
      // Before a CONNECT answer (or with no tunnel at all) the only TLS is the proxy's.
      if (options_.scheme == Scheme::kHttp || connect_code == 0) {
        long verify = X509_V_OK;
        curl_easy_getinfo(curl_, CURLINFO_PROXY_SSL_VERIFYRESULT, &verify);
        std::string what = "TLS to the proxy: " + detail;
        if (verify != X509_V_OK) {
          what = std::string("TLS to the proxy: certificate verification failed: ") +
                 X509_verify_cert_error_string(verify);
        }
        return Error{ErrorKind::kTls, what + " " + where(), 0, std::nullopt};
      }
    }
    if (is_tls_error(code)) {
      long verify = X509_V_OK;
      curl_easy_getinfo(curl_, CURLINFO_SSL_VERIFYRESULT, &verify);
      std::string what = "TLS: " + detail;
      if (code == CURLE_PEER_FAILED_VERIFICATION && verify != X509_V_OK) {
        what = std::string("TLS certificate verification failed: ") +
               X509_verify_cert_error_string(verify);
      }
      return Error{ErrorKind::kTls, what + " " + where(), 0, std::nullopt};
    }
    std::string what;
    switch (code) {
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_WEIRD_SERVER_REPLY:
        what = "not an HTTP/1.x response: ";
        break;
      case CURLE_PARTIAL_FILE:
        what = "response body cut short: ";
        break;
      case CURLE_GOT_NOTHING:
        what = "connection closed without a response: ";
        break;
      default:
        break;
    }
    return Error{ErrorKind::kTransport, what + detail + " " + where(), status, std::nullopt};
  }

  EndpointOptions options_;
  std::shared_ptr<TransportCounters> counters_;
  std::string url_;
  SharedStore trust_store_;  // HTTPS with verification: shared parsed CA bundle
  std::string connect_to_line_;
  curl_slist connect_to_{};
  CURLSH* share_ = nullptr;  // holds this Connection's connection cache (create_handle)
  CURL* curl_ = nullptr;
  char error_buffer_[CURL_ERROR_SIZE];
  std::vector<std::string> header_lines_;
  std::vector<curl_slist> header_nodes_;
  Exchange exchange_;
  HttpResponse response_;  // of the transfer in progress
  Deadline deadline_{};
  std::size_t body_size_ = 0;
  ResponseCallback on_done_;
  std::atomic<std::uint64_t> connection_id_{0};
  bool ever_connected_ = false;
  bool connected_ = false;
  bool cancellable_ = true;  // see Connection::set_cancellable
  std::string server_cert_der_;
  std::string proxy_;  // the proxy URL when one applies to this host, else ""
};

// ---------------------------------------------------------------------------------------
// Native transport for direct connections (docs/transport.md, "Native transport"): one
// non-blocking socket and, for HTTPS, one OpenSSL SSL per kept connection, driven by the
// I/O thread's epoll set like libcurl's sockets. No easy handle, share handle, per-
// connection SSL_CTX or download buffer: at 10,000 hosts libcurl cost ~57 KB and ~234 us
// of I/O-thread CPU per request; this path keeps an SSL object, the socket and this class.
// Everything below runs on the I/O thread, except start()/round_trip() (which only queue
// the request) and the teardown hand-over of close() and the destructor.

// libcurl's limit on one response header line (CURL_MAX_HTTP_HEADER), kept for the same
// error and bound.
constexpr std::size_t kMaxHeaderLine = 100 * 1024;

// A BIO on our non-blocking socket that sends with MSG_NOSIGNAL: OpenSSL's socket BIO uses
// write(), which raises SIGPIPE when the peer reset the connection.
BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "winrm socket");
    if (m == nullptr) throw std::bad_alloc();
    BIO_meth_set_write(m, [](BIO* bio, const char* data, int size) -> int {
      BIO_clear_retry_flags(bio);
      const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
      const ssize_t n = ::send(fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(bio);
      }
      return static_cast<int>(n);
    });
    BIO_meth_set_read(m, [](BIO* bio, char* data, int size) -> int {
      BIO_clear_retry_flags(bio);
      const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
      const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(size), 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(bio);
      }
      return static_cast<int>(n);
    });
    BIO_meth_set_ctrl(
        m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    BIO_meth_set_create(m, [](BIO* bio) -> int {
      BIO_set_init(bio, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

// One SSL_CTX per distinct TLS configuration (trust store, verification on or off), shared
// by every connection that uses it (libcurl 7.88 built one per connection, ~7 KB each).
// Client certificates are not in it: they are loaded into each SSL at its handshake.
using SharedCtx = std::shared_ptr<SSL_CTX>;

struct CtxCache {
  std::mutex mutex;
  std::map<std::pair<X509_STORE*, bool>, std::weak_ptr<SSL_CTX>> entries;  // guarded by mutex
};
CtxCache& ctx_cache() {
  static CtxCache* const cache = new CtxCache();  // never destroyed (connections may outlive it)
  return *cache;
}

SharedCtx shared_ssl_ctx(const SharedStore& store, bool verify) {
  std::lock_guard lock(ctx_cache().mutex);
  auto& cache = ctx_cache().entries;
  for (auto it = cache.begin(); it != cache.end();) {
    it = it->second.expired() ? cache.erase(it) : std::next(it);
  }
  auto& entry = cache[{store.get(), verify}];
  if (auto ctx = entry.lock()) return ctx;
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (raw == nullptr) return nullptr;
  // No SSL_MODE_RELEASE_BUFFERS: it frees and reallocates the read buffer around every
  // record; the buffers are freed once per answer instead (SSL_free_buffers at park).
  SSL_CTX_set_mode(raw, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read-ahead: one recv fills OpenSSL's read buffer with whatever arrived (several records)
  // instead of two per record (the 5-byte header, then the body). Bytes it buffered are
  // invisible to epoll, SSL_pending and MSG_PEEK: receive() and alive() ask SSL_has_pending.
  SSL_CTX_set_read_ahead(raw, 1);
  // A peer that closes without close_notify ends the stream like EOF (libcurl does the same):
  // framing (Content-Length, chunked) still tells a cut-short body.
  SSL_CTX_set_options(raw, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  if (verify) {
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
    if (store) {
      SSL_CTX_set1_cert_store(raw, store.get());
    } else {
      SSL_CTX_set_default_verify_paths(raw);
    }
  } else {
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  }
  // The context keeps the shared_ptr of its store, so shared_trust_store keeps finding
  // (not re-parsing) the bundle while any connection uses it.
  SharedCtx ctx(raw, [store](SSL_CTX* c) { SSL_CTX_free(c); });
  entry = ctx;
  return ctx;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

std::string openssl_error_text() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "handshake failed";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// Case-insensitive substring test for header values ("chunked", "close").
bool icontains(std::string_view text, std::string_view word) {
  if (word.size() > text.size()) return false;
  for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (iequals(text.substr(i, word.size()), word)) return true;
  }
  return false;
}

// One name lookup, shared with its resolver thread: the loop abandons it when the request
// ends first (deadline, shutdown, close), queued or running.
struct Lookup {
  NativeConnection* connection;
  std::string name;
  int port = 0;
  bool abandoned = false;  // loop thread only
};

void native_resolved(NativeConnection* connection, std::vector<sockaddr_storage> addresses,
                     const std::string& failure);

// The native transport's name lookups: getaddrinfo on a thread each (never on the I/O
// thread), at most kMaxNameLookups at once. Without a cap a DNS outage at 10,000 named hosts
// would start a thread per reconnect, each held for the resolver's timeouts and retries
// (resolv.conf: 5 s x 2 attempts per server). The others wait in FIFO order; a queued
// lookup's request keeps its connect deadline (its timer), and one abandoned while queued
// starts no thread. Names only: numeric and *.localhost addresses never come here.
// 64 at once: a 50 ms DNS still answers 1,280 lookups/s, 4,096 first polls in ~3 s, under
// the 5 s connect timeout. Loop thread only, but for the counters.
constexpr std::size_t kMaxNameLookups = 64;

class NameLookups {
 public:
  static NameLookups& instance() {
    static NameLookups* const lookups = new NameLookups();  // never destroyed, like the loop
    return *lookups;
  }

  void submit(std::shared_ptr<Lookup> lookup) {
    queue_.push_back(std::move(lookup));
    start_queued();
  }

  NameLookupStats stats() const {
    return {running_.load(std::memory_order_relaxed), queued_.load(std::memory_order_relaxed),
            kMaxNameLookups};
  }

 private:
  void start_queued() {
    while (running_.load(std::memory_order_relaxed) < kMaxNameLookups && !queue_.empty()) {
      std::shared_ptr<Lookup> lookup = std::move(queue_.front());
      queue_.pop_front();
      if (lookup->abandoned) continue;
      try {
        std::thread([this, lookup] { resolve(lookup); }).detach();
        running_.fetch_add(1, std::memory_order_relaxed);
      } catch (const std::system_error&) {
        // Kind unchanged from a failed lookup: "Could not resolve host" (kTransport).
        native_resolved(lookup->connection, {}, "cannot start a name lookup thread");
      }
    }
    queued_.store(queue_.size(), std::memory_order_relaxed);
  }

  // On the lookup's own thread.
  void resolve(const std::shared_ptr<Lookup>& lookup) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc =
        getaddrinfo(lookup->name.c_str(), std::to_string(lookup->port).c_str(), &hints, &found);
    std::vector<sockaddr_storage> addresses;
    for (addrinfo* a = found; rc == 0 && a != nullptr; a = a->ai_next) {
      if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage storage{};
      std::memcpy(&storage, a->ai_addr, a->ai_addrlen);
      addresses.push_back(storage);
    }
    if (found != nullptr) freeaddrinfo(found);
    std::string failure = rc != 0 ? gai_strerror(rc) : "no address";
    IoLoop::instance().run_soon(
        [this, lookup, addresses = std::move(addresses), failure = std::move(failure)]() mutable {
          running_.fetch_sub(1, std::memory_order_relaxed);
          if (!lookup->abandoned) {
            lookup->abandoned = true;  // answered: a later abandon is a no-op
            native_resolved(lookup->connection, std::move(addresses), failure);
          }
          start_queued();
        });
  }

  std::deque<std::shared_ptr<Lookup>> queue_;  // loop thread only
  std::atomic<std::size_t> running_{0};        // threads started and not yet handed back
  std::atomic<std::size_t> queued_{0};         // queue_.size(), for stats()
};

class NativeConnection final : public Connection {
 public:
  NativeConnection(EndpointOptions options, std::shared_ptr<TransportCounters> counters)
      : options_(std::move(options)), counters_(std::move(counters)) {
    if (!counters_) counters_ = std::make_shared<TransportCounters>();
    where_ = "(" + options_.host + " via " + connect_address() + ":" +
             std::to_string(options_.port) + ")";
    const bool ipv6_host = options_.host.find(':') != std::string::npos;
    const bool default_port = (options_.scheme == Scheme::kHttps && options_.port == 443) ||
                              (options_.scheme == Scheme::kHttp && options_.port == 80);
    // What libcurl sends: the port only when it is not the scheme's default.
    host_header_ = (ipv6_host ? "[" + options_.host + "]" : options_.host) +
                   (default_port ? "" : ":" + std::to_string(options_.port));
    // A numeric connect address needs no lookup (the usual case: no thread, no delay).
    numeric_ = numeric_address(connect_address(), options_.port);
    if (options_.scheme == Scheme::kHttps) {
      if (options_.insecure_skip_verify) {
        spdlog::warn("winrm: TLS certificate verification is DISABLED for {}:{} (insecure opt-in)",
                     options_.host, options_.port);
        ctx_ = shared_ssl_ctx(nullptr, false);
      } else {
        const std::string ca_file = !options_.ca_file.empty() ? options_.ca_file
                                    : std::filesystem::exists(kSystemCaBundle)
                                        ? std::string(kSystemCaBundle)
                                        : std::string();
        SharedStore store;
        if (!ca_file.empty()) {
          store = shared_trust_store(ca_file);
          if (!store) ca_error_ = "TLS: cannot load the CA file " + ca_file;
        }
        if (ca_error_.empty()) ctx_ = shared_ssl_ctx(store, true);
      }
    }
  }

  ~NativeConnection() override {
    teardown();
    OPENSSL_cleanse(options_.client_key_password.data(), options_.client_key_password.size());
  }
  NativeConnection(const NativeConnection&) = delete;
  NativeConnection& operator=(const NativeConnection&) = delete;

  Result<HttpResponse> round_trip(const HttpRequest& request, Deadline deadline) override {
    return wait_for_answer(*this, request, deadline, where_);
  }

  void start(const HttpRequest& request, Deadline deadline, ResponseCallback on_done) override {
    if (deadline - Clock::now() < std::chrono::milliseconds(1)) {
      on_done(make_error(ErrorKind::kTimeout, "deadline exceeded before sending " + where_));
      return;
    }
    if (cancel_requested()) {
      on_done(cancelled_error(""));
      return;
    }
    request_ = &request;
    deadline_ = deadline;
    on_done_ = std::move(on_done);
    IoLoop::instance().run_soon([this] { begin(); });
  }

  std::uint64_t connection_id() const override { return connection_id_.load(); }

  std::optional<std::string> tls_server_end_point() const override {
    if (server_cert_der_.empty()) return std::nullopt;
    auto hash = end_point_hash(server_cert_der_);
    if (!hash) return std::nullopt;
    return "tls-server-end-point:" + *hash;
  }

  const EndpointOptions& endpoint() const override { return options_; }

  void close() override {
    connected_ = false;
    teardown();
  }

  bool is_connected() const override { return connected_; }

  void set_cancellable(bool cancellable) override { cancellable_ = cancellable; }

  bool cancel_requested() const {
    return cancellable_ && options_.cancel && options_.cancel->load(std::memory_order_relaxed);
  }

  // --- I/O thread ------------------------------------------------------------------------

  void on_event(std::uint32_t events) {
    switch (state_) {
      case State::kConnecting:
        // A stale event of a descriptor number closed and reused in the same wake-up.
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) on_connected();
        break;
      case State::kHandshaking:
        handshake();
        break;
      case State::kSending:
        send_request();
        break;
      case State::kReceiving:
        receive();
        break;
      default:
        parked_event(events);
        break;
    }
  }

  void on_timer() {
    fail(Error{ErrorKind::kTimeout, "deadline exceeded during " + phase() + " " + where_,
               status_if_known(), std::nullopt});
  }

  void on_cancel() {
    Error error{ErrorKind::kCancelled, "cancelled (shutting down) during " + phase() + " " + where_,
                status_if_known()};
    error.cancelled = true;
    fail(std::move(error));
  }

  friend void native_resolved(NativeConnection* connection, std::vector<sockaddr_storage> addresses,
                              const std::string& failure);

  Clock::time_point timer_at_{};
  std::size_t heap_index_ = kNotInHeap;
  static constexpr std::size_t kNotInHeap = static_cast<std::size_t>(-1);

 private:
  enum class State { kIdle, kResolving, kConnecting, kHandshaking, kSending, kReceiving, kParked };
  enum class Body { kNone, kLength, kChunkSize, kChunkData, kChunkEnd, kTrailers, kUntilClose };
  enum class Feed { kMore, kDone, kFailed };

  const std::string& connect_address() const {
    return options_.connect_address.empty() ? options_.host : options_.connect_address;
  }

  static std::vector<sockaddr_storage> numeric_address(const std::string& address, int port) {
    std::vector<sockaddr_storage> out;
    sockaddr_storage storage{};
    std::string text = address;
    if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
      text = text.substr(1, text.size() - 2);
    }
    // "localhost" and "*.localhost" are loopback without a lookup (RFC 6761 6.3), as libcurl
    // (7.78+) answers them: inventories name simulated or local hosts win01.localhost.
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!lower.empty() && lower.back() == '.') lower.pop_back();
    if (lower == "localhost" || lower.ends_with(".localhost")) {
      text = "127.0.0.1";
      if (auto v4 = numeric_address(text, port); !v4.empty()) out = std::move(v4);
      auto v6 = numeric_address("::1", port);
      out.insert(out.end(), v6.begin(), v6.end());
      return out;
    }
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<std::uint16_t>(port));
      out.push_back(storage);
    } else if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<std::uint16_t>(port));
      out.push_back(storage);
    }
    return out;
  }

  std::unexpected<Error> cancelled_error(const std::string& during) const {
    Error error{ErrorKind::kCancelled, "cancelled (shutting down) " + during + where_};
    error.cancelled = true;
    return std::unexpected(std::move(error));
  }

  // Closes the socket and frees the SSL, on the I/O thread (its epoll set and the socket's
  // state are the loop's); other threads hand it over and wait.
  void teardown() {
    if (t_on_io_thread || !IoLoop::started()) {
      IoLoop::instance().timer_cancel(this);
      drop_connection();
      abandon_lookup();
      return;
    }
    IoLoop::instance().run_and_wait([this] {
      IoLoop::instance().timer_cancel(this);
      drop_connection();
      abandon_lookup();
    });
  }

  void abandon_lookup() {
    if (lookup_) lookup_->abandoned = true;
    lookup_.reset();
  }

  void drop_connection() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);  // frees the BIO too
      ssl_ = nullptr;
    }
    if (fd_ >= 0) {
      IoLoop::instance().native_forget(fd_);
      ::close(fd_);  // leaves the epoll set with it
      fd_ = -1;
    }
    state_ = State::kIdle;
  }

  void watch(std::uint32_t events) { IoLoop::instance().native_watch(fd_, this, events); }

  // The request, taken from the loop's queue.
  void begin() {
    const auto now = Clock::now();
    if (deadline_ - now < std::chrono::milliseconds(1)) {
      complete(
          make_error(ErrorKind::kTimeout,
                     "deadline exceeded before sending (queued for the I/O thread) " + where_));
      return;
    }
    if (cancel_requested()) {
      complete(cancelled_error(""));
      return;
    }
    counters_->requests++;
    counters_->bytes_sent += request_->body.size();
    reset_response();
    retried_ = false;
    reused_ = false;
    IoLoop::instance().timer_set(this, deadline_);
    // A parked socket stays in the epoll set for EPOLLIN and the loop handles events before
    // queued requests, so an idle close or stray bytes have dropped it already (parked_event):
    // no MSG_PEEK per request. A close that arrives after this wake-up's epoll_wait is the
    // reuse race lost() retries once, as for a close in flight.
    if (fd_ >= 0 && state_ == State::kParked &&
        (IoLoop::instance().native_watching(fd_, EPOLLIN) || alive())) {
      reused_ = true;
      send_request();
      return;
    }
    drop_connection();  // closed by the peer while idle: a new one, transparently
    open();
  }

  // A kept connection is reusable when nothing is waiting on it: EOF, an error or stray
  // bytes (data past the last answer, a close_notify) all mean start over. Over TLS, bytes
  // may also be a post-handshake message (a late TLS 1.3 session ticket, a key update):
  // OpenSSL takes those in and reports no data, and the connection stays.
  bool alive() {
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    if (n == 0 || ssl_ == nullptr) return false;
    ERR_clear_error();
    const int got = SSL_read(ssl_, &byte, 1);
    // With read-ahead, what followed the handshake message may sit in OpenSSL's buffer.
    const bool handshake_only =
        got <= 0 && SSL_get_error(ssl_, got) == SSL_ERROR_WANT_READ && SSL_has_pending(ssl_) == 0;
    ERR_clear_error();
    if (handshake_only) SSL_free_buffers(ssl_);
    return handshake_only;
  }

  // An idle (parked) socket turned readable: the server closed it, or sent what it should
  // not have. Closed now, so its memory goes at once; the next request opens a new one.
  void parked_event(std::uint32_t) {
    if (state_ == State::kParked && alive()) return;
    drop_connection();
  }

  void reset_response() {
    response_ = HttpResponse{};
    response_.headers.reserve(8);
    line_.clear();
    header_bytes_ = 0;
    header_count_ = 0;
    body_bytes_ = 0;
    in_head_ = false;
    head_done_ = false;
    body_ = Body::kNone;
    remaining_ = 0;
    close_after_ = false;
    http10_ = false;
    keep_alive_header_ = false;
    chunked_ = false;
    content_length_.reset();
    got_bytes_ = false;
  }

  void open() {
    connect_started_ = Clock::now();
    connect_deadline_ = std::min(deadline_, connect_started_ + options_.connect_timeout);
    IoLoop::instance().timer_set(this, connect_deadline_);
    if (!numeric_.empty()) {
      addresses_ = numeric_;
      next_address_ = 0;
      connect_next();
      return;
    }
    resolve();
  }

  // Names are resolved by getaddrinfo off the I/O thread, a bounded number at once
  // (NameLookups; only new connections to hosts named by DNS need one). A lookup that
  // outlives its request is abandoned: a queued one never starts, a running one's result is
  // dropped when its thread ends.
  void resolve() {
    state_ = State::kResolving;
    std::string name = connect_address();
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
      name = name.substr(1, name.size() - 2);
    }
    auto lookup = std::make_shared<Lookup>(Lookup{this, std::move(name), options_.port});
    lookup_ = lookup;
    NameLookups::instance().submit(std::move(lookup));
  }

  void resolved(std::vector<sockaddr_storage> addresses, const std::string& failure) {
    lookup_.reset();
    if (addresses.empty()) {
      fail_io(ErrorKind::kTransport,
              "Could not resolve host: " + connect_address() + " (" + failure + ") " + where_);
      return;
    }
    addresses_ = std::move(addresses);
    next_address_ = 0;
    connect_next();
  }

  void connect_next() {
    int last_errno = 0;
    while (next_address_ < addresses_.size()) {
      const sockaddr_storage& address = addresses_[next_address_++];
      const socklen_t length =
          address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        last_errno = errno;
        continue;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0 ||
          errno == EINPROGRESS) {
        fd_ = fd;
        state_ = State::kConnecting;
        watch(EPOLLOUT);
        return;
      }
      last_errno = errno;
      ::close(fd);
    }
    fail_io(ErrorKind::kTransport, "Failed to connect to " + connect_address() + " port " +
                                       std::to_string(options_.port) + ": " +
                                       std::strerror(last_errno) + " " + where_);
  }

  void on_connected() {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) {
      drop_connection();
      if (next_address_ < addresses_.size()) {
        connect_next();
        return;
      }
      fail_io(ErrorKind::kTransport, "Failed to connect to " + connect_address() + " port " +
                                         std::to_string(options_.port) + ": " +
                                         std::strerror(error) + " " + where_);
      return;
    }
    addresses_.clear();
    addresses_.shrink_to_fit();
    connection_id_++;
    counters_->connections_opened++;
    if (ever_connected_) counters_->reconnects++;
    ever_connected_ = true;
    if (options_.scheme == Scheme::kHttp) {
      IoLoop::instance().timer_set(this, deadline_);
      send_request();
      return;
    }
    counters_->tls_handshakes++;
    if (!start_tls()) return;
    state_ = State::kHandshaking;
    handshake();
  }

  bool start_tls() {
    if (!ca_error_.empty() || !ctx_) {
      fail(Error{ErrorKind::kTls,
                 (ca_error_.empty() ? std::string("TLS: cannot create a context") : ca_error_) +
                     " " + where_,
                 0, std::nullopt});
      return false;
    }
    server_cert_der_.clear();
    ssl_ = SSL_new(ctx_.get());
    BIO* bio = ssl_ != nullptr ? BIO_new(socket_bio_method()) : nullptr;
    if (bio == nullptr) {
      fail(Error{ErrorKind::kTls, "TLS: out of memory " + where_, 0, std::nullopt});
      return false;
    }
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd_)));
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_connect_state(ssl_);
    const std::string& host = options_.host;
    if (!is_ip_literal(host)) SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI
    if (!options_.insecure_skip_verify) {
      if (is_ip_literal(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
      } else {
        SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl_, host.c_str());
      }
    }
    if (!options_.client_cert_file.empty()) {
      // Read at each handshake: a renewed pair takes effect on the next connection.
      if (!options_.client_key_password.empty()) {
        SSL_set_default_passwd_cb(ssl_, [](char* buffer, int size, int, void* user) -> int {
          const auto* password = static_cast<const std::string*>(user);
          const int n = std::min(size, static_cast<int>(password->size()));
          std::memcpy(buffer, password->data(), static_cast<std::size_t>(n));
          return n;
        });
        SSL_set_default_passwd_cb_userdata(ssl_, &options_.client_key_password);
      }
      if (SSL_use_certificate_chain_file(ssl_, options_.client_cert_file.c_str()) != 1) {
        ERR_clear_error();
        fail(Error{ErrorKind::kTls,
                   "TLS: could not load PEM client certificate from " + options_.client_cert_file +
                       " " + where_,
                   0, std::nullopt});
        return false;
      }
      const std::string& key =
          options_.client_key_file.empty() ? options_.client_cert_file : options_.client_key_file;
      if (SSL_use_PrivateKey_file(ssl_, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        ERR_clear_error();
        fail(Error{ErrorKind::kTls,
                   "TLS: could not load the private key from " + key +
                       " (unreadable, wrong passphrase or not matching the certificate) " + where_,
                   0, std::nullopt});
        return false;
      }
    }
    return true;
  }

  void handshake() {
    ERR_clear_error();
    const int rc = SSL_connect(ssl_);
    if (rc == 1) {
      keep_server_certificate();
      IoLoop::instance().timer_set(this, deadline_);
      send_request();
      return;
    }
    const int error = SSL_get_error(ssl_, rc);
    if (error == SSL_ERROR_WANT_READ) {
      watch(EPOLLIN);
      return;
    }
    if (error == SSL_ERROR_WANT_WRITE) {
      watch(EPOLLOUT);
      return;
    }
    const long verify = SSL_get_verify_result(ssl_);
    std::string what;
    if (verify != X509_V_OK && !options_.insecure_skip_verify) {
      ERR_clear_error();
      what = std::string("TLS certificate verification failed: ") +
             X509_verify_cert_error_string(verify);
    } else if (error == SSL_ERROR_SYSCALL || error == SSL_ERROR_ZERO_RETURN) {
      const int saved = errno;
      ERR_clear_error();
      what = std::string("TLS: connection lost during the handshake") +
             (saved != 0 && error == SSL_ERROR_SYSCALL ? std::string(": ") + std::strerror(saved)
                                                       : std::string());
    } else {
      what = "TLS: " + openssl_error_text();
    }
    fail_io(ErrorKind::kTls, what + " " + where_);
  }

  void keep_server_certificate() {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    server_cert_der_.clear();
    if (cert == nullptr) return;
    unsigned char* der = nullptr;
    const int len = i2d_X509(cert, &der);
    if (len > 0) server_cert_der_.assign(reinterpret_cast<const char*>(der), len);
    OPENSSL_free(der);
    X509_free(cert);
  }

  // Head and body in one buffer, one send / one SSL_write.
  void build_request(std::string& out) const {
    const HttpRequest& request = *request_;
    std::size_t size = 160 + options_.path.size() + host_header_.size() +
                       request.content_type.size() + request.body.size();
    for (const auto& [name, value] : request.headers) size += name.size() + value.size() + 4;
    out.clear();
    out.reserve(size);
    out.append("POST ").append(options_.path).append(" HTTP/1.1\r\nHost: ").append(host_header_);
    out.append("\r\nUser-Agent: winrm_exporter\r\nAccept: */*\r\nContent-Type: ");
    out.append(request.content_type).append("\r\nAccept-Encoding: identity\r\n");
    for (const auto& [name, value] : request.headers) {
      out.append(name).append(": ").append(value).append("\r\n");
    }
    out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n\r\n");
    out.append(request.body);
  }

  enum class Push { kDone, kWait, kFailed };

  void send_request() {
    if (state_ != State::kSending) {
      state_ = State::kSending;
      // Built in the I/O thread's buffer, kept between requests (no allocation per request);
      // the connection copies it only when the socket does not take it at once.
      static std::string request_buffer;  // I/O thread only
      build_request(request_buffer);
      out_offset_ = 0;
      const Push pushed = push(request_buffer);
      if (pushed == Push::kWait) out_ = request_buffer;  // SSL_write retries from a copy
      if (request_buffer.capacity() > 256 * 1024) std::string().swap(request_buffer);
      if (pushed != Push::kDone) return;
    } else if (push(out_) != Push::kDone) {
      return;
    }
    // Sent: the buffer goes (an idle connection keeps no request copy).
    std::string().swap(out_);
    out_offset_ = 0;
    state_ = State::kReceiving;
    watch(EPOLLIN);
  }

  // Writes out[out_offset_..]; kWait: epoll calls again, kFailed: lost() was called.
  Push push(const std::string& out) {
    while (out_offset_ < out.size()) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int n =
            SSL_write(ssl_, out.data() + out_offset_, static_cast<int>(out.size() - out_offset_));
        if (n > 0) {
          out_offset_ += static_cast<std::size_t>(n);
          continue;
        }
        const int error = SSL_get_error(ssl_, n);
        if (error == SSL_ERROR_WANT_WRITE) {
          watch(EPOLLOUT);
          return Push::kWait;
        }
        if (error == SSL_ERROR_WANT_READ) {
          watch(EPOLLIN);
          return Push::kWait;
        }
        const int saved = errno;
        ERR_clear_error();
        lost("sending the request", error == SSL_ERROR_SYSCALL ? saved : 0);
        return Push::kFailed;
      }
      const ssize_t n =
          ::send(fd_, out.data() + out_offset_, out.size() - out_offset_, MSG_NOSIGNAL);
      if (n > 0) {
        out_offset_ += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        watch(EPOLLOUT);
        return Push::kWait;
      }
      lost("sending the request", n < 0 ? errno : 0);
      return Push::kFailed;
    }
    return Push::kDone;
  }

  // The connection broke (EOF, reset) while sending or before the answer was complete.
  void lost(const char* during, int error_number) {
    if (reused_ && !retried_ && !got_bytes_ && Clock::now() < deadline_) {
      // A kept connection the server closed as we reused it: once more, on a new one
      // (libcurl's rule: only when nothing of an answer arrived).
      retried_ = true;
      reused_ = false;
      drop_connection();
      reset_response();
      open();
      return;
    }
    std::string what;
    if (!got_bytes_ && std::string_view(during) == "reading the response") {
      what = "connection closed without a response: Empty reply from server";
    } else if (!head_done_) {
      what = std::string("connection lost while ") + during;
    } else {
      what = "response body cut short: connection lost while reading the body (" +
             std::to_string(body_bytes_) + " bytes received)";
    }
    if (error_number != 0) what += std::string(": ") + std::strerror(error_number);
    fail_io(ErrorKind::kTransport, what + " " + where_);
  }

  void receive() {
    static char buffer[64 * 1024];  // I/O thread only: no read buffer per connection
    for (int round = 0; round < 16; ++round) {
      std::size_t got = 0;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int n = SSL_read(ssl_, buffer, sizeof buffer);
        if (n <= 0) {
          const int error = SSL_get_error(ssl_, n);
          if (error == SSL_ERROR_WANT_READ) {
            watch(EPOLLIN);
            return;
          }
          if (error == SSL_ERROR_WANT_WRITE) {
            watch(EPOLLIN | EPOLLOUT);
            return;
          }
          const int saved = errno;
          ERR_clear_error();
          // With SSL_OP_IGNORE_UNEXPECTED_EOF, a close_notify and a bare FIN both read as
          // ZERO_RETURN; SYSCALL (a reset) and SSL (a record that fails to decrypt) do not.
          end_of_stream(error == SSL_ERROR_SYSCALL ? saved : 0, error == SSL_ERROR_ZERO_RETURN);
          return;
        }
        got = static_cast<std::size_t>(n);
      } else {
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n <= 0) {
          end_of_stream(n < 0 ? errno : 0, n == 0);
          return;
        }
        got = static_cast<std::size_t>(n);
      }
      got_bytes_ = true;
      std::size_t used = 0;
      const Feed result = feed(buffer, got, used);
      if (result == Feed::kFailed) return;  // fail() was called
      if (result == Feed::kDone) {
        // Bytes past the answer (or buffered in TLS, decrypted or not) must never become the
        // next answer.
        if (used < got || (ssl_ != nullptr && SSL_has_pending(ssl_) == 1)) close_after_ = true;
        finish();
        return;
      }
      if (ssl_ == nullptr && got < sizeof buffer) return;  // drained; epoll says when more
    }
    // Out of rounds with records already in OpenSSL's read buffer (read-ahead): the socket
    // may be drained, so epoll would not call again; the loop does, after the others' turn.
    if (ssl_ != nullptr && SSL_has_pending(ssl_) == 1) IoLoop::instance().native_again(fd_);
  }

  // `clean`: an orderly end (FIN, close_notify). Only that completes a close-delimited body;
  // a reset or a TLS error cuts it short (libcurl: "Recv failure", "SSL_read").
  void end_of_stream(int error_number, bool clean) {
    if (clean && head_done_ && body_ == Body::kUntilClose) {
      close_after_ = true;
      finish();
      return;
    }
    lost("reading the response", error_number);
  }

  // Parses what arrived; `used` is how much of it belonged to this answer.
  Feed feed(const char* data, std::size_t size, std::size_t& used) {
    std::size_t pos = 0;
    while (pos < size) {
      if (!head_done_ || body_ == Body::kChunkSize || body_ == Body::kChunkEnd ||
          body_ == Body::kTrailers) {
        // Line-oriented parts: the head, chunk sizes, chunk ends, trailers.
        const char* newline = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
        const std::size_t take = newline != nullptr ? newline - (data + pos) + 1 : size - pos;
        line_.append(data + pos, take);
        pos += take;
        if (!head_done_ && !check_head_prefix()) return Feed::kFailed;
        if (!head_done_ || body_ == Body::kTrailers) {
          if (header_bytes_ + line_.size() > options_.max_header_bytes) {
            fail(head_bytes_error());
            return Feed::kFailed;
          }
          if (line_.size() > kMaxHeaderLine) {
            fail(Error{ErrorKind::kTransport,
                       "a response header line exceeds " + std::to_string(kMaxHeaderLine) +
                           " bytes " + where_,
                       0, std::nullopt, Limit::kHeaderLine});
            return Feed::kFailed;
          }
        } else if (line_.size() > 1024) {
          fail_io(ErrorKind::kTransport, "bad chunked encoding: chunk line too long " + where_);
          return Feed::kFailed;
        }
        if (newline == nullptr) break;
        const Feed step = head_done_ ? chunk_line() : head_line();
        line_.clear();
        if (step != Feed::kMore) {
          used = pos;
          return step;
        }
        if (head_done_ && body_ == Body::kNone) {
          used = pos;
          return Feed::kDone;
        }
        continue;
      }
      // Body bytes.
      std::size_t take = size - pos;
      if (body_ == Body::kLength || body_ == Body::kChunkData) {
        take = static_cast<std::size_t>(std::min<std::uint64_t>(take, remaining_));
      }
      body_bytes_ += take;
      counters_->bytes_received += take;
      if (response_.body.size() + take > options_.max_response_bytes) {
        fail(body_cap_error());
        return Feed::kFailed;
      }
      response_.body.append(data + pos, take);
      pos += take;
      if (body_ == Body::kLength || body_ == Body::kChunkData) {
        remaining_ -= take;
        if (remaining_ == 0) {
          if (body_ == Body::kLength) {
            used = pos;
            return Feed::kDone;
          }
          body_ = Body::kChunkEnd;
        }
      }
    }
    used = pos;
    return Feed::kMore;
  }

  // Before a full status line: what does not start like "HTTP/1." is not HTTP/1.x (garbage,
  // an HTTP/0.9 body), decided from the first bytes rather than after a line that may never end.
  bool check_head_prefix() {
    if (in_head_ || header_bytes_ != 0) return true;
    constexpr std::string_view kPrefix = "HTTP/1.";
    const std::size_t n = std::min(line_.size(), kPrefix.size());
    if (std::string_view(line_).substr(0, n) == kPrefix.substr(0, n)) return true;
    fail_io(ErrorKind::kTransport,
            "not an HTTP/1.x response: the answer does not start with a status line " + where_);
    return false;
  }

  Error head_bytes_error() const {
    return Error{ErrorKind::kTransport,
                 "response headers exceed " + std::to_string(options_.max_header_bytes) +
                     " bytes (max_header_bytes) " + where_,
                 status_if_known(), std::nullopt, Limit::kHeaderBytes};
  }

  Error body_cap_error() const {
    return Error{ErrorKind::kTransport,
                 "response exceeds " + std::to_string(options_.max_response_bytes) + " bytes",
                 status_if_known(), std::nullopt, Limit::kResponseBytes};
  }

  Feed head_line() {
    header_bytes_ += line_.size();
    std::string_view line(line_);
    if (line.find('\0') != std::string_view::npos) {
      fail_io(ErrorKind::kTransport,
              "not an HTTP/1.x response: NUL byte in the response head " + where_);
      return Feed::kFailed;
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (!in_head_) {  // status line of a (possibly 1xx) head
      // "HTTP/1.x SSS reason"
      if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ' ||
          !std::isdigit(static_cast<unsigned char>(line[7]))) {
        fail_io(ErrorKind::kTransport, "not an HTTP/1.x response: bad status line " + where_);
        return Feed::kFailed;
      }
      int status = 0;
      const auto code = line.substr(9, 3);
      const auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
      if (ec != std::errc() || end != code.data() + 3 || status < 100 || status > 999 ||
          (line.size() > 12 && line[12] != ' ')) {
        fail_io(ErrorKind::kTransport, "not an HTTP/1.x response: bad status code " + where_);
        return Feed::kFailed;
      }
      in_head_ = true;
      response_.status = status;
      response_.headers.clear();
      http10_ = line[7] == '0';
      keep_alive_header_ = false;
      close_after_ = false;
      chunked_ = false;
      content_length_.reset();
      return Feed::kMore;
    }
    if (trim(line).empty()) {  // end of this head
      in_head_ = false;
      if (response_.status < 200) return Feed::kMore;  // 1xx: the real head follows
      head_done_ = true;
      if (http10_ && !keep_alive_header_) close_after_ = true;
      const int status = response_.status;
      if (status == 204 || status == 304) {
        body_ = Body::kNone;
      } else if (chunked_) {
        body_ = Body::kChunkSize;
      } else if (content_length_) {
        if (*content_length_ > options_.max_response_bytes) {
          fail(body_cap_error());
          return Feed::kFailed;
        }
        remaining_ = *content_length_;
        body_ = remaining_ == 0 ? Body::kNone : Body::kLength;
        response_.body.reserve(static_cast<std::size_t>(remaining_));
      } else {
        body_ = Body::kUntilClose;
        close_after_ = true;
      }
      return Feed::kMore;
    }
    if (++header_count_ > options_.max_header_count) {
      fail(Error{ErrorKind::kTransport,
                 "response has more than " + std::to_string(options_.max_header_count) +
                     " header lines (max_header_count) " + where_,
                 0, std::nullopt, Limit::kHeaderCount});
      return Feed::kFailed;
    }
    auto& headers = response_.headers;
    if ((line.front() == ' ' || line.front() == '\t') && !headers.empty()) {
      headers.back().second.append(" ").append(trim(line));  // obsolete line folding
      return Feed::kMore;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return Feed::kMore;
    const auto name = trim(line.substr(0, colon));
    const auto value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Length")) {
      std::uint64_t length = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (ec != std::errc() || end != value.data() + value.size() ||
          (content_length_ && *content_length_ != length)) {
        fail_io(ErrorKind::kTransport, "not an HTTP/1.x response: bad Content-Length " + where_);
        return Feed::kFailed;
      }
      content_length_ = length;
    } else if (iequals(name, "Transfer-Encoding")) {
      if (icontains(value, "chunked")) chunked_ = true;
    } else if (iequals(name, "Connection")) {
      if (icontains(value, "close")) close_after_ = true;
      if (icontains(value, "keep-alive")) keep_alive_header_ = true;
    }
    headers.emplace_back(name, value);
    return Feed::kMore;
  }

  Feed chunk_line() {
    std::string_view line(line_);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (body_ == Body::kChunkEnd) {
      if (!line.empty()) {
        fail_io(ErrorKind::kTransport, "bad chunked encoding: no CRLF after a chunk " + where_);
        return Feed::kFailed;
      }
      body_ = Body::kChunkSize;
      return Feed::kMore;
    }
    if (body_ == Body::kTrailers) {
      header_bytes_ += line_.size();
      if (trim(line).empty()) {
        body_ = Body::kNone;
        return Feed::kDone;
      }
      return Feed::kMore;
    }
    // Chunk size: hex digits, then extensions after ';'.
    const auto end = line.find_first_of("; \t");
    const auto digits = line.substr(0, end);
    std::uint64_t size = 0;
    const auto [stop, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
    if (digits.empty() || digits.size() > 16 || ec != std::errc() ||
        stop != digits.data() + digits.size()) {
      fail_io(ErrorKind::kTransport, "bad chunked encoding: invalid chunk size " + where_);
      return Feed::kFailed;
    }
    if (size == 0) {
      body_ = Body::kTrailers;
      return Feed::kMore;
    }
    if (response_.body.size() + size > options_.max_response_bytes) {
      // Refused before the data (a huge announced chunk), like an announced Content-Length.
      fail(body_cap_error());
      return Feed::kFailed;
    }
    remaining_ = size;
    body_ = Body::kChunkData;
    return Feed::kMore;
  }

  void finish() {
    IoLoop::instance().timer_cancel(this);
    if (close_after_) {
      drop_connection();
      connected_ = false;
    } else {
      state_ = State::kParked;  // stays in the epoll set for EPOLLIN: a close shows at once
      watch(EPOLLIN);
      // An idle TLS connection keeps no buffers (~16.7 KB read buffer after TLS 1.3).
      if (ssl_ != nullptr) SSL_free_buffers(ssl_);
      connected_ = true;
    }
    line_.clear();
    line_.shrink_to_fit();
    complete(std::move(response_));
  }

  // A network failure: near the deadline it is the deadline (timer slack), like libcurl's.
  void fail_io(ErrorKind kind, std::string message) {
    constexpr auto kTimerSlack = std::chrono::milliseconds(20);
    if (Clock::now() + kTimerSlack >= deadline_) {
      on_timer();
      return;
    }
    fail(Error{kind, std::move(message), status_if_known(), std::nullopt});
  }

  void fail(Error error) {
    IoLoop::instance().timer_cancel(this);
    abandon_lookup();
    drop_connection();
    connected_ = false;
    std::string().swap(out_);
    line_.clear();
    line_.shrink_to_fit();
    complete(std::unexpected(std::move(error)));
  }

  void complete(Result<HttpResponse> result) {
    ResponseCallback on_done = std::exchange(on_done_, nullptr);
    on_done(std::move(result));  // the last touch of this object
  }

  std::string phase() const {
    switch (state_) {
      case State::kIdle:
      case State::kResolving:
      case State::kConnecting:
        return "connect";
      case State::kHandshaking:
        return "TLS handshake";
      default:
        break;
    }
    if (header_bytes_ == 0) return "waiting for response (no complete status line)";
    if (!head_done_) {
      return "reading response headers (" + std::to_string(header_bytes_) + " bytes received)";
    }
    return "reading response body (" + std::to_string(body_bytes_) + " bytes received)";
  }

  int status_if_known() const { return head_done_ ? response_.status : 0; }

  EndpointOptions options_;
  std::shared_ptr<TransportCounters> counters_;
  std::string where_;
  std::string host_header_;
  std::vector<sockaddr_storage> numeric_;  // the connect address when it is numeric
  SharedCtx ctx_;                          // HTTPS: the shared SSL_CTX of this configuration
  std::string ca_error_;                   // the CA file could not be loaded
  std::atomic<std::uint64_t> connection_id_{0};
  bool connected_ = false;   // owner's view, set before on_done
  bool cancellable_ = true;  // see Connection::set_cancellable
  std::string server_cert_der_;
  // I/O thread:
  State state_ = State::kIdle;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::shared_ptr<Lookup> lookup_;
  std::vector<sockaddr_storage> addresses_;
  std::size_t next_address_ = 0;
  bool ever_connected_ = false;
  Clock::time_point connect_started_{};
  Clock::time_point connect_deadline_{};
  // The request in progress:
  const HttpRequest* request_ = nullptr;
  Deadline deadline_{};
  ResponseCallback on_done_;
  std::string out_;
  std::size_t out_offset_ = 0;
  bool reused_ = false;
  bool retried_ = false;
  bool got_bytes_ = false;
  // The answer being parsed:
  HttpResponse response_;
  std::string line_;  // a head line, chunk size or trailer not complete yet
  std::size_t header_bytes_ = 0;
  std::size_t header_count_ = 0;
  std::size_t body_bytes_ = 0;
  bool in_head_ = false;
  bool head_done_ = false;
  Body body_ = Body::kNone;
  std::uint64_t remaining_ = 0;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
  bool close_after_ = false;
  bool http10_ = false;
  bool keep_alive_header_ = false;
};

void native_event(NativeConnection* connection, std::uint32_t events) {
  connection->on_event(events);
}
void native_resolved(NativeConnection* connection, std::vector<sockaddr_storage> addresses,
                     const std::string& failure) {
  connection->resolved(std::move(addresses), failure);
}
Clock::time_point timer_at_of(const NativeConnection* connection) { return connection->timer_at_; }
bool native_cancel_requested(const NativeConnection* connection) {
  return connection->cancel_requested();
}
void native_cancel(NativeConnection* connection) { connection->on_cancel(); }

void IoLoop::timer_set(NativeConnection* connection, Clock::time_point at) {
  connection->timer_at_ = at;
  if (connection->heap_index_ == NativeConnection::kNotInHeap) {
    connection->heap_index_ = timers_.size();
    timers_.push_back(connection);
    timer_sift_up(connection->heap_index_);
    return;
  }
  timer_sift_up(connection->heap_index_);
  timer_sift_down(connection->heap_index_);
}

void IoLoop::timer_cancel(NativeConnection* connection) {
  const std::size_t index = connection->heap_index_;
  if (index == NativeConnection::kNotInHeap) return;
  connection->heap_index_ = NativeConnection::kNotInHeap;
  NativeConnection* last = timers_.back();
  timers_.pop_back();
  if (last == connection) return;
  timers_[index] = last;
  last->heap_index_ = index;
  timer_sift_up(index);
  timer_sift_down(last->heap_index_);
}

void IoLoop::timer_sift_up(std::size_t index) {
  while (index > 0) {
    const std::size_t parent = (index - 1) / 2;
    if (timers_[parent]->timer_at_ <= timers_[index]->timer_at_) break;
    std::swap(timers_[parent], timers_[index]);
    timers_[parent]->heap_index_ = parent;
    timers_[index]->heap_index_ = index;
    index = parent;
  }
}

void IoLoop::timer_sift_down(std::size_t index) {
  for (;;) {
    std::size_t smallest = index;
    for (const std::size_t child : {2 * index + 1, 2 * index + 2}) {
      if (child < timers_.size() && timers_[child]->timer_at_ < timers_[smallest]->timer_at_) {
        smallest = child;
      }
    }
    if (smallest == index) return;
    std::swap(timers_[smallest], timers_[index]);
    timers_[smallest]->heap_index_ = smallest;
    timers_[index]->heap_index_ = index;
    index = smallest;
  }
}

// Deadlines (and connect timeouts) of native requests that have passed.
void IoLoop::fire_timers() {
  const auto now = Clock::now();
  while (!timers_.empty() && timers_.front()->timer_at_ <= now) {
    timers_.front()->on_timer();  // takes it off the heap (fail)
  }
}

// The transport a direct connection uses: native unless WINRM_EXPORTER_TRANSPORT=curl (kept
// for A/B benchmarks; read once).
bool native_transport_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("WINRM_EXPORTER_TRANSPORT");
    return value == nullptr || std::string_view(value) != "curl";
  }();
  return enabled;
}

IoLoop::IoLoop() {
  global_init();
  multi_ = curl_multi_init();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (multi_ == nullptr || epoll_fd_ < 0 || wake_fd_ < 0) {
    throw std::runtime_error("winrm I/O loop: cannot create its multi handle or descriptors");
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event);
  // What curl_easy_perform copies from CURLOPT_MAXCONNECTS: returning a connection to a
  // cache that already holds one closes the older (the cache is the Connection's share).
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, 1L);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &IoLoop::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &IoLoop::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  thread_ = std::thread([this] { run(); });
  thread_.detach();  // lives as long as the process (instance())
}

// libcurl asks for IN to wait for an answer and REMOVE when the transfer ends, so a
// connection reused for the next request would cost DEL, a failed MOD and ADD: three
// epoll_ctl per request (strace at 400 hosts: 2.9 per request, a third of the I/O thread's
// system calls). Instead a connection socket stays registered for EPOLLIN while idle
// ("parked") and the next transfer's IN costs nothing. A parked socket that turns readable
// (the server closed the idle connection, or sent something unasked) is taken out of the
// set when the loop sees it, and libcurl's own liveness check finds it dead before reuse.
// Other descriptors (the threaded resolver's socket pair, which libcurl closes without
// the close callback) are added and removed as libcurl asks.
int IoLoop::on_socket(CURL*, curl_socket_t socket, int what, void* self_ptr, void*) {
  auto* self = static_cast<IoLoop*>(self_ptr);
  Interest& state = self->interest(socket);
  if (what == CURL_POLL_REMOVE) {
    state.wanted = false;
    if (state.events == 0 || (state.connection && state.events == EPOLLIN)) return 0;
    epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);  // ENOENT/EBADF: already gone
    state.events = 0;
    return 0;
  }
  const std::uint32_t events =
      ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
  state.wanted = true;
  if (state.connection && state.events == events) return 0;  // parked, or unchanged
  self->set_interest(socket, state, events);
  return 0;
}

void IoLoop::set_interest(int fd, Interest& state, std::uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.fd = fd;
  // The descriptor may have been closed (and its number reused) behind a stale entry:
  // MOD then fails with ENOENT, ADD with EEXIST when it is registered after all.
  const int op = state.events != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_fd_, op, fd, &event) == 0) {
    state.events = events;
    return;
  }
  const int retry = errno == ENOENT ? EPOLL_CTL_ADD : errno == EEXIST ? EPOLL_CTL_MOD : -1;
  state.events = retry >= 0 && epoll_ctl(epoll_fd_, retry, fd, &event) == 0 ? events : 0;
}

// Called inside libcurl: only note the time (socket_action may not be called from here).
int IoLoop::on_timer(CURLM*, long timeout_ms, void* self_ptr) {
  auto* self = static_cast<IoLoop*>(self_ptr);
  if (timeout_ms < 0) {
    self->timer_at_.reset();
  } else {
    self->timer_at_ = Clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  return 0;
}

void IoLoop::add(HttpConnection* connection) {
  if (!connection->attach(multi_)) return;  // ended already (deadline or shutdown)
  connection->active_index = active_.size();
  active_.push_back(connection);
}

void IoLoop::finish(HttpConnection* connection, CURLcode code) {
  const std::size_t index = connection->active_index;
  if (index < active_.size() && active_[index] == connection) {
    active_[index] = active_.back();
    active_[index]->active_index = index;
    active_.pop_back();
  }
  connection->complete(multi_, code);
}

void IoLoop::drain_done() {
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    // Read before complete() removes the handle, which invalidates the message.
    CURL* easy = message->easy_handle;
    const CURLcode code = message->data.result;
    char* owner = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &owner);
    finish(reinterpret_cast<HttpConnection*>(owner), code);
  }
}

// Shutdown: a transfer that waits for a silent host has no socket activity, and its
// timer is its deadline, so libcurl would not call its progress callback before then.
void IoLoop::check_cancels() {
  std::vector<HttpConnection*> cut;
  for (HttpConnection* connection : active_) {
    if (connection->cancel_requested()) cut.push_back(connection);
  }
  for (HttpConnection* connection : cut) {
    connection->mark_cancelled();
    finish(connection, CURLE_ABORTED_BY_CALLBACK);
  }
  std::vector<NativeConnection*> native_cut;
  for (NativeConnection* connection : timers_) {
    if (native_cancel_requested(connection)) native_cut.push_back(connection);
  }
  for (NativeConnection* connection : native_cut) native_cancel(connection);
}

void IoLoop::run() {
  pthread_setname_np(pthread_self(), "winrm-io");
  // A polling thread: below the exporter's web threads (common/thread_priority.h); libcurl's
  // resolver threads, started from here, inherit it.
  (void)common::apply_polling_priority();
  t_on_io_thread = true;
  constexpr auto kCancelCheck = std::chrono::seconds(1);
  constexpr int kMaxRoundsPerWakeup = 16;
  std::array<epoll_event, 256> events{};
  std::vector<Item> items;
  for (;;) {
    auto now = Clock::now();
    long wait_ms = -1;
    if (timer_at_) {
      wait_ms =
          std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(*timer_at_ - now).count());
    }
    if (!timers_.empty()) {
      const long to_timer = std::max<long>(
          0,
          std::chrono::ceil<std::chrono::milliseconds>(timer_at_of(timers_.front()) - now).count());
      wait_ms = wait_ms < 0 ? to_timer : std::min(wait_ms, to_timer);
    }
    if (!active_.empty() || !timers_.empty()) {
      const long to_check = std::max<long>(
          0, std::chrono::ceil<std::chrono::milliseconds>(next_cancel_check_ - now).count());
      wait_ms = wait_ms < 0 ? to_check : std::min(wait_ms, to_check);
    }
    {
      std::lock_guard lock(mutex_);
      if (!queue_.empty()) wait_ms = 0;  // left over from the bounded rounds below
    }
    if (!again_.empty()) wait_ms = 0;
    const int ready = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                 static_cast<int>(std::min<long>(wait_ms, 60000)));
    if (ready < 0 && errno != EINTR) {
      spdlog::error("winrm I/O loop: epoll_wait: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // never spin
    }
    int running = 0;
    for (int i = 0; i < ready; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_fd_) {
        std::uint64_t count = 0;
        (void)!read(wake_fd_, &count, sizeof count);
        continue;
      }
      Interest& state = interest(fd);
      if (state.native != nullptr) {
        native_event(state.native, events[static_cast<std::size_t>(i)].events);
        continue;
      }
      if (!state.wanted) {  // parked and readable: closed by the server, or a stale event
        if (state.events != 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        state.events = 0;
        continue;
      }
      const std::uint32_t flags = events[static_cast<std::size_t>(i)].events;
      const int mask = ((flags & EPOLLIN) != 0 ? CURL_CSELECT_IN : 0) |
                       ((flags & EPOLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                       ((flags & (EPOLLERR | EPOLLHUP)) != 0 ? CURL_CSELECT_ERR : 0);
      curl_multi_socket_action(multi_, fd, mask, &running);
    }
    again_now_.swap(again_);
    for (const int fd : again_now_) {
      Interest& state = interest(fd);
      if (state.native != nullptr) native_event(state.native, EPOLLIN);
    }
    again_now_.clear();
    // Chains resumed in drain_done may queue their next request here (no wake-up write):
    // take those on before sleeping. Bounded, so sockets and timers get their turn.
    for (int round = 0; round < kMaxRoundsPerWakeup; ++round) {
      {
        std::lock_guard lock(mutex_);
        if (round > 0 && queue_.empty()) break;
        items.swap(queue_);
      }
      for (Item& item : items) {
        if (item.connection != nullptr) {
          add(item.connection);
        } else {
          item.fn();
        }
      }
      items.clear();
      drain_done();
      if (timer_at_ && Clock::now() >= *timer_at_) {
        timer_at_.reset();
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      drain_done();
    }
    fire_timers();
    now = Clock::now();
    if (now >= next_cancel_check_) {
      next_cancel_check_ = now + kCancelCheck;
      check_cancels();
    }
  }
}

}  // namespace

bool on_io_thread() noexcept { return t_on_io_thread; }

std::size_t native_tls_contexts() {
  std::lock_guard lock(ctx_cache().mutex);
  std::size_t live = 0;
  for (const auto& [key, ctx] : ctx_cache().entries) live += ctx.expired() ? 0 : 1;
  return live;
}

NameLookupStats native_name_lookups() { return NameLookups::instance().stats(); }

void run_on_io_thread(std::function<void()> fn) { IoLoop::instance().run_soon(std::move(fn)); }

bool proxy_bypassed(std::string_view host, std::string_view no_proxy) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  while (!no_proxy.empty()) {
    const auto end = no_proxy.find_first_of(", \t");
    std::string_view entry = no_proxy.substr(0, end);
    no_proxy = end == std::string_view::npos ? std::string_view() : no_proxy.substr(end + 1);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (address_matches(host, entry)) return true;
    if (entry.front() == '.') entry.remove_prefix(1);
    if (iequals(host, entry)) return true;
    if (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
        iequals(host.substr(host.size() - entry.size()), entry)) {
      return true;
    }
  }
  return false;
}

std::string EndpointOptions::url() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return std::string(scheme == Scheme::kHttps ? "https" : "http") + "://" +
         (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + path;
}

std::vector<std::string> HttpResponse::header_values(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) values.push_back(value);
  }
  return values;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::unique_ptr<Connection> make_http_connection(EndpointOptions options,
                                                 std::shared_ptr<TransportCounters> counters) {
  // libcurl for proxied endpoints only (CONNECT tunnels, absolute-URI requests, proxy auth).
  const bool direct = options.proxy.empty() || proxy_bypassed(options.host, options.no_proxy);
  if (direct && native_transport_enabled()) {
    return std::make_unique<NativeConnection>(std::move(options), std::move(counters));
  }
  return std::make_unique<HttpConnection>(std::move(options), std::move(counters));
}

}  // namespace winrm
