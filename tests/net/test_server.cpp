// net::Server over real sockets on 127.0.0.1, plain and TLS (certificates generated per
// run): keep-alive, pipelining, every limit's answer, slow clients, thousands of idle
// connections, deferred/scheduled/streamed responses, broken clients and a graceful stop.
#include <doctest/doctest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/server.h"
#include "net_client.h"
#include "testsupport/temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_server {

using namespace std::chrono_literals;
using nettest::Client;

namespace {

// The test client writes with SSL_write (plain write()) to servers that close on it.
const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

// Polls `condition` every 20 ms for at most `limit`.
template <typename F>
bool eventually(F condition, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// A server on an ephemeral loopback port, stopped on destruction.
struct TestServer {
  explicit TestServer(net::ServerOptions options, net::Handler handler,
                      net::TlsContextProvider tls = {})
      : server(std::move(options), std::move(handler)) {
    auto bound = server.listen("127.0.0.1", 0, std::move(tls));
    REQUIRE_MESSAGE(bound.has_value(), bound.error());
    port = *bound;
    server.start();
  }
  net::Server server;
  int port = 0;
};

// Echoes what the server saw, for the tests to check.
void echo(net::Request req, net::Responder res) {
  std::string body = req.method + " " + req.target + " conn=" + std::to_string(req.connection_id) +
                     " body=" + req.body + " tls=" + (req.tls ? "1" : "0") + " sni=" + req.sni +
                     " cert=" + (req.peer_certificate ? "1" : "0");
  res.send(net::Response::text(200, body));
}

std::string conn_of(const std::string& body) {
  auto p = body.find("conn=");
  return body.substr(p, body.find(' ', p) - p);
}

// Certificates for the TLS tests, generated once per test run (gen-certs.sh plus a
// client certificate from the same CA).
struct Certs {
  testsupport::TempDir dir{"net-test"};
  Certs() {
    const std::string d = dir.str();
    const std::string cmd =
        std::string("sh '") + WINRM_TEST_SCRIPTS + "/gen-certs.sh' '" + d + "' >/dev/null 2>&1" +
        " && openssl req -newkey rsa:2048 -nodes -subj /CN=client -keyout '" + d +
        "/client.key' -out '" + d + "/client.csr' 2>/dev/null" +
        " && printf 'extendedKeyUsage=clientAuth\\n' > '" + d + "/client.ext'" +
        " && openssl x509 -req -in '" + d + "/client.csr' -CA '" + d + "/ca.pem' -CAkey '" + d +
        "/ca.key' -CAcreateserial -days 2 -sha256 -extfile '" + d + "/client.ext' -out '" + d +
        "/client.pem' 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  std::string path(const char* name) const { return (dir / name).string(); }
};

const Certs& certs() {
  static Certs c;
  return c;
}

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

CtxPtr server_ctx(bool ask_client_cert) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), certs().path("server.pem").c_str()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), certs().path("server.key").c_str(),
                                      SSL_FILETYPE_PEM) == 1);
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (ask_client_cert) {
    REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), certs().path("ca.pem").c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

CtxPtr client_ctx(bool with_cert) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), certs().path("ca.pem").c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (with_cert) {
    REQUIRE(SSL_CTX_use_certificate_file(ctx.get(), certs().path("client.pem").c_str(),
                                         SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), certs().path("client.key").c_str(),
                                        SSL_FILETYPE_PEM) == 1);
  }
  return ctx;
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::atol(line.c_str() + 6);
  return 0;
}

}  // namespace

TEST_CASE("plain requests reuse one keep-alive connection; HEAD has no body") {
  TestServer s({}, echo);
  Client c(s.port);
  auto a = c.request("GET", "/one?x=1");
  auto b = c.request("POST", "/two", "payload");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->status == 200);
  CHECK(a->body.starts_with("GET /one?x=1 conn="));
  CHECK(b->body.find("body=payload") != std::string::npos);
  CHECK(conn_of(a->body) == conn_of(b->body));
  CHECK(a->header("Connection") == "keep-alive");
  auto h = c.request("HEAD", "/three");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(std::atoi(h->header("Content-Length").c_str()) > 0);
  CHECK(h->body.empty());
  auto d = c.request("GET", "/four");  // the HEAD answer left no body bytes behind
  REQUIRE(d);
  CHECK(d->body.starts_with("GET /four"));
  Client other(s.port);
  auto e = other.request("GET", "/");
  REQUIRE(e);
  CHECK(conn_of(e->body) != conn_of(a->body));
  CHECK(s.server.stats().requests == 5);
}

