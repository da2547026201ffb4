// End-to-end: spawns the winrm-sim binary and talks raw WS-Management to it over HTTPS.
#include <doctest/doctest.h>
#include <httplib.h>
#include <tinyxml2.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testsupport/sim_process.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_sim_e2e {

namespace {

using Row = std::map<std::string, std::string>;

std::string local(const char* name) {
  std::string n(name);
  auto c = n.find(':');
  return c == std::string::npos ? n : n.substr(c + 1);
}

const tinyxml2::XMLElement* find(const tinyxml2::XMLElement* e, const std::string& name) {
  if (e == nullptr) return nullptr;
  if (local(e->Name()) == name) return e;
  for (auto* c = e->FirstChildElement(); c != nullptr; c = c->NextSiblingElement()) {
    if (auto* f = find(c, name)) return f;
  }
  return nullptr;
}

std::string enumerate_xml(const std::string& wql, const std::string& ns = "root/cimv2",
                          const std::string& max_envelope = "153600") {
  return "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
         "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
         "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
         "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header>"
         "<a:To>https://127.0.0.1/wsman</a:To><w:ResourceURI s:mustUnderstand=\"true\">"
         "http://schemas.microsoft.com/wbem/wsman/1/wmi/" +
         ns +
         "/*</w:ResourceURI>"
         "<a:Action "
         "s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
         "</a:Action><w:MaxEnvelopeSize s:mustUnderstand=\"true\">" +
         max_envelope +
         "</w:MaxEnvelopeSize>"
         "<a:MessageID>uuid:0A0A0A0A-0000-4000-8000-000000000001</a:MessageID>"
         "<w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/><w:OperationTimeout>PT60.000S"
         "</w:OperationTimeout></s:Header><s:Body><n:Enumerate><w:OptimizeEnumeration/>"
         "<w:MaxElements>32000</w:MaxElements><w:Filter "
         "Dialect=\"http://schemas.microsoft.com/wbem/wsman/1/WQL\">" +
         wql + "</w:Filter></n:Enumerate></s:Body></s:Envelope>";
}

std::string pull_xml(const std::string& ctx) {
  return "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
         "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
         "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
         "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header>"
         "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*</w:ResourceURI>"
         "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull</a:Action>"
         "<w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize>"
         "<a:MessageID>uuid:0B0B0B0B-0000-4000-8000-000000000002</a:MessageID></"
         "s:Header><s:Body><n:Pull>"
         "<n:EnumerationContext>" +
         ctx +
         "</n:EnumerationContext><n:MaxElements>32000</n:MaxElements>"
         "</n:Pull></s:Body></s:Envelope>";
}

struct Page {
  int status = 0;
  std::string body;
  std::vector<Row> rows;
  std::optional<std::string> context;  // absent element
  bool end = false;
  std::string fault_code;  // f:WSManFault/@Code
  std::string fault_message;
};

Page parse_page(int status, const std::string& body) {
  Page p;
  p.status = status;
  p.body = body;
  tinyxml2::XMLDocument doc;
  REQUIRE_MESSAGE(doc.Parse(body.data(), body.size()) == tinyxml2::XML_SUCCESS,
                  body.substr(0, 300));
  const auto* root = doc.RootElement();
  if (const auto* f = find(root, "WSManFault")) {
    p.fault_code = f->Attribute("Code") ? f->Attribute("Code") : "";
    const tinyxml2::XMLElement* inner = f;
    while (const auto* deeper = find(inner->FirstChildElement(), "WSManFault")) inner = deeper;
    if (const auto* m = find(inner->FirstChildElement(), "Message"); m && m->GetText())
      p.fault_message = m->GetText();
  }
  if (const auto* ctx = find(root, "EnumerationContext"))
    p.context = ctx->GetText() ? ctx->GetText() : "";
  p.end = find(root, "EndOfSequence") != nullptr;
  if (const auto* items = find(root, "Items")) {
    for (auto* item = items->FirstChildElement(); item != nullptr;
         item = item->NextSiblingElement()) {
      Row row;
      for (auto* prop = item->FirstChildElement(); prop != nullptr;
           prop = prop->NextSiblingElement()) {
        std::string value;
        if (const auto* dt = prop->FirstChildElement()) {
          value = dt->GetText() ? dt->GetText() : "";
        } else if (prop->Attribute("xsi:nil")) {
          value = "<nil>";
        } else {
          value = prop->GetText() ? prop->GetText() : "";
        }
        auto& slot = row[local(prop->Name())];
        slot = slot.empty() ? value : slot + "," + value;
      }
      p.rows.push_back(std::move(row));
    }
  }
  return p;
}

class Client {
 public:
  Client(int port, const std::filesystem::path& ca, bool with_auth = true)
      : cli_("127.0.0.1", port) {
    cli_.set_ca_cert_path(ca.string());
    cli_.enable_server_certificate_verification(true);
    cli_.set_connection_timeout(5, 0);
    cli_.set_read_timeout(10, 0);
    if (with_auth) cli_.set_basic_auth("monitor", "s3cret");
  }
  httplib::Result post(const std::string& host, const std::string& body) {
    httplib::Headers headers{{"Host", host}};
    return cli_.Post("/wsman", headers, body, "application/soap+xml;charset=UTF-8");
  }
  Page send(const std::string& host, const std::string& body) {
    auto res = post(host, body);
    REQUIRE_MESSAGE(res, "HTTP error " << httplib::to_string(res.error()));
    return parse_page(res->status, res->body);
  }
  // Enumerate + Pull until the end; collects every context seen.
  std::vector<Row> query(const std::string& host, const std::string& wql,
                         std::vector<std::string>* contexts = nullptr, int* pages = nullptr) {
    Page p = send(host, enumerate_xml(wql));
    REQUIRE_MESSAGE(p.status == 200, p.body.substr(0, 600));
    std::vector<Row> rows = p.rows;
    int n = 1;
    while (!p.end && p.context && !p.context->empty()) {
      REQUIRE(n < 1000);
      if (contexts) contexts->push_back(*p.context);
      p = send(host, pull_xml(*p.context));
      REQUIRE_MESSAGE(p.status == 200, p.body.substr(0, 600));
      rows.insert(rows.end(), p.rows.begin(), p.rows.end());
      ++n;
    }
    CHECK(p.end);
    if (pages) *pages = n;
    return rows;
  }

