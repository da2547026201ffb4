// Session's Enumerate/Pull/Release loop against a scripted in-process WS-Man server that
// answers with captured Windows bodies (tests/fixtures) and records every request.
#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "winrm/auth.h"
#include "winrm/session.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_session {

using namespace std::chrono_literals;

namespace {

std::string read_fixture(const std::string& relative) {
  std::ifstream in(std::string(WINRM_TEST_FIXTURES) + "/" + relative, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string capture(const std::string& body, const char* pattern) {
  std::smatch m;
  if (std::regex_search(body, m, std::regex(pattern))) return m[1].str();
  return "";
}

struct Seen {
  std::string action;  // Enumerate, Pull, Release
  std::string message_id;
  std::string context;
  std::string max_elements;
  std::string max_envelope_size;
  double operation_timeout_s = 0;
  std::string body;  // the whole request
};

struct Reply {
  int status = 200;
  std::string body;
  bool rewrite_relates_to = true;
  std::chrono::milliseconds delay{0};
  bool close = false;  // answer with Connection: close
  bool utf16 = false;  // send the body as UTF-16LE with a BOM, charset=UTF-16
};

// UTF-8 to UTF-16LE with a byte order mark (BMP characters: all the fixtures need).
std::string to_utf16le(const std::string& utf8) {
  std::string out = "\xFF\xFE";
  for (std::size_t i = 0; i < utf8.size();) {
    auto c = static_cast<unsigned char>(utf8[i]);
    unsigned code = c;
    int extra = c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (extra > 0) code = c & (extra == 2 ? 0x0F : 0x1F);
    for (int k = 1; k <= extra; ++k) code = (code << 6) | (utf8[i + k] & 0x3F);
    i += 1 + extra;
    out.push_back(static_cast<char>(code & 0xFF));
    out.push_back(static_cast<char>(code >> 8));
  }
  return out;
}

// Replaces the first element <tag>...</tag> (header elements occur once) without a regex:
// pages here are up to a megabyte.
void replace_element(std::string& body, const std::string& tag, const std::string& value) {
  const std::string open = "<" + tag + ">";
  const std::string close = "</" + tag + ">";
  const auto begin = body.find(open);
  if (begin == std::string::npos) return;
  const auto end = body.find(close, begin);
  if (end == std::string::npos) return;
  body.replace(begin + open.size(), end - begin - open.size(), value);
}

// Windows-shaped fault for codes the fixtures do not cover.
std::string fault_body(const std::string& subcode, std::uint64_t code) {
  return R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID><a:RelatesTo>uuid:X</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>)" +
         subcode +
         R"(</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">test fault</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code=")" +
         std::to_string(code) +
         R"(" Machine="test"><f:Message>test fault</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>)";
}

class FakeWinrm {
 public:
  using Script = std::function<Reply(const Seen& request, int index)>;