TEST_CASE("pipelined requests are answered in order; Connection: close is honoured") {
  TestServer s({}, echo);
  Client c(s.port);
  REQUIRE(
      c.send("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nxy"
             "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"));
  auto a = c.read_reply(), b = c.read_reply(), cc = c.read_reply();
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(cc);
  CHECK(a->body.starts_with("GET /a "));
  CHECK(b->body.starts_with("POST /b "));
  CHECK(b->body.find("body=xy") != std::string::npos);
  CHECK(cc->body.starts_with("GET /c "));
  CHECK(cc->header("Connection") == "close");
  CHECK(c.wait_closed());
}

TEST_CASE("chunked request bodies and Expect: 100-continue") {
  TestServer s({}, echo);
  Client c(s.port);
  REQUIRE(
      c.send("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
             "2\r\nef\r\n0\r\n\r\n"));
  auto a = c.read_reply();
  REQUIRE(a);
  CHECK(a->body.find("body=abcdef ") != std::string::npos);
  REQUIRE(c.send("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
  // The interim 100 arrives before the body is sent; read_reply skips it.
  REQUIRE(c.send("xyz"));
  auto b = c.read_reply();
  REQUIRE(b);
  CHECK(b->body.find("body=xyz ") != std::string::npos);
}

TEST_CASE("each limit is answered with its status and the connection is closed") {
  net::ServerOptions options;
  options.limits.max_head_bytes = 1024;
  options.limits.max_header_count = 8;
  options.limits.max_body_bytes = 100;
  TestServer s(options, echo);
  struct Case {
    std::string text;
    int status;
  };
  std::string many_headers = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 9; ++i) many_headers += "H" + std::to_string(i) + ": v\r\n";
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n", 431},
      {many_headers + "\r\n", 431},
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'a') +
           "\r\n1\r\na\r\n0\r\n\r\n",
       413},
      {"BLAH\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n", 501},
      {"GET / HTTP/3.0\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text.substr(0, 60));
    Client client(s.port);
    REQUIRE(client.send(c.text));
    auto reply = client.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == c.status);
    CHECK(reply->header("Connection") == "close");
    CHECK(client.wait_closed());
  }
  CHECK(s.server.stats().protocol_errors == std::size(cases));
  // Still serving.
  Client ok(s.port);
  auto r = ok.request("GET", "/");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("over max_connections or the per-client cap a connection gets 503") {
  net::ServerOptions options;
  options.limits.max_connections_per_client = 3;
  TestServer s(options, echo);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Client>(s.port));
    REQUIRE(held.back()->request("GET", "/"));
  }
  Client fourth(s.port);
  auto r = fourth.read_reply();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(s.server.stats().rejected_connections == 1);
  held.pop_back();  // one slot frees up
  REQUIRE(eventually([&] { return s.server.stats().connections == 2; }));
  Client again(s.port);
  auto ok = again.request("GET", "/");
  REQUIRE(ok);
  CHECK(ok->status == 200);

  net::ServerOptions one;
  one.limits.max_connections = 1;
  TestServer t(one, echo);
  Client first(t.port);
  REQUIRE(first.request("GET", "/"));
  Client second(t.port);
  auto refused = second.read_reply();
  REQUIRE(refused);
  CHECK(refused->status == 503);
}

