// Transport (libcurl) and Basic auth against in-process cpp-httplib servers on loopback.
// Hostile byte streams are in test_hostile.cpp.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testsupport/temp_dir.h"
#include "winrm/auth.h"
#include "winrm/task.h"
#include "winrm/transport.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_transport {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using testsupport::TempDir;

// Two independent CAs, each with a server certificate for localhost/*.sim.test/127.0.0.1.
struct Certs {
  TempDir dir;
  fs::path good, other;
  Certs() {
    good = dir.path() / "good";
    other = dir.path() / "other";
    for (const auto& d : {good, other}) {
      const std::string cmd =
          std::string("sh ") + WINRM_TEST_SCRIPTS + "/gen-certs.sh " + d.string();
      REQUIRE(std::system(cmd.c_str()) == 0);
      REQUIRE(fs::exists(d / "server.pem"));
    }
  }
};

const Certs& certs() {
  static Certs instance;
  return instance;
}

// A server running on its own thread; stopped and joined on scope exit.
class TestServer {
 public:
  explicit TestServer(bool tls) {
    if (tls) {
      const auto& c = certs();
      server_ = std::make_unique<httplib::SSLServer>((c.good / "server.pem").c_str(),
                                                     (c.good / "server.key").c_str());
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
    // httplib closes keep-alive connections after 5 requests by default; HTTP.sys does not.
    server_->set_keep_alive_max_count(100000);
    server_->set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms per response
  }
  httplib::Server& server() { return *server_; }
  void start(const char* address = "127.0.0.1") {
    port_ = server_->bind_to_any_port(address);
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    for (int i = 0; i < 200 && !server_->is_running(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(server_->is_running());
  }
  ~TestServer() {
    stopping = true;
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }
  // Handlers that block poll this so the server can shut down.
  std::atomic<bool> stopping{false};
  std::atomic<int> requests{0};
  // Written by the server's threads, read by the test: the TCP answer orders them, which
  // TSan cannot see, hence the lock.
  std::string last_host() {
    std::lock_guard lock(last_mutex);
    return last_host_;
  }
  httplib::Headers last_headers() {
    std::lock_guard lock(last_mutex);
    return last_headers_;
  }
  std::mutex last_mutex;
  std::string last_host_;
  httplib::Headers last_headers_;

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

void serve_ok(TestServer& s) {
  s.server().Post("/wsman", [&s](const httplib::Request& req, httplib::Response& res) {
    s.requests++;
    std::lock_guard lock(s.last_mutex);
    s.last_host_ = req.get_header_value("Host");
    s.last_headers_ = req.headers;
    res.set_content("<ok/>", "application/soap+xml;charset=UTF-8");
  });
}

winrm::EndpointOptions https_endpoint(int port, const fs::path& ca_dir) {
  winrm::EndpointOptions e;
  e.host = "localhost";
  e.connect_address = "127.0.0.1";
  e.port = port;
  e.scheme = winrm::Scheme::kHttps;
  e.ca_file = (ca_dir / "ca.pem").string();
  return e;
}

winrm::EndpointOptions http_endpoint(int port) {
  winrm::EndpointOptions e;
  e.host = "localhost";
  e.connect_address = "127.0.0.1";
  e.port = port;
  e.scheme = winrm::Scheme::kHttp;
  return e;
}

winrm::Deadline in(std::chrono::milliseconds d) { return winrm::Clock::now() + d; }

winrm::HttpRequest soap(std::string body = "<e/>") {
  winrm::HttpRequest r;
  r.body = std::move(body);
  return r;
}

// SHA-256 of the certificate DER, computed independently of the transport.
std::string sha256_of_cert(const fs::path& pem) {
  FILE* f = std::fopen(pem.c_str(), "r");
  REQUIRE(f != nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(cert != nullptr);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(X509_digest(cert, EVP_sha256(), md, &len) == 1);
  X509_free(cert);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

TEST_CASE("https with the right CA verifies, sends Host and exposes tls-server-end-point") {
  TestServer s(true);
  serve_ok(s);
  s.start();
  auto counters = std::make_shared<winrm::TransportCounters>();
  auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().good), counters);
  CHECK_FALSE(conn->tls_server_end_point().has_value());
  auto r = conn->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->status == 200);
  CHECK(r->body == "<ok/>");
  CHECK(r->header("content-type").value_or("").starts_with("application/soap+xml"));
  CHECK(s.last_host() == "localhost:" + std::to_string(s.port()));
  auto cbt = conn->tls_server_end_point();
  REQUIRE(cbt.has_value());
  CHECK(*cbt == "tls-server-end-point:" + sha256_of_cert(certs().good / "server.pem"));
  CHECK(counters->tls_handshakes.load() == 1);
  CHECK(counters->connections_opened.load() == 1);
  CHECK(counters->requests.load() == 1);
  CHECK(counters->bytes_sent.load() == 4);
  CHECK(counters->bytes_received.load() == 5);
}

TEST_CASE("https fails with kTls for a wrong CA or a wrong host name; insecure opt-in connects") {
  TestServer s(true);
  serve_ok(s);
  s.start();
  SUBCASE("wrong CA") {
    auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().other), nullptr);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTls);
    CHECK(s.requests.load() == 0);
  }
  SUBCASE("wrong CA right after a verified connection on the same thread") {
    // Transfers share the thread's multi handle, where libcurl 7.88 would cache the first
    // connection's CA store and reuse it for the next (CURLOPT_CA_CACHE_TIMEOUT 0 stops it).
    auto good = winrm::make_http_connection(https_endpoint(s.port(), certs().good), nullptr);
    auto ok = good->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(ok.has_value(), ok.error().message);
    auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().other), nullptr);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTls);
    CHECK(s.requests.load() == 1);
  }
  SUBCASE("wrong host name") {
    auto e = https_endpoint(s.port(), certs().good);
    e.host = "wrong.example.org";
    auto conn = winrm::make_http_connection(e, nullptr);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTls);
    CHECK(s.requests.load() == 0);
  }
  SUBCASE("insecure_skip_verify with a wrong CA and host") {
    auto e = https_endpoint(s.port(), certs().other);
    e.host = "wrong.example.org";
    e.insecure_skip_verify = true;
    auto conn = winrm::make_http_connection(e, nullptr);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
    CHECK(s.requests.load() == 1);
    CHECK(conn->tls_server_end_point().has_value());
  }
}

