// "Any byte stream is survivable": scripted hostile servers (hostile_server.h)
// against the real transport and the real `winrm_exporter query` binary. Every case
// checks the error class, that the call returned within its deadline + 1 s, and that the
// client's peak RSS grew by less than 64 MiB.
#include <dlfcn.h>
#include <doctest/doctest.h>
#include <netdb.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "hostile_server.h"
#include "testsupport/temp_dir.h"
#include "winrm/name_lookups.h"
#include "winrm/transport.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_hostile {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using winrm::ErrorKind;

namespace {

// ASan's and TSan's shadow memory (and ASan's quarantine) inflate RSS: the bound means
// nothing there (TSan: 176,750,592 bytes of growth for the 16 MiB body cap case).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kRssBound = 1L << 40;
#else
constexpr long kRssBound = 64L << 20;
#endif

using testsupport::TempDir;

// Two unrelated CAs with a server certificate each (localhost, 127.0.0.1).
struct Certs {
  TempDir dir;
  fs::path good, other;
  Certs() {
    good = dir / "good";
    other = dir / "other";
    for (const auto& d : {good, other}) {
      const std::string cmd =
          std::string("sh ") + WINRM_TEST_SCRIPTS + "/gen-certs.sh " + d.string();
      REQUIRE(std::system(cmd.c_str()) == 0);
    }
  }
  hostile::TlsFiles tls(const fs::path& d) const {
    return {(d / "server.pem").string(), (d / "server.key").string()};
  }
};

const Certs& certs() {
  static Certs instance;
  return instance;
}

winrm::EndpointOptions endpoint(int port, bool tls = false) {
  winrm::EndpointOptions e;
  e.host = "localhost";
  e.connect_address = "127.0.0.1";
  e.port = port;
  e.scheme = tls ? winrm::Scheme::kHttps : winrm::Scheme::kHttp;
  if (tls) e.ca_file = (certs().good / "ca.pem").string();
  return e;
}

struct Outcome {
  winrm::Result<winrm::HttpResponse> result;
  winrm::Clock::duration elapsed{};
  std::chrono::milliseconds budget{};
  long rss_growth = 0;
};

Outcome round_trip(const winrm::EndpointOptions& e, std::chrono::milliseconds budget,
                   std::string body = "<e/>") {
  hostile::PeakRss rss;
  auto conn = winrm::make_http_connection(e, nullptr);
  winrm::HttpRequest request;
  request.body = std::move(body);
  const auto start = winrm::Clock::now();
  Outcome out{conn->round_trip(request, start + budget)};
  out.elapsed = winrm::Clock::now() - start;
  out.budget = budget;
  out.rss_growth = rss.growth_bytes();
  return out;
}

// `limit`: the typed bound the error must carry (kNone: it must carry none).
void expect_error(const Outcome& o, ErrorKind kind, std::string_view message_part = {},
                  winrm::Limit limit = winrm::Limit::kNone) {
  REQUIRE_FALSE(o.result.has_value());
  INFO("message: " << o.result.error().message);
  CHECK(winrm::to_string(o.result.error().kind) == winrm::to_string(kind));
  CHECK(o.result.error().message.find(message_part) != std::string::npos);
  CHECK(winrm::to_string(o.result.error().limit) == winrm::to_string(limit));
  // Held: the kind says the deadline ended it; the slack absorbs a loaded CI machine (an ASan
  // build beside -j4 tests), and every stall here lasts 10 s or more.
  CHECK(o.elapsed < o.budget + 2500ms);
  CHECK(o.rss_growth < kRssBound);
}

const std::string kOkHead = "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n";

// Answers every request with `response` and keeps the connection.
hostile::Script answer(std::string response) {
  return [response](hostile::Peer& peer) {
    for (int i = 0; i < 10 && peer.read_request(); ++i) {
      if (!peer.send(response)) return;
    }
  };
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr auto kDnsStall = 10s;

}  // namespace

namespace {
// Names under gate.test: the lookup waits until the test opens the gate (or 15 s pass) and
// then fails (EAI_NONAME); `inside` counts the lookups waiting now, `peak` the most at once.
struct DnsGate {
  std::mutex mutex;
  std::condition_variable changed;
  bool open = false;
  std::size_t inside = 0;
  std::size_t peak = 0;
};
DnsGate& dns_gate() {
  static DnsGate* const gate = new DnsGate();  // resolver threads may outlive the tests
  return *gate;
}
}  // namespace

// A DNS server that never answers, for names under slowdns.test: getaddrinfo is interposed
// for this test binary (libcurl's resolver thread calls it through the PLT), every other
// name goes to the real one. The stall is bounded, so the resolver thread ends by itself.
extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                           addrinfo** res) {
  using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  if (node != nullptr && std::string_view(node).ends_with(".slowdns.test")) {
    std::this_thread::sleep_for(kDnsStall);
    return EAI_AGAIN;
  }
  if (node != nullptr && std::string_view(node).ends_with(".gate.test")) {
    DnsGate& gate = dns_gate();
    std::unique_lock lock(gate.mutex);
    gate.peak = std::max(gate.peak, ++gate.inside);
    gate.changed.notify_all();
    gate.changed.wait_for(lock, 15s, [&] { return gate.open; });
    --gate.inside;
    gate.changed.notify_all();
    return EAI_NONAME;
  }
  return real(node, service, hints, res);
}