TEST_CASE("slowloris: trickling clients get 408 at the total deadline, others are served") {
  net::ServerOptions options;
  options.limits.request_timeout = 1s;
  TestServer s(options, echo);
  constexpr int kSlow = 20;
  std::vector<std::unique_ptr<Client>> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(std::make_unique<Client>(s.port));
    REQUIRE(slow.back()->send("GET / HTTP/1.1\r\nX-Slow: "));
  }
  // Each slow client sends one more byte every 100 ms: every read succeeds (a per-read
  // timeout would never fire) but the request never completes.
  int served = 0;
  std::vector<bool> done(kSlow, false);
  int finished = 0;
  for (int round = 0; round < 100 && finished < kSlow; ++round) {
    for (int i = 0; i < kSlow; ++i)
      if (!done[i] && !slow[i]->send("a")) done[i] = true, ++finished;
    Client normal(s.port);
    auto r = normal.request("GET", "/normal");
    if (r && r->status == 200) ++served;
    std::this_thread::sleep_for(100ms);
    if (s.server.stats().request_timeouts == kSlow) break;
  }
  CHECK(s.server.stats().request_timeouts == kSlow);
  for (auto& c : slow) {
    auto r = c->read_reply();
    REQUIRE(r);
    CHECK(r->status == 408);
    CHECK(c->wait_closed());
  }
  CHECK(served > 0);
  CHECK(s.server.stats().requests == static_cast<std::uint64_t>(served));
}

TEST_CASE("idle keep-alive connections close after idle_timeout") {
  net::ServerOptions options;
  options.limits.idle_timeout = 300ms;
  TestServer s(options, echo);
  Client c(s.port);
  REQUIRE(c.request("GET", "/"));
  CHECK(c.wait_closed());
  CHECK(c.received().empty());
  CHECK(eventually([&] { return s.server.stats().idle_closed == 1; }));
}

TEST_CASE("5,000 idle keep-alive connections are held and the server keeps serving") {
  constexpr int kIdle = 5000;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  // Both ends live in this process: two descriptors per connection.
  const rlim_t wanted = 2 * kIdle + 512;
  if (rl.rlim_cur < wanted && rl.rlim_max >= wanted) {
    rl.rlim_cur = wanted;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  REQUIRE_MESSAGE(rl.rlim_cur >= wanted, "RLIMIT_NOFILE too low: " << rl.rlim_cur);
  net::ServerOptions options;
  options.raise_fd_limit = false;
  options.limits.max_connections = kIdle + 10;
  TestServer s(options, echo);
  const long rss_before = rss_kib();
  std::vector<std::unique_ptr<Client>> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) idle.push_back(std::make_unique<Client>(s.port));
  // Every tenth makes a request first, so both never-used and used idle connections count.
  for (int i = 0; i < kIdle; i += 10) REQUIRE(idle[i]->request("GET", "/warm"));
  REQUIRE(eventually([&] { return s.server.stats().connections == kIdle; }));
  const long rss_after = rss_kib();
  MESSAGE("RSS for " << kIdle << " idle connections (both ends in this process): "
                     << (rss_after - rss_before) << " KiB");
  Client fresh(s.port);
  auto r = fresh.request("GET", "/fresh");
  REQUIRE(r);
  CHECK(r->status == 200);
  auto again = idle[kIdle - 1]->request("GET", "/again");
  REQUIRE(again);
  CHECK(again->status == 200);
  CHECK(s.server.stats().connections == kIdle + 1);
  idle.clear();
  CHECK(eventually([&] { return s.server.stats().connections == 1; }));
}

TEST_CASE("deferred answers from another thread, scheduled answers, dropped Responders") {
  std::mutex mutex;
  std::vector<std::thread> threads;
  std::atomic<int> loop_calls{0};
  auto handler = [&](net::Request req, net::Responder res) {
    ++loop_calls;
    if (req.path == "/later") {
      std::lock_guard lock(mutex);
      threads.emplace_back([r = std::move(res)]() mutable {
        std::this_thread::sleep_for(100ms);
        r.send(net::Response::text(200, "from a thread"));
      });
    } else if (req.path == "/scheduled") {
      res.send_at(net::Clock::now() + 300ms, net::Response::text(200, "on time"));
    } else if (req.path == "/throw") {
      throw std::runtime_error("handler bug");
    }
    // "/drop": the Responder goes out of scope unanswered.
  };
  TestServer s({}, handler);
  Client c(s.port);
  auto later = c.request("GET", "/later");
  REQUIRE(later);
  CHECK(later->body == "from a thread");
  // Many scheduled answers at once, one loop thread, no worker: timers, not sleepers.
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<Client>(s.port));
    REQUIRE(clients.back()->send("GET /scheduled HTTP/1.1\r\n\r\n"));
  }
  for (auto& cl : clients) {
    auto r = cl->read_reply();
    REQUIRE(r);
    CHECK(r->body == "on time");
  }
  for (const char* path : {"/drop", "/throw"}) {
    Client d(s.port);
    auto r = d.request("GET", path);
    REQUIRE(r);
    CHECK(r->status == 500);
    CHECK(d.wait_closed());
  }
  std::lock_guard lock(mutex);
  for (auto& t : threads) t.join();
}