TEST_CASE("connect_address is dialled while host names the server") {
  TestServer s(true);
  serve_ok(s);
  s.start();
  auto e = https_endpoint(s.port(), certs().good);
  e.host = "win01.sim.test";  // not resolvable; covered by the *.sim.test SAN
  auto conn = winrm::make_http_connection(e, nullptr);
  auto r = conn->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(s.last_host() == "win01.sim.test:" + std::to_string(s.port()));
  CHECK(e.url() == "https://win01.sim.test:" + std::to_string(s.port()) + "/wsman");
}

TEST_CASE("connection refused is a transport error") {
  // Bound but never listening: connects to it are refused.
  const int sock = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const int port = ntohs(addr.sin_port);
  auto conn = winrm::make_http_connection(http_endpoint(port), nullptr);
  auto r = conn->round_trip(soap(), in(5s));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == winrm::ErrorKind::kTransport);
  ::close(sock);
}

TEST_CASE("deadline holds against a server trickling the body") {
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    TestServer s(tls);
    s.server().Post("/wsman", [&s](const httplib::Request&, httplib::Response& res) {
      res.set_content_provider(100, "application/soap+xml",
                               [&s](size_t offset, size_t, httplib::DataSink& sink) {
                                 if (s.stopping) return false;
                                 sink.write("x", 1);
                                 std::this_thread::sleep_for(100ms);
                                 return offset < 100;
                               });
    });
    s.start();
    auto e = tls ? https_endpoint(s.port(), certs().good) : http_endpoint(s.port());
    auto conn = winrm::make_http_connection(e, nullptr);
    const auto start = winrm::Clock::now();
    auto r = conn->round_trip(soap(), start + 1s);
    const auto elapsed = winrm::Clock::now() - start;
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTimeout);
    // Sanity bound only: the full trickle takes 10 s.
    CHECK(elapsed < 6s);
  }
}