TEST_CASE("a host whose DNS never answers times out by the deadline, not the resolver's") {
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    winrm::EndpointOptions e = endpoint(9, tls);
    e.host = "win.slowdns.test";
    e.connect_address.clear();  // resolve the host name (connect_address skips DNS)
    // Before CURLOPT_QUICK_EXIT the call returned after the whole 10 s stall.
    expect_error(round_trip(e, 1500ms), ErrorKind::kTimeout, "during connect");
  }
}

TEST_CASE("oversized status lines and headers end in a transport error") {
  const auto budget = 5000ms;
  SUBCASE("status line of 1 MiB") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send("HTTP/1.1 200 ") && p.send_repeated('A', 1 << 20) && p.send("\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response headers exceed 65536 bytes", winrm::Limit::kHeaderBytes);
  }
  SUBCASE("10 MiB status line without a newline") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send("HTTP/1.1 200 ") && p.send_repeated('B', 10 << 20);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response headers exceed 65536 bytes", winrm::Limit::kHeaderBytes);
  }
  SUBCASE("status line under curl's line limit but over max_header_bytes") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send("HTTP/1.1 200 ") && p.send_repeated('C', 80 << 10) && p.send("\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response headers exceed 65536 bytes (max_header_bytes)",
                 winrm::Limit::kHeaderBytes);
  }
  SUBCASE("one header line of 1 MiB") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "X-Big: ") && p.send_repeated('D', 1 << 20) && p.send("\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response headers exceed 65536 bytes", winrm::Limit::kHeaderBytes);
  }
  SUBCASE("100,000 small headers") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      if (!p.send(kOkHead)) return;
      for (int i = 0; i < 100000; ++i) {
        if (!p.send("X-" + std::to_string(i) + ": v\r\n")) return;
      }
      p.send("Content-Length: 0\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "more than 100 header lines (max_header_count)", winrm::Limit::kHeaderCount);
  }
  SUBCASE("many headers under the count cap but over the byte cap") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      if (!p.send(kOkHead)) return;
      for (int i = 0; i < 90; ++i) {
        if (!p.send("X-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n")) return;
      }
      p.send("Content-Length: 0\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response headers exceed 65536 bytes", winrm::Limit::kHeaderBytes);
  }
}

TEST_CASE("trickling and silent servers end in a timeout within the deadline") {
  const auto budget = 1500ms;
  SUBCASE("headers one byte every 100 ms") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead) && p.trickle("X-Slow: " + std::string(100, 's') + "\r\n\r\n", 100ms);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTimeout,
                 "reading response headers");
  }
  SUBCASE("body one byte every 100 ms") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Content-Length: 100\r\n\r\n") && p.trickle(std::string(100, 'b'), 100ms);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTimeout,
                 "reading response body");
  }
  SUBCASE("status line one byte every 100 ms") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.trickle(kOkHead + "\r\n", 100ms);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTimeout,
                 "no complete status line");
  }
  SUBCASE("accepts TCP and never answers") {
    hostile::Server s([](hostile::Peer& p) { p.wait_for_close(30s); });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTimeout,
                 "waiting for response");
  }
  SUBCASE("TLS: accepts TCP and never starts the handshake") {
    hostile::Server s([](hostile::Peer& p) { p.wait_for_close(30s); });
    expect_error(round_trip(endpoint(s.port(), true), budget), ErrorKind::kTimeout);
  }
  SUBCASE("TLS: body one byte every 100 ms") {
    const auto tls = certs().tls(certs().good);
    hostile::Server s(
        [](hostile::Peer& p) {
          p.read_request();
          p.send(kOkHead + "Content-Length: 100\r\n\r\n") &&
              p.trickle(std::string(100, 'b'), 100ms);
        },
        &tls);
    expect_error(round_trip(endpoint(s.port(), true), budget), ErrorKind::kTimeout,
                 "reading response body");
  }
}