  explicit FakeWinrm(Script script) : script_(std::move(script)) {
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_max_count(100000);
    server_.Post("/wsman", [this](const httplib::Request& req, httplib::Response& res) {
      Seen seen;
      seen.action = capture(req.body, "enumeration/(\\w+)</a:Action>");
      seen.message_id = capture(req.body, "<a:MessageID>([^<]*)</a:MessageID>");
      seen.context = capture(req.body, "<n:EnumerationContext>([^<]*)</n:EnumerationContext>");
      seen.max_elements = capture(req.body, "MaxElements>(\\d+)<");
      seen.max_envelope_size = capture(req.body, "MaxEnvelopeSize[^>]*>(\\d+)<");
      seen.body = req.body;
      seen.operation_timeout_s =
          std::stod("0" + capture(req.body, "<w:OperationTimeout>PT([0-9.]+)S<"));
      int index;
      {
        std::lock_guard lock(mutex_);
        index = static_cast<int>(seen_.size());
        seen_.push_back(seen);
      }
      Reply reply = script_(seen, index);
      for (auto waited = 0ms; waited < reply.delay && !stopping_; waited += 20ms) {
        std::this_thread::sleep_for(20ms);
      }
      if (reply.rewrite_relates_to) replace_element(reply.body, "a:RelatesTo", seen.message_id);
      res.status = reply.status;
      if (reply.close) res.set_header("Connection", "close");
      if (reply.utf16) {
        res.set_content(to_utf16le(reply.body), "application/soap+xml;charset=UTF-16");
      } else if (!reply.body.empty()) {
        res.set_content(reply.body, "application/soap+xml;charset=UTF-8");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(server_.is_running());
  }
  ~FakeWinrm() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }

  winrm::SessionOptions options() const {
    winrm::SessionOptions o;
    o.endpoint.host = "win01.sim.test";
    o.endpoint.connect_address = "127.0.0.1";
    o.endpoint.port = port_;
    o.endpoint.scheme = winrm::Scheme::kHttp;
    return o;
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  Script script_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

const std::vector<std::string> kServicePages = {
    "enum/txw2008_service_star_p000.xml", "enum/txw2008_service_star_p001.xml",
    "enum/txw2008_service_star_p002.xml", "enum/txw2008_service_star_p003.xml"};

// Items are p:Win32_* elements (one page also holds a Win32_TerminalService subclass).
std::size_t count_instances(const std::string& body) {
  std::size_t n = 0;
  for (std::size_t pos = 0; (pos = body.find("<p:Win32_", pos)) != std::string::npos; ++pos) n++;
  return n;
}

std::size_t service_row_count() {
  std::size_t n = 0;
  for (const auto& page : kServicePages) n += count_instances(read_fixture(page));
  return n;
}

// Serves the four captured Win32_Service pages: Enumerate -> p000, then each Pull the next.
struct ServicePages {
  int pulls = 0;
  Reply next(const Seen& s) {
    if (s.action == "Enumerate") {
      pulls = 0;
      return {200, read_fixture(kServicePages[0])};
    }
    if (s.action == "Pull") return {200, read_fixture(kServicePages[std::min(++pulls, 3)])};
    return {200, ""};
  }
};

winrm::Result<std::vector<winrm::Row>> run(FakeWinrm&, winrm::SessionOptions options,
                                           std::chrono::milliseconds budget = 5s) {
  winrm::Session session(std::move(options), winrm::make_no_auth(), nullptr);
  return session.enumerate("root/cimv2", "SELECT * FROM Win32_Service",
                           winrm::Clock::now() + budget);
}

}  // namespace

TEST_CASE("multi-page enumeration pulls with the newest context until EndOfSequence") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) { return pages.next(s); });
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(fake.options(), winrm::make_no_auth(), counters);
  auto rows =
      session.enumerate("root/cimv2", "SELECT * FROM Win32_Service", winrm::Clock::now() + 5s);
  REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
  const std::size_t expected = service_row_count();
  REQUIRE(expected > 4);
  CHECK(rows->size() == expected);
  CHECK((*rows)[0].class_name() == "Win32_Service");
  CHECK((*rows)[0].string("Name") == "AeLookupSvc");
  auto seen = fake.seen();
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].action == "Enumerate");
  CHECK(seen[0].max_elements == "32000");
  CHECK(seen[1].action == "Pull");
  CHECK(seen[1].context == "uuid:6854B090-BBDB-486B-B750-5BF34D000933");
  CHECK(seen[2].context == "uuid:C47EADBE-5F58-4D6D-AE36-B2C977F10FA5");
  CHECK(seen[3].context == "uuid:6C79B05D-4FB2-4CD2-8ECC-480429BC12BB");
  for (const auto& s : seen) {
    // OperationTimeout leaves a margin inside the 5 s deadline.
    CHECK(s.operation_timeout_s > 0);
    CHECK(s.operation_timeout_s < 5.0);
  }
  CHECK(counters->connections_opened.load() == 1);
  CHECK(counters->requests.load() == 4);
}

TEST_CASE("a timed-out Pull is re-sent with its context, bounded") {
  ServicePages pages;
  int timeouts_to_send = 0;
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    if (s.action == "Pull" && timeouts_to_send > 0) {
      --timeouts_to_send;
      return {500, read_fixture("faults/pypsrp_timedout_2150858793.xml")};
    }
    return pages.next(s);
  });
  SUBCASE("two timeouts are retried") {
    timeouts_to_send = 2;
    auto rows = run(fake, fake.options());
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    CHECK(rows->size() == service_row_count());
    auto seen = fake.seen();
    REQUIRE(seen.size() == 6);
    CHECK(seen[1].context == seen[2].context);
    CHECK(seen[2].context == seen[3].context);
    CHECK(seen[1].message_id != seen[2].message_id);
  }
  SUBCASE("three timeouts exceed pull_timeout_retries = 2 and release the context") {
    timeouts_to_send = 3;
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kWsmanFault);
    REQUIRE(rows.error().fault.has_value());
    CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kTimedOut);
    CHECK(rows.error().http_status == 500);
    auto seen = fake.seen();
    REQUIRE(seen.size() == 5);
    CHECK(seen[4].action == "Release");
    CHECK(seen[4].context == "uuid:6854B090-BBDB-486B-B750-5BF34D000933");
  }
}