 private:
  httplib::SSLClient cli_;
};

struct Fixture {
  simtest::TempDir dir;
  Fixture() { simtest::gen_certs(dir.path()); }
  std::filesystem::path ca() const { return dir.path() / "ca.pem"; }
};

const char* kBaseConfig =
    R"(https: {address: 127.0.0.1, port: 0, cert: "{dir}/server.pem", key: "{dir}/server.key"}
http: {address: 127.0.0.1, port: 0}
page_size: 10
keep_alive_timeout: 2s
users:
  - {username: monitor, password: s3cret}
hosts:
  - name: quota.sim.test
    fault: quota_exceeded
  - name: timeouts.sim.test
    pull_timeouts: 2
  - name: expire.sim.test
    expire_context_once: true
  - name: locked.sim.test
    always_401: true
  - name: broken.sim.test
    malformed_xml: true
  - name: cut.sim.test
    close_mid_body: true
  - name: small.sim.test
    cpus: 3
)";

}  // namespace

// One simulator for all cases below (certificate generation and start-up cost seconds).
struct SharedSim {
  Fixture fx;
  simtest::SimProcess sim{fx.dir.path(), kBaseConfig};
};
SharedSim& shared() {
  static SharedSim instance;  // destroyed at exit: SIGTERM + waitpid
  return instance;
}
Client client_for_shared(bool with_auth = true) {
  return Client(shared().sim.port("https"), shared().fx.ca(), with_auth);
}

TEST_CASE("sim: 401 without credentials lists Windows' schemes and has an empty body") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  Client anon = client_for_shared(false);
  auto res = anon.post("win01.sim.test", enumerate_xml("SELECT * FROM Win32_OperatingSystem"));
  REQUIRE(res);
  CHECK(res->status == 401);
  REQUIRE(res->get_header_value_count("WWW-Authenticate") == 3);
  CHECK(res->get_header_value("WWW-Authenticate", 0) == "Negotiate");
  CHECK(res->get_header_value("WWW-Authenticate", 1) == "Kerberos");
  CHECK(res->get_header_value("WWW-Authenticate", 2) == "Basic realm=\"WSMAN\"");
  CHECK(res->body.empty());
}