TEST_CASE("cancel (shutdown) ends a transfer in progress, and refuses the next one") {
  const auto budget = 30000ms;
  const auto tls_config = certs().tls(certs().good);
  struct Case {
    const char* name;
    bool tls;
    hostile::Script script;
    const hostile::TlsFiles* server_tls;
  };
  const Case cases[] = {
      {"never answers", false, [](hostile::Peer& p) { p.wait_for_close(30s); }, nullptr},
      {"body one byte every 100 ms", false,
       [](hostile::Peer& p) {
         p.read_request();
         p.send(kOkHead + "Content-Length: 1000\r\n\r\n") &&
             p.trickle(std::string(1000, 'b'), 100ms);
       },
       nullptr},
      {"TLS: never starts the handshake", true, [](hostile::Peer& p) { p.wait_for_close(30s); },
       nullptr},
      {"TLS: never answers the request", true,
       [](hostile::Peer& p) {
         p.read_request();
         p.wait_for_close(30s);
       },
       &tls_config},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    hostile::Server s(c.script, c.server_tls);
    auto e = endpoint(s.port(), c.tls);
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    e.cancel = cancel;
    std::thread signal([&] {
      std::this_thread::sleep_for(300ms);  // the request is under way
      cancel->store(true);
    });
    auto o = round_trip(e, budget);
    signal.join();
    expect_error(o, ErrorKind::kCancelled, "cancelled (shutting down)");
    CHECK(o.result.error().cancelled);
    CHECK(o.elapsed < 5s);  // correctness bound: about a second, against a 30 s deadline
    // With the flag set, nothing more is sent.
    auto refused = round_trip(e, budget);
    expect_error(refused, ErrorKind::kCancelled, "cancelled (shutting down)");
    CHECK(refused.result.error().cancelled);
  }
}

TEST_CASE("a trickled TLS handshake does not hold another target's deadline") {
  // A TCP server that "answers" the ClientHello with a record header announcing 16 KiB
  // and then one junk byte every 200 ms.
  hostile::Server trickler([](hostile::Peer& p) {
    p.trickle(std::string("\x16\x03\x03\x40\x00", 5) + std::string(200, '\x02'), 200ms);
  });
  const auto tls = certs().tls(certs().good);
  hostile::Server healthy(answer(kOkHead + "Content-Length: 5\r\n\r\n<ok/>"), &tls);

  const auto trickle_budget = 5000ms;
  std::atomic<bool> trickle_done{false};
  Outcome trickled;
  std::thread slow([&] {
    trickled = round_trip(endpoint(trickler.port(), true), trickle_budget);
    trickle_done = true;
  });
  std::this_thread::sleep_for(300ms);  // the slow handshake is under way
  const auto healthy_budget = 2000ms;
  auto fast = round_trip(endpoint(healthy.port(), true), healthy_budget);
  const bool fast_finished_first = !trickle_done.load();
  slow.join();

  REQUIRE_MESSAGE(fast.result.has_value(), fast.result.error().message);
  CHECK(fast.result->body == "<ok/>");
  CHECK(fast_finished_first);
  expect_error(trickled, ErrorKind::kTimeout, "TLS handshake");
}

TEST_CASE("a server certificate from an untrusted CA is a TLS error") {
  const auto tls = certs().tls(certs().other);
  hostile::Server s(answer(kOkHead + "Content-Length: 5\r\n\r\n<ok/>"), &tls);
  expect_error(round_trip(endpoint(s.port(), true), 5000ms), ErrorKind::kTls,
               "certificate verification failed");
}

TEST_CASE("bodies of any framing are bounded or classified") {
  const auto budget = 5000ms;
  SUBCASE("Content-Length larger than the cap is refused before the body") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Content-Length: 1073741824\r\n\r\n") && p.send_repeated('x', 1 << 20);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response exceeds 16777216 bytes", winrm::Limit::kResponseBytes);
  }
  SUBCASE("Content-Length larger than what is sent, then close") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Content-Length: 100\r\n\r\n<short/>");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport, "cut short");
  }
  SUBCASE("chunked with a chunk size that is not hex") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Transfer-Encoding: chunked\r\n\r\nZZZZ\r\nabcd\r\n0\r\n\r\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport);
  }
  SUBCASE("chunked with a chunk size of 40 hex digits") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Transfer-Encoding: chunked\r\n\r\n" + std::string(40, 'F') + "\r\nab");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport);
  }
  SUBCASE("chunked with a huge chunk that keeps coming") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Transfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\n") &&
          p.send_repeated('h', 64 << 20);
    });
    auto e = endpoint(s.port());
    e.max_response_bytes = 1 << 20;
    expect_error(round_trip(e, budget), ErrorKind::kTransport, "response exceeds 1048576 bytes",
                 winrm::Limit::kResponseBytes);
  }
  SUBCASE("endless chunked body") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      if (!p.send(kOkHead + "Transfer-Encoding: chunked\r\n\r\n")) return;
      const std::string chunk = "10000\r\n" + std::string(0x10000, 'e') + "\r\n";
      for (int i = 0; i < 2048; ++i) {  // 128 MiB at most
        if (!p.send(chunk)) return;
      }
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "response exceeds 16777216 bytes", winrm::Limit::kResponseBytes);
  }
  SUBCASE("connection reset in the middle of the body") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "Content-Length: 100000\r\n\r\n" + std::string(5000, 'r'));
      p.reset();
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport);
  }
}