TEST_CASE("worker pool runs handlers off the loop thread") {
  net::ServerOptions options;
  options.worker_threads = 3;
  std::mutex mutex;
  std::set<std::thread::id> seen;
  TestServer s(options, [&](net::Request, net::Responder res) {
    {
      std::lock_guard lock(mutex);
      seen.insert(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(50ms);  // real work would block the loop
    res.send(net::Response::text(200, "worked"));
  });
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<Client>(s.port));
    REQUIRE(clients.back()->send("GET / HTTP/1.1\r\n\r\n"));
  }
  for (auto& c : clients) {
    auto r = c->read_reply();
    REQUIRE(r);
    CHECK(r->body == "worked");
  }
  std::lock_guard lock(mutex);
  CHECK(seen.size() >= 2);
  CHECK(seen.count(std::this_thread::get_id()) == 0);
}

TEST_CASE(
    "on_done runs once per response: after the last byte, or when the client went away; large "
    "bodies go out over several loop turns") {
  std::atomic<int> done{0};
  std::atomic<bool> stamped{true};
  TestServer s({}, [&](net::Request req, net::Responder res) {
    // received: set by the server when the request was complete, before this handler.
    stamped =
        stamped && req.received != net::Clock::time_point{} && req.received <= net::Clock::now();
    net::Response r;
    if (req.path == "/cut") {
      r.body = std::string(1000, 'c');
      r.close_after_body_bytes = 500;
    } else {
      // Above the loop's per-turn write budget (1 MiB): sent over several turns.
      r.shared_body = std::make_shared<const std::string>(3 * 1024 * 1024 + 5, 'b');
    }
    r.on_done = [&done] { ++done; };
    res.send(std::move(r));
  });
  Client c(s.port);
  for (int i = 0; i < 3; ++i) {
    auto reply = c.request("GET", "/big");
    REQUIRE(reply);
    CHECK(reply->body == std::string(3 * 1024 * 1024 + 5, 'b'));
  }
  CHECK(eventually([&] { return done == 3; }));
  Client cut(s.port);
  REQUIRE(cut.send("GET /cut HTTP/1.1\r\n\r\n"));
  CHECK(cut.wait_closed());
  CHECK(eventually([&] { return done == 4; }));
  CHECK(stamped);
  std::this_thread::sleep_for(50ms);
  CHECK(done == 4);  // once each, never again at close
}

TEST_CASE("a client that closes mid-request or mid-body is cleaned up") {
  std::atomic<int> closed{0};
  net::Server server({}, echo);
  server.on_close([&](std::uint64_t) { ++closed; });
  auto port = server.listen("127.0.0.1", 0);
  REQUIRE(port);
  server.start();
  {
    Client a(*port);
    REQUIRE(a.send("GET / HTTP/1.1\r\nHost: x"));
    Client b(*port);
    REQUIRE(b.send("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part"));
  }
  CHECK(eventually([&] { return server.stats().connections == 0 && closed == 2; }));
  Client ok(*port);
  auto r = ok.request("GET", "/");
  REQUIRE(r);
  CHECK(r->status == 200);
  server.stop();
}