TEST_CASE("an expired context restarts the enumeration once") {
  ServicePages pages;
  int expiries = 0;
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    if (s.action == "Pull" && expiries > 0) {
      --expiries;
      return {500, fault_body("n:InvalidEnumerationContext", 2150858779ULL)};
    }
    return pages.next(s);
  });
  SUBCASE("once: succeeds") {
    expiries = 1;
    auto rows = run(fake, fake.options());
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    CHECK(rows->size() == service_row_count());
    auto seen = fake.seen();
    REQUIRE(seen.size() == 6);
    CHECK(seen[0].action == "Enumerate");
    CHECK(seen[2].action == "Enumerate");
  }
  SUBCASE("twice: fails without a Release of the dead context") {
    expiries = 2;
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    REQUIRE(rows.error().fault.has_value());
    CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kContextExpired);
    for (const auto& s : fake.seen()) CHECK(s.action != "Release");
  }
}

TEST_CASE("max envelope faults halve MaxElements") {
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    if (s.action == "Enumerate" && s.max_elements != "8000") {
      return {500, fault_body("w:EncodingLimit", 2150858824ULL)};
    }
    return {200, read_fixture("enum/txw2012_os_star_single.xml")};
  });
  auto rows = run(fake, fake.options());
  REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
  CHECK(rows->size() == 1);
  auto seen = fake.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].max_elements == "32000");
  CHECK(seen[1].max_elements == "16000");
  CHECK(seen[2].max_elements == "8000");
}

TEST_CASE("HTTP statuses map to error kinds") {
  Reply reply;
  FakeWinrm fake([&](const Seen&, int) { return reply; });
  SUBCASE("500 with a fault") {
    reply = {500, read_fixture("faults/winrb2008r2_cannot_process_filter_invalid_class.xml")};
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kWsmanFault);
    CHECK(rows.error().http_status == 500);
    REQUIRE(rows.error().fault.has_value());
    CHECK(rows.error().fault->wsman_code == 2150858778ULL);
    CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kInvalidClass);
  }
  SUBCASE("500 with an empty body") {
    reply = {500, ""};
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kHttp);
    CHECK(rows.error().http_status == 500);
  }
  SUBCASE("503") {
    reply = {503, "busy"};
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kHttp);
    CHECK(rows.error().http_status == 503);
  }
  SUBCASE("401") {
    reply = {401, ""};
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kAuth);
  }
  SUBCASE("200 with broken XML") {
    reply = {200, "<s:Envelope><s:Body"};
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kParse);
  }
}

TEST_CASE("RelatesTo must match the MessageID unless verification is off") {
  FakeWinrm fake([&](const Seen&, int) {
    return Reply{200, read_fixture("enum/txw2012_os_star_single.xml"), false};
  });
  auto rows = run(fake, fake.options());
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kParse);
  auto options = fake.options();
  options.verify_relates_to = false;
  auto relaxed = run(fake, options);
  REQUIRE_MESSAGE(relaxed.has_value(), relaxed.error().describe());
  CHECK(relaxed->size() == 1);
}

TEST_CASE("the deadline ends a slow enumeration; no Release past the deadline") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    Reply r = pages.next(s);
    if (s.action == "Pull") r.delay = 5000ms;
    return r;
  });
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(fake.options(), winrm::make_no_auth(), counters);
  const auto start = winrm::Clock::now();
  auto rows = session.enumerate("root/cimv2", "SELECT * FROM Win32_Service", start + 1000ms);
  const auto elapsed = winrm::Clock::now() - start;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kTimeout);
  CHECK(elapsed < 3s);  // the deadline + 2 s of slack for a loaded machine; the server takes 5 s
  auto seen = fake.seen();
  std::string actions;
  for (const auto& s : seen) actions += s.action + " ";
  CAPTURE(actions);
  // The timed-out Pull dropped the connection and the poll has no time left: a Release
  // would need a new connection after the deadline, so none is sent.
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].operation_timeout_s < 1.0);
  CHECK(seen[1].action == "Pull");
  CHECK(counters->connections_opened.load() == 1);
}