TEST_CASE(
    "a close-delimited body ends only at a clean close: a reset or a bad record is an error") {
  // No Content-Length and no chunked: the body runs until the server closes. Only an orderly
  // end (FIN, close_notify) completes it; a reset or a TLS record that fails to decrypt cuts it
  // short, and its first bytes must not come back as the whole answer.
  const auto files = certs().tls(certs().good);
  const std::string head = kOkHead + "Connection: close\r\n\r\n";
  const std::string part(5000, 'u');
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    {  // clean close: the body is complete
      hostile::Server s(
          [&](hostile::Peer& p) {
            p.read_request();
            p.send(head + part);
            if (p.ssl() != nullptr) SSL_shutdown(p.ssl());
          },
          tls ? &files : nullptr);
      auto o = round_trip(endpoint(s.port(), tls), 5000ms);
      REQUIRE_MESSAGE(o.result.has_value(), o.result.error().message);
      CHECK(o.result->body == part);
    }
    {  // reset after part of the body
      hostile::Server s(
          [&](hostile::Peer& p) {
            p.read_request();
            p.send(head + part);
            std::this_thread::sleep_for(200ms);  // the part is read before the reset arrives
            p.reset();
          },
          tls ? &files : nullptr);
      // Either transport's words (native: "cut short"; libcurl: "Recv failure").
      expect_error(round_trip(endpoint(s.port(), tls), 5000ms), ErrorKind::kTransport);
    }
  }
  {  // TLS: a record that does not decrypt after part of the body
    hostile::Server s(
        [&](hostile::Peer& p) {
          p.read_request();
          p.send(head + part);
          std::this_thread::sleep_for(200ms);
          // An application-data record of 32 bytes that no key produced.
          std::string bad = "\x17\x03\x03";
          bad += static_cast<char>(0);
          bad += static_cast<char>(32);
          bad += std::string(32, '\x5a');
          (void)!::send(p.fd(), bad.data(), bad.size(), MSG_NOSIGNAL);
        },
        &files);
    expect_error(round_trip(endpoint(s.port(), true), 5000ms), ErrorKind::kTransport);
  }
}

TEST_CASE("what is not HTTP/1.x is a transport error") {
  const auto budget = 5000ms;
  SUBCASE("garbage instead of HTTP") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      std::string junk;
      for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 131 + 7) % 256);
      p.send(junk);
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "not an HTTP/1.x response");
  }
  SUBCASE("HTTP/0.9 style: a body without a status line, then close") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send("<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"/>\n");
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "not an HTTP/1.x response");
  }
  SUBCASE("NUL bytes in the status line") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(std::string("HTTP/1.1 200 O\0K\r\nContent-Length: 5\r\n\r\n<ok/>", 44));
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport);
  }
  SUBCASE("connection reset in the middle of the headers") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send(kOkHead + "X-Half: ");
      p.reset();
    });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport);
  }
  SUBCASE("connection closed without an answer") {
    hostile::Server s([](hostile::Peer& p) { p.read_request(); });
    expect_error(round_trip(endpoint(s.port()), budget), ErrorKind::kTransport,
                 "connection closed without a response");
  }
}