TEST_CASE("TLS: handshake, SNI, verified client certificate, keep-alive") {
  auto ctx = server_ctx(true);
  TestServer s({}, echo, [&] { return ctx.get(); });
  auto with_cert = client_ctx(true);
  Client c(s.port, with_cert.get(), "win01.sim.test");
  REQUIRE_FALSE(c.handshake_failed());
  auto a = c.request("GET", "/x");
  auto b = c.request("POST", "/y", std::string(100000, 'z'));  // several TLS records
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->body.find("tls=1 sni=win01.sim.test cert=1") != std::string::npos);
  CHECK(b->body.find(std::string(100000, 'z')) != std::string::npos);
  CHECK(conn_of(a->body) == conn_of(b->body));
  auto without = client_ctx(false);
  Client d(s.port, without.get());
  auto r = d.request("GET", "/");
  REQUIRE(r);
  CHECK(r->body.find("tls=1 sni= cert=0") != std::string::npos);
}

TEST_CASE("TLS: handshake garbage and a null context are refused, the server goes on") {
  auto ctx = server_ctx(false);
  std::atomic<bool> refuse{false};
  TestServer s({}, echo, [&]() -> ssl_ctx_st* { return refuse ? nullptr : ctx.get(); });
  {
    Client garbage(s.port);
    REQUIRE(garbage.send("GET / HTTP/1.1\r\n\r\n" + std::string(5000, '\x16')));
    CHECK(garbage.wait_closed());
  }
  CHECK(eventually([&] { return s.server.stats().tls_handshake_failures >= 1; }));
  auto client = client_ctx(false);
  {
    Client ok(s.port, client.get(), "localhost");
    auto r = ok.request("GET", "/");
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  refuse = true;
  Client refused(s.port, client.get(), "localhost");
  CHECK(refused.handshake_failed());
}

TEST_CASE("streamed bodies: shared, generated, paced, and cut short") {
  auto shared = std::make_shared<const std::string>(200000, 's');
  TestServer s({}, [&](net::Request req, net::Responder res) {
    net::Response r;
    if (req.path == "/shared") {
      r.shared_body = shared;
    } else if (req.path == "/generated") {
      r.generated_length = 300000;
      r.body_generator = [](std::size_t offset, char* out, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + (offset + i) % 26);
      };
    } else if (req.path == "/paced") {
      r.body = std::string(1000, 'p');
      r.pace_bytes = 100;
      r.pace_interval = 20ms;
    } else if (req.path == "/cut") {
      r.body = std::string(1000, 'c');
      r.close_after_body_bytes = 500;
    }
    res.send(std::move(r));
  });
  Client c(s.port);
  auto a = c.request("GET", "/shared");
  REQUIRE(a);
  CHECK(a->body == *shared);
  auto g = c.request("GET", "/generated");
  REQUIRE(g);
  REQUIRE(g->body.size() == 300000);
  CHECK(g->body[0] == 'a');
  CHECK(g->body[299999] == static_cast<char>('a' + 299999 % 26));
  auto p = c.request("GET", "/paced");
  REQUIRE(p);
  CHECK(p->body == std::string(1000, 'p'));
  Client cut(s.port);
  REQUIRE(cut.send("GET /cut HTTP/1.1\r\n\r\n"));
  CHECK(cut.wait_closed());  // the body never completes
  const auto& got = cut.received();
  CHECK(got.find("Content-Length: 1000") != std::string::npos);
  CHECK(got.size() - (got.find("\r\n\r\n") + 4) == 500);
}