TEST_CASE("basic auth over plain http is refused before sending") {
  FakeWinrm fake([&](const Seen&, int) { return Reply{200, ""}; });
  winrm::Session session(fake.options(), winrm::make_basic_auth("u", "p"), nullptr);
  auto rows = session.enumerate("root/cimv2", "SELECT * FROM Win32_OperatingSystem",
                                winrm::Clock::now() + 2s);
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kAuth);
  CHECK(fake.seen().empty());
}

namespace {

// Peak resident set size of this process so far, in KiB (Linux ru_maxrss).
long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// A host that never stops: Enumerate answers with the one-row first page, every Pull with
// the 75 KB, 50-service page p001 under a fresh context, until `stop_after` bytes were
// sent (then the last page). Counts what it sent.
struct EndlessPages {
  std::string first = read_fixture(kServicePages[0]);
  std::string middle = read_fixture(kServicePages[1]);
  std::string last = read_fixture(kServicePages[3]);
  std::size_t stop_after = std::size_t{1} << 30;
  std::chrono::milliseconds release_delay{0};
  std::size_t bytes_sent = 0;
  std::string last_context;

  Reply next(const Seen& s, int index) {
    if (s.action == "Release") return {200, "", true, release_delay};
    if (s.action == "Enumerate") {
      last_context = "uuid:6854B090-BBDB-486B-B750-5BF34D000933";
      bytes_sent += first.size();
      return {200, first};
    }
    if (bytes_sent > stop_after) return {200, last};
    Reply reply{200, middle};
    last_context = "uuid:endless-" + std::to_string(index);
    replace_element(reply.body, "n:EnumerationContext", last_context);
    bytes_sent += reply.body.size();
    return reply;
  }
};

std::string actions_of(const std::vector<Seen>& seen) {
  std::string out;
  for (const auto& s : seen) out += s.action + " ";
  return out;
}

}  // namespace

TEST_CASE("endless pages stop at limits.max_poll_bytes with a Release; memory stays bounded") {
  EndlessPages pages;  // would send 1 GiB
  std::mutex mutex;
  FakeWinrm fake([&](const Seen& s, int i) {
    std::lock_guard lock(mutex);
    return pages.next(s, i);
  });
  const long rss_before = peak_rss_kib();
  auto options = fake.options();
  REQUIRE(options.limits.max_poll_bytes == 64u << 20);  // the default
  auto rows = run(fake, options, 120s);                 // generous: ~900 pages on loopback
  const long rss_growth_mib = (peak_rss_kib() - rss_before) / 1024;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kTransport);
  CAPTURE(rows.error().message);
  CHECK(rows.error().message.find("limits.max_poll_bytes = 67108864") != std::string::npos);
  CHECK(rows.error().limit == winrm::Limit::kPollBytes);
  auto seen = fake.seen();
  REQUIRE(seen.size() > 2);
  CHECK(seen.back().action == "Release");
  {
    std::lock_guard lock(mutex);
    CHECK(seen.back().context == pages.last_context);  // the newest context
    CHECK(pages.bytes_sent < (64u << 20) + 2 * pages.middle.size());
  }
  MESSAGE("peak RSS growth " << rss_growth_mib << " MiB; " << rows.error().message);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine and shadow memory inflate RSS
  CHECK(rss_growth_mib < 128);
#endif
}

TEST_CASE("limits.max_rows_per_poll ends the poll with a Release bounded by 500 ms") {
  EndlessPages pages;
  pages.release_delay = 3000ms;  // a host that does not answer the Release
  std::mutex mutex;
  FakeWinrm fake([&](const Seen& s, int i) {
    std::lock_guard lock(mutex);
    return pages.next(s, i);
  });
  auto options = fake.options();
  options.limits.max_rows_per_poll = 1000;
  const auto start = winrm::Clock::now();
  auto rows = run(fake, options, 10s);
  const auto elapsed = winrm::Clock::now() - start;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kParse);
  CAPTURE(rows.error().message);
  CHECK(rows.error().message.find("limits.max_rows_per_poll = 1000") != std::string::npos);
  CHECK(rows.error().limit == winrm::Limit::kRows);
  auto seen = fake.seen();
  CAPTURE(actions_of(seen));
  REQUIRE(seen.size() > 2);
  CHECK(seen.size() < 30);  // 1000 rows are ~20 pages of 50
  CHECK(seen.back().action == "Release");
  CHECK(seen.back().context == seen[seen.size() - 2].context);  // the page that failed
  CHECK(elapsed < 2500ms);  // Release's own budget (500 ms) + 2 s, not the host's 3 s
}