TEST_CASE("well-formed oddities: NUL bytes in a body, a short Content-Length") {
  SUBCASE("a body with NUL bytes arrives intact") {
    const std::string body("<a>\0\0b</a>", 10);
    hostile::Server s(answer(kOkHead + "Content-Length: 10\r\n\r\n" + body));
    auto o = round_trip(endpoint(s.port()), 5000ms);
    REQUIRE_MESSAGE(o.result.has_value(), o.result.error().message);
    CHECK(o.result->body == body);
  }
  SUBCASE("bytes beyond Content-Length never become the next response") {
    // First connection: 5 announced bytes, then trailing junk and close. The junk must
    // not be read as the answer to the next request.
    int connection = 0;
    hostile::Server s([&connection](hostile::Peer& p) {
      if (!p.read_request()) return;
      if (connection++ == 0) {
        p.send(kOkHead + "Content-Length: 5\r\n\r\n<ok/>HTTP/1.1 500 Smuggled\r\n\r\n");
        return;
      }
      p.send(kOkHead + "Content-Length: 8\r\n\r\n<second>");
    });
    auto conn = winrm::make_http_connection(endpoint(s.port()), nullptr);
    winrm::HttpRequest request;
    auto first = conn->round_trip(request, winrm::Clock::now() + 5s);
    REQUIRE_MESSAGE(first.has_value(), first.error().message);
    CHECK(first->status == 200);
    CHECK(first->body == "<ok/>");
    auto second = conn->round_trip(request, winrm::Clock::now() + 5s);
    REQUIRE_MESSAGE(second.has_value(), second.error().message);
    CHECK(second->status == 200);
    CHECK(second->body == "<second>");
  }
}

TEST_CASE("a peer that resets while we write does not raise SIGPIPE") {
  // SIGPIPE keeps its default action here: if it reached the process, the test would die.
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    const auto files = certs().tls(certs().good);
    hostile::Server s([](hostile::Peer& p) { p.read_some_then_reset(64 << 10); },
                      tls ? &files : nullptr);
    auto o = round_trip(endpoint(s.port(), tls), 5000ms, std::string(32 << 20, 'w'));
    REQUIRE_FALSE(o.result.has_value());
    CHECK(o.result.error().kind == ErrorKind::kTransport);
    CHECK(o.elapsed < 6s);
  }
}

TEST_CASE("winrm_exporter query exits with an error, not a signal, against hostile servers") {
  TempDir dir;
  const auto password = dir / "password";
  std::ofstream(password) << "secret\n";
  const auto run_query = [&](int port, const std::string& expected_kind) {
    const auto out = (dir / "query.out").string();
    const auto err = (dir / "query.err").string();
    const auto start = std::chrono::steady_clock::now();
    hostile::Child query({WINRM_EXPORTER_BINARY, "query", "--host=localhost",
                          "--connect-address=127.0.0.1", "--port=" + std::to_string(port),
                          "--scheme=http", "--user=monitor", "--password-file=" + password.string(),
                          "--timeout=2s", "SELECT * FROM Win32_OperatingSystem"},
                         out, err);
    // The trickle below would last 15 s and more: ending well before that proves the 2 s
    // deadline ended the query. The slack is for a loaded machine (ASan build beside -j4 tests,
    // where the process start alone has taken over a second), not a timing claim.
    const auto status = query.wait(12s);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    REQUIRE(status.has_value());
    INFO("stderr: " << slurp(err));
    CHECK_FALSE(WIFSIGNALED(*status));
    REQUIRE(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 1);
    CHECK(slurp(err).find("error: kind=" + expected_kind) != std::string::npos);
    CHECK(elapsed < 8s);
  };
  SUBCASE("1 MiB status line") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.send("HTTP/1.1 200 ") && p.send_repeated('A', 1 << 20) && p.send("\r\n\r\n");
    });
    run_query(s.port(), "transport");
  }
  SUBCASE("headers trickled one byte every 100 ms") {
    hostile::Server s([](hostile::Peer& p) {
      p.read_request();
      p.trickle(kOkHead + "X-Slow: " + std::string(100, 's') + "\r\n\r\n", 100ms);
    });
    run_query(s.port(), "timeout");
  }
}

TEST_CASE("a kept connection the server drops as it is reused: one transparent retry, never two") {
  // Connection 0 answers, reads the second request and closes (or resets) without an answer:
  // what a server's idle timeout looks like when it races our reuse. The request goes out once
  // more, on a new connection. If that one fails as well, the error stands (connection 2,
  // which would answer, is never reached).
  for (const bool tls : {false, true}) {
    for (const bool reset : {false, true}) {
      CAPTURE(tls);
      CAPTURE(reset);
      const auto files = certs().tls(certs().good);
      int connection = 0;
      hostile::Server s(
          [&connection, reset](hostile::Peer& p) {
            const int n = connection++;
            if (n == 0) {
              if (!p.read_request() || !p.send(kOkHead + "Content-Length: 5\r\n\r\n<ok/>")) return;
            }
            if (n <= 1) {  // 0: the reused request; 1: its one retry
              if (!p.read_request()) return;
              if (reset) p.reset();
              return;
            }
            answer(kOkHead + "Content-Length: 6\r\n\r\n<late>")(p);
          },
          tls ? &files : nullptr);
      auto counters = std::make_shared<winrm::TransportCounters>();
      auto conn = winrm::make_http_connection(endpoint(s.port(), tls), counters);
      winrm::HttpRequest request;
      request.body = "<e/>";
      auto first = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_MESSAGE(first.has_value(), first.error().message);
      const auto id = conn->connection_id();
      auto second = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_FALSE(second.has_value());
      CHECK(second.error().kind == ErrorKind::kTransport);
      CHECK(conn->connection_id() == id + 1);  // exactly one new connection: the retry
      CHECK(counters->connections_opened.load() == 2);
      CHECK(counters->reconnects.load() == 1);
      CHECK(counters->requests.load() == 2);  // a retry is the same request
      // The next request works, on a third connection.
      auto third = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_MESSAGE(third.has_value(), third.error().message);
      CHECK(third->body == "<late>");
      CHECK(counters->reconnects.load() == 2);
    }
  }
}

