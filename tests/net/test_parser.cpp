// net::RequestParser: framing, pipelining and every limit, fed whole and byte by byte.
#include <doctest/doctest.h>

#include <string>

#include "net/http.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_parser {

using net::RequestParser;
using Status = RequestParser::Status;

namespace {

// Feeds `text` one byte at a time (the worst split a network can produce).
Status feed_bytewise(RequestParser& p, std::string_view text) {
  Status s = Status::kNeedMore;
  for (char c : text) {
    s = p.feed(std::string_view(&c, 1));
    if (s != Status::kNeedMore) break;
  }
  return s;
}

}  // namespace

TEST_CASE("a GET with headers, whole and byte by byte") {
  const std::string text =
      "GET /probe?target=win01%2Esim.test&x=a+b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 \r\n\r\n";
  for (bool bytewise : {false, true}) {
    RequestParser p;
    auto s = bytewise ? feed_bytewise(p, text) : p.feed(text);
    REQUIRE(s == Status::kComplete);
    auto r = p.take();
    CHECK(r.method == "GET");
    CHECK(r.path == "/probe");
    CHECK(r.query == "target=win01%2Esim.test&x=a+b");
    CHECK(r.query_param("target") == "win01.sim.test");
    CHECK(r.query_param("x") == "a b");
    CHECK_FALSE(r.query_param("y").has_value());
    CHECK(r.header_value("HOST") == "h");
    CHECK(r.header_values("X-A").size() == 2);
    CHECK(r.header_values("X-A")[1] == "2");
    CHECK(r.keep_alive());
    CHECK_FALSE(p.in_progress());
  }
}

TEST_CASE("keep-alive by version and Connection header") {
  auto parse = [](const std::string& text) {
    RequestParser p;
    REQUIRE(p.feed(text) == Status::kComplete);
    return p.take();
  };
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").keep_alive());
  CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive());
}

TEST_CASE("Content-Length and chunked bodies; pipelined requests stay buffered") {
  RequestParser p;
  const std::string text =
      "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n"
      "Trailer-A: x\r\n\r\n"
      "GET /c HTTP/1.1\r\n\r\n";
  REQUIRE(p.feed(text) == Status::kComplete);
  auto a = p.take();
  CHECK(a.path == "/a");
  CHECK(a.body == "hello");
  REQUIRE(p.feed({}) == Status::kComplete);
  auto b = p.take();
  CHECK(b.path == "/b");
  CHECK(b.body == "abcde");
  REQUIRE(p.feed({}) == Status::kComplete);
  CHECK(p.take().path == "/c");
  CHECK(p.feed({}) == Status::kNeedMore);
  CHECK_FALSE(p.in_progress());

  RequestParser q;
  REQUIRE(feed_bytewise(q,
                        "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n0\r\n\r\n") == Status::kComplete);
  CHECK(q.take().body == "abc");
}

TEST_CASE("Expect: 100-continue is reported until the body is complete") {
  RequestParser p;
  CHECK(p.feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n") ==
        Status::kNeedMore);
  CHECK(p.expects_continue());
  CHECK(p.feed("ok") == Status::kComplete);
  CHECK(p.take().body == "ok");
  CHECK_FALSE(p.expects_continue());
}

TEST_CASE("each malformed or oversized request gets its status") {
  net::ParserLimits limits;
  limits.max_head_bytes = 256;
  limits.max_header_count = 4;
  limits.max_body_bytes = 10;
  struct Case {
    std::string text;
    int status;
  };
  static constexpr char kNulInHeader[] = "GET / HTTP/1.1\r\nA: x\0y\r\n\r\n";  // 26 bytes + NUL
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a'), 431},  // never ends: still bounded
      {"GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", 431},
      {"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n3\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(2000, '1'), 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / HTTX/1.1\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"GET /\x01 HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: x\ny\r\n\r\n", 400},
      {std::string(kNulInHeader, sizeof kNulInHeader - 1), 400},
  };
  for (const auto& c : cases) {
    for (bool bytewise : {false, true}) {
      CAPTURE(c.text.substr(0, 80));
      CAPTURE(bytewise);
      RequestParser p(limits);
      auto s = bytewise ? feed_bytewise(p, c.text) : p.feed(c.text);
      REQUIRE(s == Status::kError);
      CHECK(p.error_status() == c.status);
      CHECK(p.buffered_bytes() <= limits.max_head_bytes + 2048);
    }
  }
}

TEST_CASE("the buffer is released once a request is taken and nothing follows") {
  RequestParser p;
  REQUIRE(p.feed("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") == Status::kComplete);
  p.take();
  CHECK(p.buffered_bytes() == 0);
  p.release_memory();
  CHECK_FALSE(p.in_progress());
}

}  // namespace test_parser