TEST_CASE("limits.max_properties_per_instance is passed to the parser and named") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) { return pages.next(s); });
  auto options = fake.options();
  options.limits.max_properties_per_instance = 5;
  auto rows = run(fake, options);
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kParse);
  CAPTURE(rows.error().message);
  CHECK(rows.error().message.find("limits.max_properties_per_instance = 5") != std::string::npos);
  CHECK(rows.error().limit == winrm::Limit::kProperties);
  // The first answer did not parse, so there is no context to release.
  REQUIRE(fake.seen().size() == 1);
}

TEST_CASE("a bad later page is followed by a Release, unless the connection is gone") {
  for (bool close : {false, true}) {
    CAPTURE(close);
    ServicePages pages;
    FakeWinrm fake([&](const Seen& s, int) -> Reply {
      if (s.action == "Pull") return {200, "<s:Envelope><s:Body", true, 0ms, close};
      return pages.next(s);
    });
    auto counters = std::make_shared<winrm::TransportCounters>();
    winrm::Session session(fake.options(), winrm::make_no_auth(), counters);
    auto rows =
        session.enumerate("root/cimv2", "SELECT * FROM Win32_Service", winrm::Clock::now() + 5s);
    REQUIRE_FALSE(rows.has_value());
    CHECK(rows.error().kind == winrm::ErrorKind::kParse);
    auto seen = fake.seen();
    CAPTURE(actions_of(seen));
    if (close) {
      // Never reconnect just to send a Release.
      REQUIRE(seen.size() == 2);
      CHECK(counters->connections_opened.load() == 1);
    } else {
      REQUIRE(seen.size() == 3);
      CHECK(seen[2].action == "Release");
      CHECK(seen[2].context == "uuid:6854B090-BBDB-486B-B750-5BF34D000933");
    }
  }
}

TEST_CASE("a quota fault is kQuotaExceeded, says how to raise the quota, and is not retried") {
  FakeWinrm fake([&](const Seen&, int) {
    return Reply{500, read_fixture("faults/txw_quota_max_concurrent_operations.xml")};
  });
  auto rows = run(fake, fake.options());
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kWsmanFault);
  REQUIRE(rows.error().fault.has_value());
  CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kQuotaExceeded);
  const std::string described = rows.error().describe();
  CAPTURE(described);
  CHECK(described.find("quota_exceeded") != std::string::npos);
  CHECK(described.find("winrm set winrm/config/Service @{MaxConcurrentOperationsPerUser=") !=
        std::string::npos);
  CHECK(fake.seen().size() == 1);  // back-off is the scheduler's job
}

TEST_CASE("2150858823 (MaxEnvelopeSize too large) retries with half the size") {
  std::size_t server_limit = 153600;  // MaxEnvelopeSizekb 150, Windows Server 2008 R2
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    if (std::stoul("0" + s.max_envelope_size) > server_limit) {
      return {500, fault_body("w:EncodingLimit", 2150858823ULL)};
    }
    return {200, read_fixture("enum/txw2012_os_star_single.xml")};
  });
  SUBCASE("until the host accepts it") {
    auto rows = run(fake, fake.options());
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    CHECK(rows->size() == 1);
    auto seen = fake.seen();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].max_envelope_size == "512000");
    CHECK(seen[1].max_envelope_size == "256000");
    CHECK(seen[2].max_envelope_size == "128000");
  }
  SUBCASE("a bounded number of times, never below 8192") {
    server_limit = 0;
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    REQUIRE(rows.error().fault.has_value());
    CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kEnvelopeSizeTooLarge);
    CHECK(rows.error().describe().find("lower winrm.max_envelope_size") != std::string::npos);
    auto seen = fake.seen();
    CHECK(seen.size() == 5);  // 512000 and four halvings
    CHECK(seen.back().max_envelope_size == "32000");
    auto small = fake.options();
    small.max_envelope_size = 12000;
    auto once = run(fake, small);
    REQUIRE_FALSE(once.has_value());
    auto all = fake.seen();
    CHECK(all.size() == seen.size() + 2);
    CHECK(all.back().max_envelope_size == "8192");
  }
}