TEST_CASE("a server that closes the kept connection between requests: reconnect before reuse") {
  // Each connection answers one request with keep-alive and then closes while idle. The
  // idle close is seen before reuse: every request gets its answer, on a new connection.
  for (const bool tls : {false, true}) {
    CAPTURE(tls);
    const auto files = certs().tls(certs().good);
    hostile::Server s(
        [](hostile::Peer& p) {
          if (p.read_request()) p.send(kOkHead + "Content-Length: 5\r\n\r\n<ok/>");
        },
        tls ? &files : nullptr, 8);
    auto counters = std::make_shared<winrm::TransportCounters>();
    auto conn = winrm::make_http_connection(endpoint(s.port(), tls), counters);
    winrm::HttpRequest request;
    for (int i = 0; i < 5; ++i) {
      CAPTURE(i);
      auto r = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_MESSAGE(r.has_value(), r.error().message);
      CHECK(r->body == "<ok/>");
      CHECK(conn->connection_id() == static_cast<std::uint64_t>(i + 1));
      std::this_thread::sleep_for(50ms);  // the server's close arrives while idle (no timing
                                          // assertion: a close seen late is the retry path)
    }
    CHECK(counters->connections_opened.load() == 5);
    CHECK(counters->reconnects.load() == 4);
    if (tls) CHECK(counters->tls_handshakes.load() == 5);
  }
}

TEST_CASE("a TLS session ticket that arrives on an idle connection does not drop it") {
  // A TLS 1.3 server may send NewSessionTicket (or a key update) at any time. Bytes on an
  // idle TLS connection are only a reason to reconnect when they are not handshake messages.
  const auto files = certs().tls(certs().good);
  hostile::Server s(
      [](hostile::Peer& p) {
        const std::string ok = kOkHead + "Content-Length: 5\r\n\r\n<ok/>";
        if (!p.read_request() || !p.send(ok)) return;
        std::this_thread::sleep_for(100ms);  // the client's connection is idle now
        if (SSL_new_session_ticket(p.ssl()) != 1 || SSL_do_handshake(p.ssl()) != 1) return;
        for (int i = 0; i < 3 && p.read_request(); ++i) {
          if (!p.send(ok)) return;
        }
      },
      &files);
  auto counters = std::make_shared<winrm::TransportCounters>();
  auto conn = winrm::make_http_connection(endpoint(s.port(), true), counters);
  winrm::HttpRequest request;
  auto first = conn->round_trip(request, winrm::Clock::now() + 5s);
  REQUIRE_MESSAGE(first.has_value(), first.error().message);
  std::this_thread::sleep_for(400ms);  // the ticket arrives while the connection is idle
  for (int i = 0; i < 2; ++i) {
    auto next = conn->round_trip(request, winrm::Clock::now() + 5s);
    REQUIRE_MESSAGE(next.has_value(), next.error().message);
    CHECK(next->body == "<ok/>");
  }
  CHECK(conn->connection_id() == 1);
  CHECK(counters->connections_opened.load() == 1);
  CHECK(counters->tls_handshakes.load() == 1);
}