TEST_CASE("sim: TLS SNI must name the host the Host header asks for") {
  auto& sim = shared().sim;
  // Connect to 127.0.0.1 but present win01.sim.test in SNI (and certificate checks).
  httplib::SSLClient cli("win01.sim.test", sim.port("https"));
  cli.set_hostname_addr_map({{"win01.sim.test", "127.0.0.1"}});
  cli.set_ca_cert_path(shared().fx.ca().string());
  cli.enable_server_certificate_verification(true);
  cli.set_basic_auth("monitor", "s3cret");
  const std::string body = enumerate_xml("SELECT Caption FROM Win32_OperatingSystem");
  auto same = cli.Post("/wsman", {{"Host", "win01.sim.test"}}, body, "application/soap+xml");
  REQUIRE(same);
  CHECK(same->status == 200);
  auto other = cli.Post("/wsman", {{"Host", "win02.sim.test"}}, body, "application/soap+xml");
  REQUIRE(other);
  CHECK(other->status == 421);
}

TEST_CASE("sim: wrong password is rejected") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  httplib::SSLClient bad("127.0.0.1", sim.port("https"));
  bad.enable_server_certificate_verification(false);
  bad.set_basic_auth("monitor", "wrong");
  auto res = bad.Post("/wsman", enumerate_xml("SELECT * FROM Win32_OperatingSystem"),
                      "application/soap+xml");
  REQUIRE(res);
  CHECK(res->status == 401);
}

// The sim decodes Basic credentials leniently (sim/server.cpp basic_credentials): padding
// optional, on common's strict decoder.
TEST_CASE("sim: Basic credentials with or without base64 padding; not base64 is rejected") {
  auto& sim = shared().sim;
  httplib::SSLClient cli("127.0.0.1", sim.port("https"));
  cli.enable_server_certificate_verification(false);
  const std::string body = enumerate_xml("SELECT Caption FROM Win32_OperatingSystem");
  const auto status = [&](const std::string& credentials) {
    auto res = cli.Post("/wsman", {{"Authorization", "Basic " + credentials}}, body,
                        "application/soap+xml");
    REQUIRE(res);
    return res->status;
  };
  CHECK(status("bW9uaXRvcjpzM2NyZXQ=") == 200);   // monitor:s3cret
  CHECK(status("bW9uaXRvcjpzM2NyZXQ") == 200);    // the same, unpadded
  CHECK(status("bW9uaXRvcjpzM2NyZXQ=x") == 200);  // after the '=': ignored
  CHECK(status("bW9uaXRvcjpzM2NyZXQx") == 401);   // decodes, to other bytes
  CHECK(status("bW9uaXRvcjpzM2NyZXQxx") == 401);  // one character past a group: no byte
  CHECK(status("bW9u*XRvcjpzM2NyZXQ=") == 401);   // outside the alphabet
}

TEST_CASE("sim: Enumerate + Pull returns every service across pages with a new context each page") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  std::vector<std::string> contexts;
  int pages = 0;
  auto rows = client.query("win01.sim.test", "SELECT Name, State, StartMode FROM Win32_Service",
                           &contexts, &pages);
  CHECK(rows.size() >= 40);
  CHECK(rows.size() <= 120);
  // 1 instance in the EnumerateResponse, then pages of page_size (10).
  CHECK(pages == 1 + static_cast<int>((rows.size() - 1 + 9) / 10));
  std::set<std::string> unique_contexts(contexts.begin(), contexts.end());
  CHECK(unique_contexts.size() == contexts.size());
  std::set<std::string> names;
  for (const auto& r : rows) {
    CHECK(r.size() == 3);
    names.insert(r.at("Name"));
    CHECK((r.at("State") == "Running" || r.at("State") == "Stopped"));
  }
  CHECK(names.size() == rows.size());
  CHECK(names.contains("WinRM"));
  // SELECT * yields the same instances.
  auto star = client.query("win01.sim.test", "SELECT * FROM Win32_Service");
  CHECK(star.size() == rows.size());
  CHECK(star.front().contains("PathName"));
  // WHERE filters.
  auto running =
      client.query("win01.sim.test", "SELECT Name FROM Win32_Service WHERE State = 'Running'");
  std::size_t expected = 0;
  for (const auto& r : rows) expected += r.at("State") == "Running" ? 1 : 0;
  CHECK(running.size() == expected);
}