TEST_CASE("0x80338084 (enumeration invalid after a failed Pull) restarts the enumeration once") {
  ServicePages pages;
  int invalid = 0;
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    if (s.action == "Pull" && invalid > 0) {
      --invalid;
      return {500, fault_body("w:InternalError", 0x80338084ULL)};
    }
    return pages.next(s);
  });
  SUBCASE("once: succeeds") {
    invalid = 1;
    auto rows = run(fake, fake.options());
    REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
    CHECK(rows->size() == service_row_count());
    auto seen = fake.seen();
    REQUIRE(seen.size() == 6);
    CHECK(seen[2].action == "Enumerate");
  }
  SUBCASE("twice: fails as context_expired without a Release") {
    invalid = 2;
    auto rows = run(fake, fake.options());
    REQUIRE_FALSE(rows.has_value());
    REQUIRE(rows.error().fault.has_value());
    CHECK(rows.error().fault->wsman_code == 2150858884ULL);
    CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kContextExpired);
    for (const auto& s : fake.seen()) CHECK(s.action != "Release");
  }
}

TEST_CASE("per-target WinRM options reach the wire") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) { return pages.next(s); });
  auto options = fake.options();
  options.max_envelope_size = 153600;
  options.max_elements = 500;
  options.operation_timeout = 7s;
  options.locale = "de-DE";
  auto rows = run(fake, options, 20s);
  REQUIRE_MESSAGE(rows.has_value(), rows.error().describe());
  auto seen = fake.seen();
  REQUIRE(seen.size() == 4);
  for (const auto& s : seen) {
    CAPTURE(s.body);
    CHECK(s.body.find("<w:MaxEnvelopeSize s:mustUnderstand=\"true\">153600</w:MaxEnvelopeSize>") !=
          std::string::npos);
    CHECK(s.body.find("<w:OperationTimeout>PT7.000S</w:OperationTimeout>") != std::string::npos);
    CHECK(s.body.find("<w:Locale xml:lang=\"de-DE\"") != std::string::npos);
  }
  CHECK(seen[0].body.find("<w:MaxElements>500</w:MaxElements>") != std::string::npos);
  CHECK(seen[1].body.find("<n:MaxElements>500</n:MaxElements>") != std::string::npos);
}

TEST_CASE("the response cap follows MaxEnvelopeSize unless set explicitly") {
  winrm::SessionOptions options;
  CHECK(winrm::effective_max_response_bytes(options) == 2 * 512000 + 64 * 1024);
  options.max_envelope_size = 153600;
  CHECK(winrm::effective_max_response_bytes(options) == 2 * 153600 + 64 * 1024);
  options.limits.max_response_bytes = 4u << 20;
  CHECK(winrm::effective_max_response_bytes(options) == 4u << 20);
  options.endpoint.max_response_bytes = 1u << 20;  // the transport's ceiling still holds
  CHECK(winrm::effective_max_response_bytes(options) == 1u << 20);

  // A 75 KB page against MaxEnvelopeSize 8192: cap 2 x 8192 + 64 KiB = 81920 bytes.
  const std::string big = read_fixture(kServicePages[1]);
  REQUIRE(big.size() < 81920);
  std::string bigger = big;
  const auto items = bigger.find("<n:Items>") + 9;
  bigger.insert(items, std::string(10000, ' '));
  REQUIRE(bigger.size() > 81920);
  FakeWinrm fake([&](const Seen&, int) { return Reply{200, bigger}; });
  auto small = fake.options();
  small.max_envelope_size = 8192;
  winrm::Session session(small, winrm::make_no_auth(), nullptr);
  CHECK(session.options().endpoint.max_response_bytes == 81920);
  auto rows =
      session.enumerate("root/cimv2", "SELECT * FROM Win32_Service", winrm::Clock::now() + 5s);
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kTransport);
  CAPTURE(rows.error().message);
  CHECK(rows.error().message.find("81920") != std::string::npos);
  CHECK(rows.error().message.find("limits.max_response_bytes") != std::string::npos);
}