TEST_CASE("TLS records read ahead of the answer: never the next answer, never left unread") {
  // The client reads ahead (several TLS records per recv): records that arrive with the answer
  // sit in OpenSSL's buffer, where neither epoll nor a MSG_PEEK on the socket sees them. Corked,
  // the server's records leave in as few segments as possible, so they arrive together.
  const auto files = certs().tls(certs().good);
  const auto cork = [](hostile::Peer& p, int on) {
    setsockopt(p.fd(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
  };
  SUBCASE("a record past the answer closes the connection instead of answering the next request") {
    int connection = 0;
    hostile::Server s(
        [&connection, &cork](hostile::Peer& p) {
          if (connection++ == 0) {
            if (!p.read_request()) return;
            cork(p, 1);
            // Two records: the answer, then a smuggled one on the same (kept) connection.
            if (!p.send(kOkHead + "Content-Length: 5\r\n\r\n<ok/>") ||
                !p.send("HTTP/1.1 500 Smuggled\r\nContent-Length: 6\r\n\r\n<evil>")) {
              return;
            }
            cork(p, 0);
          }
          answer(kOkHead + "Content-Length: 8\r\n\r\n<second>")(p);
        },
        &files);
    auto counters = std::make_shared<winrm::TransportCounters>();
    auto conn = winrm::make_http_connection(endpoint(s.port(), true), counters);
    winrm::HttpRequest request;
    auto first = conn->round_trip(request, winrm::Clock::now() + 5s);
    REQUIRE_MESSAGE(first.has_value(), first.error().message);
    CHECK(first->body == "<ok/>");
    for (int i = 0; i < 2; ++i) {
      auto next = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_MESSAGE(next.has_value(), next.error().message);
      CHECK(next->status == 200);
      CHECK(next->body == "<second>");
    }
    CHECK(counters->connections_opened.load() == 2);
  }
  SUBCASE("an answer in hundreds of small records is read to its end, then the connection kept") {
    constexpr int kRecords = 600;
    hostile::Server s(
        [&cork](hostile::Peer& p) {
          for (int i = 0; i < 3 && p.read_request(); ++i) {
            cork(p, 1);
            if (!p.send(kOkHead + "Content-Length: " + std::to_string(8 * kRecords) + "\r\n\r\n")) {
              return;
            }
            for (int r = 0; r < kRecords; ++r) {
              if (!p.send("<rec08/>")) return;  // one TLS record each
            }
            cork(p, 0);
          }
        },
        &files);
    auto counters = std::make_shared<winrm::TransportCounters>();
    auto conn = winrm::make_http_connection(endpoint(s.port(), true), counters);
    winrm::HttpRequest request;
    for (int i = 0; i < 2; ++i) {
      auto r = conn->round_trip(request, winrm::Clock::now() + 5s);
      REQUIRE_MESSAGE(r.has_value(), r.error().message);
      CHECK(r->body.size() == 8u * kRecords);
      CHECK(r->body.substr(r->body.size() - 8) == "<rec08/>");
    }
    CHECK(counters->connections_opened.load() == 1);
  }
}

TEST_CASE("a name lookup that stalls does not hold other requests; localhost resolves") {
  // The stalled lookup runs off the I/O thread: a request to another server completes while
  // it waits, and the stalled one still ends by its own deadline.
  hostile::Server healthy(answer(kOkHead + "Content-Length: 5\r\n\r\n<ok/>"));
  std::atomic<bool> stalled_done{false};
  Outcome stalled;
  std::thread slow([&] {
    winrm::EndpointOptions e = endpoint(healthy.port());
    e.host = "win2.slowdns.test";
    e.connect_address.clear();
    stalled = round_trip(e, 3000ms);
    stalled_done = true;
  });
  std::this_thread::sleep_for(300ms);  // the lookup is under way
  winrm::EndpointOptions by_name = endpoint(healthy.port());
  by_name.connect_address.clear();  // "localhost", resolved
  auto fast = round_trip(by_name, 2000ms);
  const bool fast_finished_first = !stalled_done.load();
  slow.join();
  REQUIRE_MESSAGE(fast.result.has_value(), fast.result.error().message);
  CHECK(fast.result->body == "<ok/>");
  CHECK(fast_finished_first);
  expect_error(stalled, ErrorKind::kTimeout, "during connect");
  // *.localhost is loopback without a lookup (RFC 6761), as libcurl answers it: inventories
  // name local or simulated hosts win01.localhost.
  winrm::EndpointOptions sub = by_name;
  sub.host = "Win01.LOCALHOST";
  auto subdomain = round_trip(sub, 2000ms);
  REQUIRE_MESSAGE(subdomain.result.has_value(), subdomain.result.error().message);
  CHECK(subdomain.result->body == "<ok/>");
}

TEST_CASE("name lookups run a bounded number at once; literal addresses never wait for them") {
  // A DNS outage: every lookup hangs. Three times the cap of named hosts ask at once; at most
  // the cap of getaddrinfo threads run, the rest queue, a queued request still ends by its
  // own deadline, and a literal or localhost address is served meanwhile.
  const char* transport = std::getenv("WINRM_EXPORTER_TRANSPORT");
  if (transport != nullptr && std::string_view(transport) == "curl") return;  // libcurl's own
  hostile::Server healthy(answer(kOkHead + "Content-Length: 5\r\n\r\n<ok/>"));
  const std::size_t limit = winrm::native_name_lookups().limit;
  REQUIRE(limit > 0);
  const std::size_t count = 3 * limit;
  {
    std::lock_guard lock(dns_gate().mutex);
    dns_gate().open = false;
    dns_gate().peak = 0;
  }
  winrm::HttpRequest request;  // outlives the connections that send it
  request.body = "<e/>";
  std::mutex mutex;
  std::condition_variable done_cv;
  std::vector<std::optional<winrm::Result<winrm::HttpResponse>>> results(count);
  std::size_t done = 0;
  std::vector<std::unique_ptr<winrm::Connection>> connections;  // before `request` ends
  const auto start_named = [&](const std::string& name, std::size_t slot,
                               std::chrono::milliseconds budget) {
    winrm::EndpointOptions e = endpoint(healthy.port());
    e.host = name;
    e.connect_address.clear();
    e.connect_timeout = budget;
    connections.push_back(winrm::make_http_connection(e, nullptr));
    connections.back()->start(request, winrm::Clock::now() + budget,
                              [&, slot](winrm::Result<winrm::HttpResponse> r) {
                                std::lock_guard lock(mutex);
                                results[slot].emplace(std::move(r));
                                ++done;
                                done_cv.notify_all();
                              });
  };
  for (std::size_t i = 0; i < count; ++i) {
    start_named("h" + std::to_string(i) + ".gate.test", i, 20000ms);
  }
  // Every slot taken (earlier tests' stalled lookups may hold a few) and every start taken in
  // by the I/O thread, the rest queued. start() only posts to that thread, and queueing wakes
  // nothing here, so poll (bounded: 1,000 x 10 ms).
  for (int i = 0; i < 1000; ++i) {
    const auto stats = winrm::native_name_lookups();
    std::size_t inside = 0;
    {
      std::lock_guard lock(dns_gate().mutex);
      inside = dns_gate().inside;
    }
    if (stats.running == limit && stats.queued >= count - limit && inside + 8 >= limit) break;
    std::this_thread::sleep_for(10ms);
  }
  const auto full = winrm::native_name_lookups();
  CHECK(full.running == limit);
  CHECK(full.queued >= count - limit);
  {
    std::lock_guard lock(dns_gate().mutex);
    CHECK(dns_gate().peak <= limit);
    CHECK(dns_gate().inside <= limit);
    CHECK(dns_gate().inside > 0);
  }
  // Literal and localhost addresses take no lookup: served while every slot is held.
  auto literal = round_trip(endpoint(healthy.port()), 5000ms);
  REQUIRE_MESSAGE(literal.result.has_value(), literal.result.error().message);
  CHECK(literal.result->body == "<ok/>");
  winrm::EndpointOptions local = endpoint(healthy.port());
  local.connect_address.clear();  // "localhost"
  auto by_localhost = round_trip(local, 5000ms);
  REQUIRE_MESSAGE(by_localhost.result.has_value(), by_localhost.result.error().message);
  // A request queued behind the full gate ends by its own deadline, a timeout as before.
  auto queued = round_trip(
      [&] {
        winrm::EndpointOptions e = endpoint(healthy.port());
        e.host = "late.gate.test";
        e.connect_address.clear();
        return e;
      }(),
      1000ms);
  expect_error(queued, ErrorKind::kTimeout, "during connect");
  {
    std::lock_guard lock(mutex);
    CHECK(done == 0);  // the gated ones are still waiting (20 s deadlines)
  }
  {
    std::lock_guard lock(dns_gate().mutex);
    dns_gate().open = true;
    dns_gate().changed.notify_all();
  }
  {
    std::unique_lock lock(mutex);
    done_cv.wait_for(lock, 15s, [&] { return done == count; });
    REQUIRE(done == count);
  }
  for (const auto& result : results) {
    REQUIRE(result.has_value());
    REQUIRE_FALSE(result->has_value());
    CHECK(winrm::to_string(result->error().kind) == winrm::to_string(ErrorKind::kTransport));
    CHECK(result->error().message.find("Could not resolve host") != std::string::npos);
  }
  {
    std::lock_guard lock(dns_gate().mutex);
    CHECK(dns_gate().peak <= limit);
  }
  const auto after = winrm::native_name_lookups();
  CHECK(after.queued == 0);
  CHECK(after.running <= 8);  // earlier tests' stalled lookups, if any
}

}  // namespace test_hostile