TEST_CASE("sim: a finished context is invalid afterwards") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  Page p = client.send("win01.sim.test", enumerate_xml("SELECT Name FROM Win32_Service"));
  REQUIRE(p.context);
  const std::string first = *p.context;
  Page p2 = client.send("win01.sim.test", pull_xml(first));
  CHECK(p2.status == 200);
  Page again = client.send("win01.sim.test", pull_xml(first));
  CHECK(again.status == 500);
  CHECK(again.fault_code == "2150858779");
}

std::string release_xml(const std::string& ctx) {
  std::string x = pull_xml(ctx);
  for (auto [from, to] :
       {std::pair<std::string, std::string>{"enumeration/Pull<", "enumeration/Release<"},
        {"<n:Pull>", "<n:Release>"},
        {"</n:Pull>", "</n:Release>"},
        {"<n:MaxElements>32000</n:MaxElements>", ""}}) {
    x.replace(x.find(from), from.size(), to);
  }
  return x;
}

TEST_CASE("sim: Release ends an enumeration early") {
  Client client = client_for_shared();
  Page p = client.send("win01.sim.test", enumerate_xml("SELECT Name FROM Win32_Process"));
  REQUIRE(p.context);
  REQUIRE(!p.context->empty());
  auto rel = client.post("win01.sim.test", release_xml(*p.context));
  REQUIRE(rel);
  CHECK(rel->status == 200);
  CHECK(rel->body.find("enumeration/ReleaseResponse") != std::string::npos);
  Page after = client.send("win01.sim.test", pull_xml(*p.context));
  CHECK(after.status == 500);
  CHECK(after.fault_code == "2150858779");
}

TEST_CASE("sim: unknown class answers CannotProcessFilter with HTTP 500") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  Page p = client.send("win01.sim.test", enumerate_xml("SELECT * FROM Win32_NoSuchClass"));
  CHECK(p.status == 500);
  CHECK(p.fault_code == "2150858778");
  CHECK(p.fault_message.find("The specified class does not exist in the given namespace.") !=
        std::string::npos);
  CHECK(p.body.find("n:CannotProcessFilter") != std::string::npos);
  Page bad = client.send("win01.sim.test", enumerate_xml("SELECT FROM WHERE"));
  CHECK(bad.status == 500);
  CHECK(bad.fault_code == "2150858778");
  Page ns =
      client.send("win01.sim.test", enumerate_xml("SELECT * FROM Win32_Service", "root/nothere"));
  CHECK(ns.status == 500);
  CHECK(ns.fault_code == "2150858752");
}