TEST_CASE("deadline holds against a server that stalls before the status line") {
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    TestServer s(tls);
    s.server().Post("/wsman", [&s](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 200 && !s.stopping; ++i) std::this_thread::sleep_for(50ms);
      res.set_content("<late/>", "application/soap+xml");
    });
    s.start();
    auto e = tls ? https_endpoint(s.port(), certs().good) : http_endpoint(s.port());
    auto conn = winrm::make_http_connection(e, nullptr);
    const auto start = winrm::Clock::now();
    auto r = conn->round_trip(soap(), start + 1s);
    const auto elapsed = winrm::Clock::now() - start;
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTimeout);
    CHECK(elapsed < 6s);  // the stall lasts 10 s
  }
}

TEST_CASE("responses over max_response_bytes are refused") {
  TestServer s(false);
  s.server().Post("/sized", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(5000, 'a'), "application/soap+xml");
  });
  s.server().Post("/chunked", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("application/soap+xml",
                                     [](size_t offset, httplib::DataSink& sink) {
                                       if (offset >= 50000) {
                                         sink.done();
                                         return true;
                                       }
                                       sink.write(std::string(1000, 'b').data(), 1000);
                                       return true;
                                     });
  });
  s.start();
  for (std::string path : {"/sized", "/chunked"}) {
    CAPTURE(path);
    auto e = http_endpoint(s.port());
    e.path = path;
    e.max_response_bytes = 1000;
    auto conn = winrm::make_http_connection(e, nullptr);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kTransport);
    CHECK(r.error().message == "response exceeds 1000 bytes");
    // With a larger cap the same response is accepted.
    e.max_response_bytes = 100000;
    auto conn2 = winrm::make_http_connection(e, nullptr);
    auto ok = conn2->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(ok.has_value(), ok.error().message);
    CHECK(ok->body.size() >= 5000);
  }
}

TEST_CASE("reconnects after the server closed an idle keep-alive connection") {
  for (bool tls : {true, false}) {
    CAPTURE(tls);
    TestServer s(tls);
    serve_ok(s);
    s.server().set_keep_alive_timeout(1);
    s.start();
    auto counters = std::make_shared<winrm::TransportCounters>();
    auto e = tls ? https_endpoint(s.port(), certs().good) : http_endpoint(s.port());
    auto conn = winrm::make_http_connection(e, counters);
    REQUIRE(conn->round_trip(soap(), in(5s)).has_value());
    const auto first_id = conn->connection_id();
    std::this_thread::sleep_for(1500ms);
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
    CHECK(r->body == "<ok/>");
    CHECK(counters->reconnects.load() == 1);
    CHECK(counters->connections_opened.load() == 2);
    CHECK(conn->connection_id() != first_id);
    CHECK(s.requests.load() == 2);
  }
}

TEST_CASE("100 sequential requests share one TLS connection") {
  TestServer s(true);
  serve_ok(s);
  s.start();
  auto counters = std::make_shared<winrm::TransportCounters>();
  auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().good), counters);
  for (int i = 0; i < 100; ++i) {
    auto r = conn->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
  }
  CHECK(s.requests.load() == 100);
  CHECK(counters->requests.load() == 100);
  CHECK(counters->connections_opened.load() == 1);
  CHECK(counters->tls_handshakes.load() == 1);
  CHECK(counters->reconnects.load() == 0);
}

TEST_CASE("basic auth: header sent, 401 becomes kAuth naming schemes, http refused") {
  TestServer s(true);
  s.server().Post("/wsman", [&s](const httplib::Request& req, httplib::Response& res) {
    s.requests++;
    // "monitor:s3cret"
    if (req.get_header_value("Authorization") == "Basic bW9uaXRvcjpzM2NyZXQ=") {
      res.set_content("<ok/>", "application/soap+xml");
      return;
    }
    res.status = 401;
    res.headers.emplace("WWW-Authenticate", "Negotiate");
    res.headers.emplace("WWW-Authenticate", "Kerberos");
    res.headers.emplace("WWW-Authenticate", "Basic realm=\"WSMAN\"");
  });
  s.start();
  auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().good), nullptr);

  auto good = winrm::make_basic_auth("monitor", "s3cret");
  CHECK(good->name() == "basic");
  auto r = good->send(*conn, "<e/>", in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(r->body == "<ok/>");

  auto bad = winrm::make_basic_auth("monitor", "wrong-password");
  auto denied = bad->send(*conn, "<e/>", in(5s));
  REQUIRE_FALSE(denied.has_value());
  CHECK(denied.error().kind == winrm::ErrorKind::kAuth);
  CHECK(denied.error().http_status == 401);
  CHECK(denied.error().message.find("Negotiate, Kerberos, Basic") != std::string::npos);
  CHECK(denied.error().message.find("wrong-password") == std::string::npos);

  auto none = winrm::make_no_auth()->send(*conn, "<e/>", in(5s));
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error().kind == winrm::ErrorKind::kAuth);
  CHECK(s.requests.load() == 3);

  auto plain = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  auto refused = good->send(*plain, "<e/>", in(5s));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().kind == winrm::ErrorKind::kAuth);
  CHECK(refused.error().message == "basic auth over http refused");
  CHECK(s.requests.load() == 3);  // nothing was sent
}

