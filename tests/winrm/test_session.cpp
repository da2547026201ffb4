// Session's Enumerate/Pull/Release loop against a scripted in-process WS-Man server that
// answers with captured Windows bodies (tests/fixtures) and records every request.
#include <doctest/doctest.h>
#include <httplib.h>

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
  double operation_timeout_s = 0;
};

struct Reply {
  int status = 200;
  std::string body;
  bool rewrite_relates_to = true;
  std::chrono::milliseconds delay{0};
};

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
      if (reply.rewrite_relates_to) {
        reply.body = std::regex_replace(reply.body, std::regex("<a:RelatesTo>[^<]*</a:RelatesTo>"),
                                        "<a:RelatesTo>" + seen.message_id + "</a:RelatesTo>");
      }
      res.status = reply.status;
      if (!reply.body.empty()) res.set_content(reply.body, "application/soap+xml;charset=UTF-8");
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

TEST_CASE("the deadline ends a slow enumeration and releases its context") {
  ServicePages pages;
  FakeWinrm fake([&](const Seen& s, int) -> Reply {
    Reply r = pages.next(s);
    if (s.action == "Pull") r.delay = 5000ms;
    return r;
  });
  const auto start = winrm::Clock::now();
  auto rows = run(fake, fake.options(), 1000ms);
  const auto elapsed = winrm::Clock::now() - start;
  REQUIRE_FALSE(rows.has_value());
  CHECK(rows.error().kind == winrm::ErrorKind::kTimeout);
  CHECK(elapsed < 4s);  // sanity bound: the server would take 5 s
  auto seen = fake.seen();
  std::string actions;
  for (const auto& s : seen) actions += s.action + " ";
  CAPTURE(actions);
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].operation_timeout_s < 1.0);
  CHECK(seen[2].action == "Release");
  CHECK(seen[2].context == seen[1].context);
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