TEST_CASE("sim: counters advance between two polls a second apart") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  const std::string wql = "SELECT * FROM Win32_PerfRawData_PerfOS_Processor WHERE Name = '_Total'";
  auto a = client.query("win01.sim.test", wql);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto b = client.query("win01.sim.test", wql);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  auto num = [](const Row& r, const char* k) { return std::stoull(r.at(k)); };
  const auto dt = num(b[0], "Timestamp_Sys100NS") - num(a[0], "Timestamp_Sys100NS");
  CHECK(dt >= 10000000ull);
  CHECK(dt < 100000000ull);
  for (const char* k : {"PercentIdleTime", "PercentUserTime", "PercentPrivilegedTime",
                        "InterruptsPersec", "Timestamp_PerfTime"}) {
    CHECK_MESSAGE(num(b[0], k) >= num(a[0], k), k);
  }
  const auto busy = (num(b[0], "PercentUserTime") - num(a[0], "PercentUserTime")) +
                    (num(b[0], "PercentPrivilegedTime") - num(a[0], "PercentPrivilegedTime"));
  const auto idle = num(b[0], "PercentIdleTime") - num(a[0], "PercentIdleTime");
  CHECK(busy > 0);
  CHECK(idle > 0);
  CHECK(busy + idle <= dt + dt / 100);  // a core cannot be more than 100% busy
  auto n1 = client.query(
      "win01.sim.test",
      "SELECT Name, BytesReceivedPersec FROM Win32_PerfRawData_Tcpip_NetworkInterface");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto n2 = client.query(
      "win01.sim.test",
      "SELECT Name, BytesReceivedPersec FROM Win32_PerfRawData_Tcpip_NetworkInterface");
  REQUIRE(!n1.empty());
  REQUIRE(n1.size() == n2.size());
  CHECK(std::stoull(n2[0].at("BytesReceivedPersec")) >
        std::stoull(n1[0].at("BytesReceivedPersec")));
  // Disk idle time is a counter that grows on every volume (it was once clamped to 0
  // when read+write time, which can exceed wall time, was subtracted from it).
  const std::string disk_wql =
      "SELECT Name, PercentIdleTime, Timestamp_Sys100NS FROM "
      "Win32_PerfRawData_PerfDisk_LogicalDisk";
  auto d1 = client.query("golden-01.sim.test", disk_wql);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto d2 = client.query("golden-01.sim.test", disk_wql);
  REQUIRE(!d1.empty());
  REQUIRE(d1.size() == d2.size());
  for (std::size_t i = 0; i < d1.size(); ++i) {
    CAPTURE(d1[i].at("Name"));
    const auto idle = num(d2[i], "PercentIdleTime") - num(d1[i], "PercentIdleTime");
    const auto wall = num(d2[i], "Timestamp_Sys100NS") - num(d1[i], "Timestamp_Sys100NS");
    CHECK(idle > 0);
    CHECK(idle <= wall * d1.size());
  }
}

TEST_CASE("sim: different Host headers give different, stable data") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  const std::string wql =
      "SELECT Name, NumberOfLogicalProcessors, TotalPhysicalMemory FROM Win32_ComputerSystem";
  auto a1 = client.query("win01.sim.test", wql);
  auto a2 = client.query("WIN01.sim.test:5986", wql);  // case and port do not matter
  auto b = client.query("win02.sim.test", wql);
  REQUIRE(a1.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a1 == a2);
  CHECK(a1[0].at("Name") == "WIN01");
  CHECK(b[0].at("Name") == "WIN02");
  auto s1 = client.query("win01.sim.test", "SELECT SerialNumber FROM Win32_OperatingSystem");
  auto s2 = client.query("win02.sim.test", "SELECT SerialNumber FROM Win32_OperatingSystem");
  CHECK(s1 != s2);
  auto small =
      client.query("small.sim.test", "SELECT Name FROM Win32_PerfRawData_PerfOS_Processor");
  CHECK(small.size() == 4);  // 3 cores + _Total (config override)
}

TEST_CASE("sim: fault modes") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  Page q = client.send("quota.sim.test", enumerate_xml("SELECT * FROM Win32_Service"));
  CHECK(q.status == 500);
  CHECK(q.fault_code == "2150859174");

  Page t = client.send("timeouts.sim.test", enumerate_xml("SELECT Name FROM Win32_Service"));
  REQUIRE(t.context);
  for (int i = 0; i < 2; ++i) {
    Page to = client.send("timeouts.sim.test", pull_xml(*t.context));
    CHECK(to.status == 500);
    CHECK(to.fault_code == "2150858793");
  }
  Page ok = client.send("timeouts.sim.test", pull_xml(*t.context));
  CHECK(ok.status == 200);
  CHECK(!ok.rows.empty());

  Page e = client.send("expire.sim.test", enumerate_xml("SELECT Name FROM Win32_Service"));
  REQUIRE(e.context);
  Page ex = client.send("expire.sim.test", pull_xml(*e.context));
  CHECK(ex.status == 500);
  CHECK(ex.fault_code == "2150858779");
  auto rows = client.query("expire.sim.test", "SELECT Name FROM Win32_Service");  // only once
  CHECK(rows.size() >= 40);

  auto locked = client.post("locked.sim.test", enumerate_xml("SELECT * FROM Win32_Service"));
  REQUIRE(locked);
  CHECK(locked->status == 401);

  auto broken = client.post("broken.sim.test", enumerate_xml("SELECT * FROM Win32_Service"));
  REQUIRE(broken);
  CHECK(broken->status == 200);
  tinyxml2::XMLDocument doc;
  CHECK(doc.Parse(broken->body.data(), broken->body.size()) != tinyxml2::XML_SUCCESS);

  auto cut = client.post("cut.sim.test", enumerate_xml("SELECT * FROM Win32_Service"));
  CHECK(!cut);  // connection closed mid-body
}