TEST_CASE("request headers: identity encoding, no Expect, user agent, extra headers") {
  TestServer s(false);
  serve_ok(s);
  s.start();
  auto conn = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  auto request = soap(std::string(200000, 'x'));  // large enough for curl's 100-continue
  request.headers.emplace_back("X-Extra", "one");
  auto r = conn->round_trip(request, in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  const auto header = [&](const char* name) {
    const auto headers = s.last_headers();
    auto it = headers.find(name);
    return it == headers.end() ? std::string("<absent>") : it->second;
  };
  CHECK(header("Accept-Encoding") == "identity");
  CHECK(header("Expect") == "<absent>");
  CHECK(header("User-Agent") == "winrm_exporter");
  CHECK(header("X-Extra") == "one");
  CHECK(header("Content-Type") == "application/soap+xml;charset=UTF-8");
  CHECK(header("Content-Length") == "200000");
  // The header list buffers are reused: a request with fewer headers sends only those.
  auto r2 = conn->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r2.has_value(), r2.error().message);
  CHECK(header("X-Extra") == "<absent>");
}

TEST_CASE("an IPv6 literal host and connect address work") {
  TestServer s(false);
  serve_ok(s);
  s.start("::1");
  winrm::EndpointOptions e = http_endpoint(s.port());
  e.host = "::1";
  e.connect_address.clear();
  auto conn = winrm::make_http_connection(e, nullptr);
  auto r = conn->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(s.last_host() == "[::1]:" + std::to_string(s.port()));

  e.host = "win01.sim.test";
  e.connect_address = "::1";
  auto via = winrm::make_http_connection(e, nullptr);
  auto r2 = via->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r2.has_value(), r2.error().message);
  CHECK(s.last_host() == "win01.sim.test:" + std::to_string(s.port()));
}

TEST_CASE("http_proxy in the environment does not capture WinRM traffic") {
  TestServer s(false);
  serve_ok(s);
  s.start();
  // A proxy that does not exist: used, it would fail the request.
  setenv("http_proxy", "http://127.0.0.1:1", 1);
  setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
  auto conn = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  auto r = conn->round_trip(soap(), in(5s));
  unsetenv("http_proxy");
  unsetenv("HTTPS_PROXY");
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(s.requests.load() == 1);
}

TEST_CASE("is_connected and close(): a closed connection is replaced by a new one") {
  TestServer s(true);
  serve_ok(s);
  s.start();
  auto counters = std::make_shared<winrm::TransportCounters>();
  auto conn = winrm::make_http_connection(https_endpoint(s.port(), certs().good), counters);
  CHECK_FALSE(conn->is_connected());
  REQUIRE(conn->round_trip(soap(), in(5s)).has_value());
  CHECK(conn->is_connected());
  const auto first_id = conn->connection_id();
  const auto cbt = conn->tls_server_end_point();
  REQUIRE(cbt.has_value());
  conn->close();
  CHECK_FALSE(conn->is_connected());
  auto r = conn->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(conn->is_connected());
  CHECK(conn->connection_id() != first_id);
  CHECK(conn->tls_server_end_point() == cbt);
  CHECK(counters->connections_opened.load() == 2);
  CHECK(counters->tls_handshakes.load() == 2);
  CHECK(counters->reconnects.load() == 1);
}

namespace {
int open_fds() {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++count;
  }
  return count;
}
}  // namespace