TEST_CASE("UTF-16 pages and faults are decoded by the charset in Content-Type") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) {
    Reply reply = pages.next(s);
    reply.utf16 = true;
    if (s.action == "Pull" && s.context == "uuid:6C79B05D-4FB2-4CD2-8ECC-480429BC12BB") {
      reply = {500, read_fixture("faults/txw_quota_max_concurrent_operations.xml")};
      reply.utf16 = true;
    }
    return reply;
  });
  auto rows = run(fake, fake.options());
  REQUIRE_FALSE(rows.has_value());
  REQUIRE(rows.error().fault.has_value());  // the UTF-16 fault parsed
  CHECK(winrm::classify(*rows.error().fault) == winrm::FaultClass::kQuotaExceeded);
  auto seen = fake.seen();
  REQUIRE(seen.size() == 5);  // three UTF-16 pages parsed, then the fault and a Release
  CHECK(seen[3].action == "Pull");
  CHECK(seen[4].action == "Release");

  ServicePages clean;
  FakeWinrm utf16([&](const Seen& s, int) {
    Reply reply = clean.next(s);
    reply.utf16 = true;
    return reply;
  });
  auto all = run(utf16, utf16.options());
  REQUIRE_MESSAGE(all.has_value(), all.error().describe());
  CHECK(all->size() == service_row_count());
  CHECK((*all)[0].string("Name") == "AeLookupSvc");
}

namespace {
// Sends without credentials and raises the cancel flag once the first answer is in: a
// SIGTERM that arrives between two pages, while the connection is idle.
class CancelAfterFirstAnswer final : public winrm::Auth {
 public:
  explicit CancelAfterFirstAnswer(std::shared_ptr<std::atomic<bool>> cancel)
      : cancel_(std::move(cancel)) {}
  winrm::Result<winrm::HttpResponse> send(winrm::Connection& conn, const std::string& body,
                                          winrm::Deadline deadline) override {
    auto response = inner_->send(conn, body, deadline);
    cancel_->store(true);
    return response;
  }
  std::string name() const override { return "none"; }

 private:
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::shared_ptr<winrm::Auth> inner_ = winrm::make_no_auth();
};
}  // namespace

TEST_CASE("cancel (shutdown) between pages: a Release on the idle connection, then the error") {
  ServicePages pages;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  FakeWinrm fake([&](const Seen& s, int) { return pages.next(s); });
  auto options = fake.options();
  options.endpoint.cancel = cancel;
  winrm::Session session(options, std::make_shared<CancelAfterFirstAnswer>(cancel), nullptr);
  const auto start = winrm::Clock::now();
  auto rows =
      session.enumerate("root/cimv2", "SELECT * FROM Win32_Service", winrm::Clock::now() + 60s);
  const auto elapsed = winrm::Clock::now() - start;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kCancelled);
  CHECK(rows.error().cancelled);
  CAPTURE(rows.error().message);
  CHECK(rows.error().message.find("cancelled (shutting down) after") != std::string::npos);
  auto seen = fake.seen();
  CAPTURE(actions_of(seen));
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].action == "Release");  // went out although the flag was up
  CHECK(seen[1].context == "uuid:6854B090-BBDB-486B-B750-5BF34D000933");
  CHECK(elapsed < 10s);  // correctness bound against the 60 s deadline
}

TEST_CASE("cancel (shutdown) during a slow answer ends the request, without a Release") {
  ServicePages pages;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  FakeWinrm fake([&](const Seen& s, int) {
    Reply reply = pages.next(s);
    if (s.action == "Pull") {
      cancel->store(true);    // SIGTERM while the host takes its time over the Pull
      reply.delay = 30000ms;  // the fake stops waiting when it is destroyed
    }
    return reply;
  });
  auto options = fake.options();
  options.endpoint.cancel = cancel;
  const auto start = winrm::Clock::now();
  auto rows = run(fake, options, 60s);
  const auto elapsed = winrm::Clock::now() - start;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kCancelled);
  CHECK(rows.error().cancelled);
  CAPTURE(rows.error().message);
  auto seen = fake.seen();
  CAPTURE(actions_of(seen));
  // The cut connection is not reopened for a Release.
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].action == "Pull");
  CHECK(elapsed < 10s);  // libcurl looks at the flag about once a second; deadline 60 s
}

}  // namespace test_session