TEST_CASE(
    "bodies in parts: gathered writes, TLS chunks, HEAD; the last reference freed on a worker") {
  // 5,000 parts of 0-299 bytes and five of 200 KB: more parts than one gathered write takes
  // and more bytes than a socket buffer, so writes end mid-part and resume there.
  struct Owner {
    std::string bytes;
    std::function<void()> on_free;
    ~Owner() {
      if (on_free) on_free();
    }
  };
  std::string expected;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  unsigned seed = 7;
  for (int i = 0; i < 5000; ++i) {
    seed = seed * 1103515245 + 12345;
    const std::size_t length = i % 1000 == 999 ? 200000 : (seed >> 16) % 300;
    ranges.emplace_back(expected.size(), length);
    for (std::size_t k = 0; k < length; ++k) {
      expected += static_cast<char>('A' + (expected.size() * 7 + k) % 61);
    }
  }
  std::mutex mutex;
  std::vector<std::string> freed_on;  // thread names
  auto make_parts = [&] {
    auto owner = std::make_shared<Owner>();
    owner->bytes = expected;
    owner->on_free = [&] {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      std::lock_guard lock(mutex);
      freed_on.emplace_back(name);
    };
    auto parts = std::make_shared<net::BodyParts>();
    for (auto [at, length] : ranges) {
      parts->parts.push_back(std::string_view(owner->bytes).substr(at, length));
    }
    parts->size = owner->bytes.size();
    parts->owner = std::move(owner);
    return parts;
  };
  net::ServerOptions options;
  options.worker_threads = 2;
  options.thread_name = "pt";
  auto handler = [&](net::Request, net::Responder res) {
    net::Response r;
    r.body_parts = make_parts();  // the response holds the only reference
    res.send(std::move(r));
  };
  TestServer plain(options, handler);
  Client c(plain.port);
  auto a = c.request("GET", "/parts");
  REQUIRE(a);
  CHECK(a->body.size() == expected.size());
  CHECK(a->body == expected);
  auto h = c.request("HEAD", "/parts");
  REQUIRE(h);
  CHECK(h->header("Content-Length") == std::to_string(expected.size()));
  CHECK(h->body.empty());
  auto b = c.request("GET", "/parts");  // the HEAD answer left no body bytes behind
  REQUIRE(b);
  CHECK(b->body == expected);
  auto ctx = server_ctx(false);
  TestServer tls(options, handler, [&] { return ctx.get(); });
  auto client = client_ctx(false);
  Client t(tls.port, client.get(), "localhost");
  auto d = t.request("GET", "/parts");
  REQUIRE(d);
  CHECK(d->body == expected);
  // Each body was freed once, never on the loop thread (a large page takes milliseconds).
  CHECK(eventually([&] {
    std::lock_guard lock(mutex);
    return freed_on.size() == 4;
  }));
  std::lock_guard lock(mutex);
  for (const auto& name : freed_on) CHECK(name == "pt-worker");
}

TEST_CASE("run_inline: chosen requests are handled on the loop thread, the rest on workers") {
  net::ServerOptions options;
  options.worker_threads = 2;
  options.thread_name = "ri";
  options.run_inline = [](const net::Request& request) { return request.path == "/fast"; };
  TestServer s(options, [](net::Request, net::Responder res) {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    res.send(net::Response::text(200, name));
  });
  Client c(s.port);
  for (int i = 0; i < 3; ++i) {
    auto fast = c.request("GET", "/fast?x=1");
    REQUIRE(fast);
    CHECK(fast->body == "ri-loop");
    auto slow = c.request("GET", "/slow");
    REQUIRE(slow);
    CHECK(slow->body == "ri-worker");
  }
}

TEST_CASE("a client that never reads is closed at the write timeout") {
  net::ServerOptions options;
  options.limits.write_timeout = 500ms;
  auto big = std::make_shared<const std::string>(64 << 20, 'b');
  TestServer s(options, [&](net::Request, net::Responder res) {
    net::Response r;
    r.shared_body = big;
    res.send(std::move(r));
  });
  Client c(s.port);
  REQUIRE(c.send("GET / HTTP/1.1\r\n\r\n"));
  CHECK(eventually([&] { return s.server.stats().write_timeouts == 1; }));
  CHECK(eventually([&] { return s.server.stats().connections == 0; }));
}

TEST_CASE("stop() lets an in-flight request finish and closes idle connections") {
  std::atomic<bool> entered{false};
  net::ServerOptions options;
  options.stop_grace = 5s;
  auto server = std::make_unique<TestServer>(options, [&](net::Request, net::Responder res) {
    entered = true;
    res.send_at(net::Clock::now() + 300ms, net::Response::text(200, "finished"));
  });
  Client idle(server->port);
  Client busy(server->port);
  REQUIRE(busy.send("GET / HTTP/1.1\r\n\r\n"));
  REQUIRE(eventually([&] { return entered.load(); }));
  server->server.stop();
  auto r = busy.read_reply();
  REQUIRE(r);
  CHECK(r->body == "finished");
  CHECK(r->header("Connection") == "close");
  CHECK(idle.wait_closed());
  server.reset();
}

}  // namespace test_server