TEST_CASE("two connections to one host never swap TCP connections, whichever thread runs them") {
  // Kerberos/NTLM contexts and message encryption are bound to the TCP connection: a
  // keep-alive connection must stay with the Connection that opened it, also now that
  // transfers run on a multi handle per thread (each Connection keeps its own cache).
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    TestServer s(tls);
    s.server().Post("/wsman", [&s](const httplib::Request& req, httplib::Response& res) {
      s.requests++;
      res.set_content(std::to_string(req.remote_port), "text/plain");  // the client's port
    });
    s.start();
    auto counters = std::make_shared<winrm::TransportCounters>();
    const auto endpoint = tls ? https_endpoint(s.port(), certs().good) : http_endpoint(s.port());
    auto a = winrm::make_http_connection(endpoint, counters);
    auto b = winrm::make_http_connection(endpoint, counters);
    auto port_of = [](winrm::Connection& conn) {
      auto r = conn.round_trip(soap(), in(5s));
      REQUIRE_MESSAGE(r.has_value(), r.error().message);
      return r->body;
    };
    const std::string port_a = port_of(*a);
    const std::string port_b = port_of(*b);
    CHECK(port_a != port_b);
    for (int round = 0; round < 6; ++round) {
      CAPTURE(round);
      // Alternate on this thread, then each on a thread of its own (another multi handle).
      CHECK(port_of(*a) == port_a);
      CHECK(port_of(*b) == port_b);
      std::string seen_a, seen_b;
      std::thread([&] { seen_a = port_of(*a); }).join();
      std::thread([&] { seen_b = port_of(*b); }).join();
      CHECK(seen_a == port_a);
      CHECK(seen_b == port_b);
    }
    CHECK(counters->connections_opened.load() == 2);
    CHECK(counters->reconnects.load() == 0);
    CHECK(a->is_connected());
    CHECK(b->is_connected());

    // close() really closes A's socket (its cache goes with it); B keeps its connection.
    const int fds_connected = open_fds();
    a->close();
    CHECK(open_fds() < fds_connected);  // our end at once (the server's end follows)
    const std::string new_port_a = port_of(*a);
    CHECK(new_port_a != port_a);
    CHECK(new_port_a != port_b);
    CHECK(port_of(*b) == port_b);
    CHECK(counters->connections_opened.load() == 3);
  }
}

TEST_CASE("native TLS connections share one SSL_CTX per TLS configuration") {
  // libcurl 7.88 built an SSL_CTX per connection; the native transport keeps one per trust
  // store and verification setting, however many connections use it.
  if (const char* t = std::getenv("WINRM_EXPORTER_TRANSPORT"); t && std::string_view(t) == "curl") {
    return;  // the libcurl transport was asked for: it has no shared contexts
  }
  TestServer s(true);
  serve_ok(s);
  s.start();
  const std::size_t before = winrm::native_tls_contexts();
  std::vector<std::unique_ptr<winrm::Connection>> verified;
  for (int i = 0; i < 3; ++i) {
    verified.push_back(
        winrm::make_http_connection(https_endpoint(s.port(), certs().good), nullptr));
    auto r = verified.back()->round_trip(soap(), in(5s));
    REQUIRE_MESSAGE(r.has_value(), r.error().message);
    CHECK(verified.back()->is_connected());
  }
  CHECK(winrm::native_tls_contexts() == before + 1);  // three connections, one context
  auto e = https_endpoint(s.port(), certs().good);
  e.insecure_skip_verify = true;  // another configuration: its own context
  auto insecure = winrm::make_http_connection(e, nullptr);
  auto r = insecure->round_trip(soap(), in(5s));
  REQUIRE_MESSAGE(r.has_value(), r.error().message);
  CHECK(winrm::native_tls_contexts() == before + 2);
  verified.clear();
  insecure.reset();
  CHECK(winrm::native_tls_contexts() == before);  // freed with their last connection
}

TEST_CASE("a deadline already passed fails at once with kTimeout") {
  TestServer s(false);
  serve_ok(s);
  s.start();
  auto conn = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  auto r = conn->round_trip(soap(), winrm::Clock::now() - 1ms);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == winrm::ErrorKind::kTimeout);
  CHECK(s.requests.load() == 0);
}