TEST_CASE("sim: a too small MaxEnvelopeSize answers the 2150858824 fault") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  Page p = client.send("win01.sim.test",
                       enumerate_xml("SELECT * FROM Win32_Service", "root/cimv2", "1500"));
  CHECK(p.status == 500);
  CHECK(p.fault_code == "2150858824");
}

TEST_CASE("sim: plain HTTP listener works too") {
  auto& sim = shared().sim;
  (void)sim;
  Client client = client_for_shared();
  httplib::Client plain("127.0.0.1", sim.port("http"));
  plain.set_basic_auth("monitor", "s3cret");
  auto res = plain.Post("/wsman", enumerate_xml("SELECT Caption FROM Win32_OperatingSystem"),
                        "application/soap+xml");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("<Caption>Microsoft Windows Server") != std::string::npos);
}

TEST_CASE("winrm-sim replay mode serves the files in order, verbatim") {
  Fixture fx;
  std::vector<std::string> bodies;
  for (int i = 0; i < 3; ++i) {
    std::string body =
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
        "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"><s:Body><n:PullResponse>"
        "<n:EnumerationContext>uuid:REPLAY-" +
        std::to_string(i) +
        "</n:EnumerationContext>"
        "<n:Items><Row>" +
        std::to_string(i) + "</Row></n:Items></n:PullResponse></s:Body></s:Envelope>";
    simtest::write_file(fx.dir.path() / ("p00" + std::to_string(i) + ".xml"), body);
    bodies.push_back(body);
  }
  simtest::SimProcess sim(
      fx.dir.path(),
      R"(https: {address: 127.0.0.1, port: 0, cert: "{dir}/server.pem", key: "{dir}/server.key"}
users: [{username: monitor, password: s3cret}]
replay: [p000.xml, p001.xml, p002.xml]
)",
      "replay");
  Client client(sim.port("https"), fx.ca());
  for (int round = 0; round < 2; ++round) {  // an Enumerate restarts the sequence
    auto r0 = client.post("any.sim.test", enumerate_xml("SELECT * FROM Win32_Service"));
    REQUIRE(r0);
    CHECK(r0->body == bodies[0]);
    auto r1 = client.post("any.sim.test", pull_xml("uuid:REPLAY-0"));
    REQUIRE(r1);
    CHECK(r1->body == bodies[1]);
    auto r2 = client.post("any.sim.test", pull_xml("uuid:REPLAY-1"));
    REQUIRE(r2);
    CHECK(r2->body == bodies[2]);
  }
}

TEST_CASE("winrm-sim latency: a stalled perf class answers TimedOut at OperationTimeout") {
  Fixture fx;
  // Always stalled (duration = every) with a 30 s stall: past a 1 s OperationTimeout.
  simtest::SimProcess sim(
      fx.dir.path(),
      R"(https: {address: 127.0.0.1, port: 0, cert: "{dir}/server.pem", key: "{dir}/server.key"}
users: [{username: monitor, password: s3cret}]
latency:
  default: {median: 5ms, p99: 20ms}
  perf: {median: 5ms, p99: 20ms}
  slow: {median: 5ms, p99: 20ms}
  stall: {every: 1s, duration: 1s, delay: 30s}
)",
      "latency");
  Client client(sim.port("https"), fx.ca());
  auto short_timeout = [](std::string body) {
    const std::string from = "PT60.000S";
    body.replace(body.find(from), from.size(), "PT1.000S");
    return body;
  };
  Page perf =
      client.send("win01.sim.test",
                  short_timeout(enumerate_xml("SELECT * FROM Win32_PerfRawData_PerfOS_Memory")));
  CHECK(perf.status == 500);
  CHECK(perf.body.find("2150858793") != std::string::npos);  // w:TimedOut
  // Other classes do not stall.
  auto rows = client.query("win01.sim.test", "SELECT Caption FROM Win32_OperatingSystem");
  CHECK(rows.size() == 1);
}

}  // namespace test_sim_e2e