namespace {
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("TLS connections share one parsed CA bundle instead of one copy each") {
  // The system bundle (~140 CAs) plus the test CA: parsed per connection it costs about
  // 1 MB each; shared, a connection costs its TLS state only.
  const fs::path bundle = certs().good.parent_path() / "bundle.pem";
  {
    std::ofstream out(bundle, std::ios::binary);
    std::ifstream system_bundle("/etc/ssl/certs/ca-certificates.crt", std::ios::binary);
    REQUIRE(system_bundle.good());
    out << system_bundle.rdbuf();
    std::ifstream test_ca(certs().good / "ca.pem", std::ios::binary);
    out << test_ca.rdbuf();
  }
  constexpr int kConnections = 200;
  TestServer s(true);
  s.server().new_task_queue = [] { return new httplib::ThreadPool(kConnections + 8); };
  serve_ok(s);
  s.start();
  auto endpoint = https_endpoint(s.port(), certs().good);
  endpoint.ca_file = bundle.string();
  std::vector<std::unique_ptr<winrm::Connection>> connections;
  auto warm = winrm::make_http_connection(endpoint, nullptr);  // first parse, TLS init
  REQUIRE(warm->round_trip(soap(), in(10s)).has_value());
  const std::size_t before = resident_bytes();
  const int fds_before = open_fds();
  for (int i = 0; i < kConnections; ++i) {
    connections.push_back(winrm::make_http_connection(endpoint, nullptr));
    auto r = connections.back()->round_trip(soap(), in(10s));
    if (!r) FAIL("connection " << i << ": " << r.error().message);
    CHECK(connections.back()->is_connected());
  }
  // One socket per connection on each side. curl_easy_perform's hidden multi handle
  // per easy handle added a socketpair per connection (4 per connection here).
  const int fd_growth = open_fds() - fds_before;
  MESSAGE("fds for " << kConnections << " live TLS connections (both sides): " << fd_growth);
  CHECK(fd_growth <= 2 * kConnections + 8);
  const double growth_mib = static_cast<double>(resident_bytes() - before) / (1 << 20);
  MESSAGE("RSS growth for " << kConnections << " live TLS connections (client and server side): "
                            << growth_mib << " MiB");
// ASan's quarantine and shadow memory, and TSan's shadow memory, inflate RSS.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(growth_mib < 64.0);
#endif
  CHECK(s.requests.load() == kConnections + 1);
}

namespace {

std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Collects the results of Connection::start callbacks (called on the I/O thread).
struct Results {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<winrm::Result<winrm::HttpResponse>> done;
  winrm::ResponseCallback callback() {
    return [this](winrm::Result<winrm::HttpResponse> r) {
      std::lock_guard lock(mutex);
      done.push_back(std::move(r));
      changed.notify_all();
    };
  }
  // Bounded wait for n results; the number there is.
  std::size_t wait_for(std::size_t n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex);
    changed.wait_for(lock, limit, [&] { return done.size() >= n; });
    return done.size();
  }
};

}  // namespace

TEST_CASE("200 requests in flight at once on the one I/O thread, with no thread each") {
  constexpr int kRequests = 200;
  TestServer s(false);
  // The server holds every request until all are in flight, so the client must have all
  // of them open at once (bounded: 10 s, then it answers anyway and the check below fails).
  s.server().new_task_queue = [] { return new httplib::ThreadPool(kRequests + 8); };
  s.server().set_keep_alive_timeout(120);  // the warm connections below stay open
  std::mutex mutex;
  std::condition_variable all_in;
  int in_flight = 0;
  int most_in_flight = 0;
  std::size_t threads_while_all_in = 0;
  s.server().Post("/wsman", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.body == "<warm/>") {  // the warm-up request below is answered at once
      res.set_content(req.body, "application/soap+xml");
      return;
    }
    std::unique_lock lock(mutex);
    most_in_flight = std::max(most_in_flight, ++in_flight);
    if (in_flight == kRequests) {
      threads_while_all_in = thread_count();
      all_in.notify_all();
    }
    all_in.wait_for(lock, 10s, [&] { return most_in_flight == kRequests || s.stopping; });
    --in_flight;
    res.set_content(req.body, "application/soap+xml");
  });
  s.start();
  std::vector<std::unique_ptr<winrm::Connection>> conns;
  std::vector<winrm::HttpRequest> requests(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    conns.push_back(winrm::make_http_connection(http_endpoint(s.port()), nullptr));
    requests[static_cast<std::size_t>(i)] = soap("<e n='" + std::to_string(i) + "'/>");
  }
  // Open every connection first, one at a time: the burst below then needs no connect
  // (cpp-httplib listens with a backlog of 5, so 200 connects at once on a loaded machine
  // wait for SYN retransmissions). This also starts the I/O thread before it is counted.
  for (auto& conn : conns) REQUIRE(conn->round_trip(soap("<warm/>"), in(30s)).has_value());
  const std::size_t threads_before = thread_count();
  Results results;
  for (int i = 0; i < kRequests; ++i) {
    conns[static_cast<std::size_t>(i)]->start(requests[static_cast<std::size_t>(i)], in(30s),
                                              results.callback());
  }
  REQUIRE(results.wait_for(kRequests, 30s) == kRequests);
  std::unique_lock server_lock(mutex);  // the handlers wrote these
  CHECK(most_in_flight == kRequests);
  // Only the server's pool is busy: the client added no thread per request.
  CHECK(threads_while_all_in <= threads_before + 2);
  server_lock.unlock();
  std::set<std::string> bodies;
  for (auto& r : results.done) {
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    bodies.insert(r->body);
  }
  CHECK(bodies.size() == kRequests);  // each got its own answer
  // The connections stay open for reuse: a second round opens none.
  for (auto& conn : conns) CHECK(conn->is_connected());
}

TEST_CASE("shutdown cuts requests in flight on the I/O thread within about a second") {
  TestServer s(false);
  s.server().new_task_queue = [] { return new httplib::ThreadPool(40); };
  std::atomic<int> arrived{0};
  s.server().Post("/wsman", [&](const httplib::Request&, httplib::Response& res) {
    arrived++;
    for (int i = 0; i < 600 && !s.stopping; ++i) std::this_thread::sleep_for(50ms);
    res.set_content("<late/>", "application/soap+xml");
  });
  s.start();
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto endpoint = http_endpoint(s.port());
  endpoint.cancel = cancel;
  std::vector<std::unique_ptr<winrm::Connection>> conns;
  for (int i = 0; i < 20; ++i) conns.push_back(winrm::make_http_connection(endpoint, nullptr));
  const auto request = soap();
  Results results;
  for (auto& conn : conns) conn->start(request, in(60s), results.callback());
  for (int i = 0; i < 200 && arrived.load() < 20; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(arrived.load() == 20);  // all waiting for an answer: no socket activity
  const auto cut_at = winrm::Clock::now();
  cancel->store(true);
  // Silent sockets see no progress callback before their 60 s deadline; the loop's own
  // check ends them. The bound is generous for a loaded machine, far below the deadline.
  REQUIRE(results.wait_for(20, 15s) == 20);
  CHECK(winrm::Clock::now() - cut_at < 15s);
  for (auto& r : results.done) {
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == winrm::ErrorKind::kCancelled);
    CHECK(r.error().cancelled);
    CHECK(r.error().message.find("cancelled (shutting down) during waiting for response") == 0);
  }
  for (auto& conn : conns) CHECK_FALSE(conn->is_connected());  // a cut connection is gone
  // A request that starts after the flag went up fails at once without reaching the server.
  auto late = conns[0]->round_trip(request, in(60s));
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().kind == winrm::ErrorKind::kCancelled);
  CHECK(arrived.load() == 20);
}

TEST_CASE("a deadline that passes while the request waits for the I/O thread is a timeout") {
  TestServer s(false);
  serve_ok(s);
  s.start();
  auto conn = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  REQUIRE(conn->round_trip(soap(), in(5s)).has_value());  // the I/O thread runs
  const int before = s.requests.load();
  // Hold the I/O thread longer than the request's deadline.
  std::atomic<bool> held{false};
  winrm::run_on_io_thread([&held] {
    held = true;
    std::this_thread::sleep_for(500ms);
  });
  for (int i = 0; i < 500 && !held; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(held.load());
  auto r = conn->round_trip(soap(), in(100ms));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().kind == winrm::ErrorKind::kTimeout);
  CHECK(r.error().message.find("queued for the I/O thread") != std::string::npos);
  CHECK(s.requests.load() == before);  // never sent
  // The connection is still usable afterwards.
  auto again = conn->round_trip(soap(), in(5s));
  REQUIRE(again.has_value());
  CHECK(again->status == 200);
}

namespace {

// Where each step of the chain below ran.
struct Steps {
  int ok = 0;             // small answers with status 200
  int small_on_io = 0;    // of them, resumed on the I/O thread
  int first_on_io = -1;   // the first of them resumed there
  bool big_on_io = true;  // a 100 KB answer: resumed on the executor
  bool executor_on_io = true;
  bool after_leave_on_io = true;
  std::optional<winrm::Error> blocking_error;  // round_trip called on the I/O thread
  bool done_on_io = true;
};

winrm::Task<void> resume_chain(winrm::Connection& conn, Steps& steps) {
  const winrm::HttpRequest small = soap("<small/>");
  const winrm::HttpRequest big = soap("<big/>");
  // Each request after the first is started from the I/O thread itself: the loop must take
  // it on without a wake-up write (else the chain stalls and the watchdog below fires).
  for (int i = 0; i < 20; ++i) {
    auto r = co_await winrm::send_request(conn, small, in(10s), winrm::Resume::kInlineIfSmall);
    if (r && r->status == 200 && r->body == "<ok/>") steps.ok++;
    if (winrm::on_io_thread()) {
      steps.small_on_io++;
      if (steps.first_on_io < 0) steps.first_on_io = i;
    }
  }
  auto large = co_await winrm::send_request(conn, big, in(10s), winrm::Resume::kInlineIfSmall);
  steps.big_on_io = winrm::on_io_thread();
  if (!large || large->body.size() <= winrm::kInlineResumeMaxBody) co_return;
  auto plain = co_await winrm::send_request(conn, small, in(10s), winrm::Resume::kExecutor);
  steps.executor_on_io = winrm::on_io_thread();
  auto inline_again =
      co_await winrm::send_request(conn, small, in(10s), winrm::Resume::kInlineIfSmall);
  if (winrm::on_io_thread()) {
    // A blocking call here would wait for this very thread: refused, not a hang.
    auto blocked = conn.round_trip(small, in(10s));
    if (!blocked) steps.blocking_error = blocked.error();
  }
  co_await winrm::leave_io_thread();
  steps.after_leave_on_io = winrm::on_io_thread();
  // The next request once more from the I/O thread; run_sync's end comes back here.
  auto last = co_await winrm::send_request(conn, small, in(10s), winrm::Resume::kInlineIfSmall);
  (void)plain;
  (void)inline_again;
  (void)last;
}

}  // namespace

TEST_CASE("a small answer resumes its chain on the I/O thread, a large one on the executor") {
  TestServer s(false);
  s.server().Post("/wsman", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body == "<big/>" ? std::string(100 * 1024, 'x') : "<ok/>",
                    "application/soap+xml");
  });
  s.start();
  auto conn = winrm::make_http_connection(http_endpoint(s.port()), nullptr);
  Steps steps;
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  std::thread runner([&] {
    winrm::run_sync(resume_chain(*conn, steps));
    std::lock_guard lock(mutex);
    steps.done_on_io = winrm::on_io_thread();
    done = true;
    finished.notify_all();
  });
  {
    std::unique_lock lock(mutex);
    if (!finished.wait_for(lock, 60s, [&] { return done; })) {
      // The chain stalled on the I/O thread: no way to unwind it, so end the test run.
      std::fprintf(stderr, "FAIL: the chain did not finish within 60 s\n");
      std::_Exit(1);
    }
  }
  runner.join();
  CHECK(steps.ok == 20);
  // A request started off the I/O thread may be answered before its awaiter suspends; the
  // chain then goes on where it was (RequestAwaiter): a fast answer to the first request on a
  // loaded machine. From the first one resumed on the I/O thread, every one must be.
  REQUIRE(steps.first_on_io >= 0);
  CHECK(steps.small_on_io == 20 - steps.first_on_io);
  CHECK_FALSE(steps.big_on_io);
  CHECK_FALSE(steps.executor_on_io);
  REQUIRE(steps.blocking_error.has_value());
  CHECK(steps.blocking_error->kind == winrm::ErrorKind::kTransport);
  CHECK(steps.blocking_error->message.find("blocking round trip on the winrm I/O thread") == 0);
  CHECK_FALSE(steps.after_leave_on_io);
  CHECK_FALSE(steps.done_on_io);
  CHECK(conn->is_connected());  // one keep-alive connection throughout
}

}  // namespace test_transport
