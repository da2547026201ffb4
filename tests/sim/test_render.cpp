#include <doctest/doctest.h>
#include <tinyxml2.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "inventory.h"
#include "render.h"
#include "wql.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_render {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* kXsi = "http://www.w3.org/2001/XMLSchema-instance";

}  // namespace

TEST_CASE(
    "SELECT * rendering: per-instance namespace, xsi:type, alphabetical, nil, datetime, arrays") {
  sim::Inventory inv({});
  const sim::ClassDef* os = sim::find_class("win32_operatingsystem");
  REQUIRE(os != nullptr);
  CHECK(os->name == "Win32_OperatingSystem");
  auto instances = inv.instances("win01.sim.test", *os, sim::now_unix_seconds());
  REQUIRE(instances.size() == 1);
  std::string items;
  sim::render::append_instance(items, *os, instances[0]);
  const std::string body =
      sim::render::enumerate_response("uuid:REQ", "", items, true, true, "en-US");

  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(body.c_str()) == tinyxml2::XML_SUCCESS);
  auto* env = doc.RootElement();
  CHECK(std::string(env->Attribute("xmlns:p")) ==
        "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd");
  auto* relates = env->FirstChildElement("s:Header")->FirstChildElement("a:RelatesTo");
  REQUIRE(relates);
  CHECK(std::string(relates->GetText()) == "uuid:REQ");
  auto* resp = env->FirstChildElement("s:Body")->FirstChildElement("n:EnumerateResponse");
  REQUIRE(resp);
  auto* ctx = resp->FirstChildElement("n:EnumerationContext");
  REQUIRE(ctx);
  CHECK(ctx->GetText() == nullptr);  // empty: everything fit
  CHECK(resp->FirstChildElement("w:EndOfSequence"));
  auto* inst = resp->FirstChildElement("w:Items")->FirstChildElement();
  REQUIRE(inst);
  CHECK(std::string(inst->Name()) == "p:Win32_OperatingSystem");
  CHECK(std::string(inst->Attribute("xmlns:p")) ==
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_OperatingSystem");
  CHECK(std::string(inst->Attribute("xmlns:xsi")) == kXsi);
  CHECK(std::string(inst->Attribute("xsi:type")) == "p:Win32_OperatingSystem_Type");
  std::string prev;
  int count = 0, nils = 0;
  bool saw_datetime = false;
  for (auto* p = inst->FirstChildElement(); p; p = p->NextSiblingElement()) {
    std::string name = p->Name();
    REQUIRE(name.starts_with("p:"));
    CHECK_MESSAGE(lower(prev) <= lower(name), prev << " then " << name);
    prev = name;
    ++count;
    if (p->Attribute("xsi:nil")) {
      CHECK(std::string(p->Attribute("xsi:nil")) == "true");
      CHECK(p->FirstChild() == nullptr);
      ++nils;
    }
    if (name == "p:LastBootUpTime") {
      auto* dt = p->FirstChildElement("cim:Datetime");
      REQUIRE(dt);
      CHECK(std::string(dt->GetText()).ends_with("Z"));
      saw_datetime = true;
    }
  }
  CHECK(count == static_cast<int>(os->properties.size()));
  CHECK(nils > 0);  // e.g. CSDVersion
  CHECK(saw_datetime);
  CHECK(body.find("<p:CSDVersion xsi:nil=\"true\"/>") != std::string::npos);
  CHECK(body.find("<p:Description></p:Description>") !=
        std::string::npos);  // empty string, not NULL

  // Arrays repeat the element.
  const sim::ClassDef* cs = sim::find_class("Win32_ComputerSystem");
  auto csi = inv.instances("win01.sim.test", *cs, sim::now_unix_seconds());
  std::string cs_items;
  sim::render::append_instance(cs_items, *cs, csi[0]);
  CHECK(cs_items.find("<p:Roles>LM_Workstation</p:Roles><p:Roles>LM_Server</p:Roles>") !=
        std::string::npos);
}

TEST_CASE("projection rendering: w:XmlFragment with unqualified children in alphabetical order") {
  sim::Inventory inv({});
  const sim::ClassDef* os = sim::find_class("Win32_OperatingSystem");
  auto instances = inv.instances("win01.sim.test", *os, sim::now_unix_seconds());
  // SELECT Version, CSDVersion, LastBootUpTime, Caption -> rendered sorted.
  std::vector<int> props = {os->find("Version"), os->find("csdversion"), os->find("LastBootUpTime"),
                            os->find("Caption")};
  std::sort(props.begin(), props.end());
  std::string items;
  sim::render::append_fragment(items, *os, instances[0], props);
  const std::string body = sim::render::pull_response("uuid:REQ", "", items, true, "en-US");
  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(body.c_str()) == tinyxml2::XML_SUCCESS);
  auto* pull = doc.RootElement()->FirstChildElement("s:Body")->FirstChildElement("n:PullResponse");
  REQUIRE(pull);
  CHECK(pull->FirstChildElement("n:EnumerationContext") == nullptr);  // last page: no context
  CHECK(pull->FirstChildElement("n:EndOfSequence"));
  auto* frag = pull->FirstChildElement("n:Items")->FirstChildElement("w:XmlFragment");
  REQUIRE(frag);
  CHECK(std::string(frag->Attribute("xmlns:xsi")) == kXsi);
  std::vector<std::string> names;
  for (auto* p = frag->FirstChildElement(); p; p = p->NextSiblingElement())
    names.push_back(p->Name());
  CHECK(names == std::vector<std::string>{"Caption", "CSDVersion", "LastBootUpTime", "Version"});
  auto* csd = frag->FirstChildElement("CSDVersion");
  REQUIRE(csd->Attribute("xsi:nil"));
  auto* boot = frag->FirstChildElement("LastBootUpTime")->FirstChildElement();
  REQUIRE(boot);
  CHECK(std::string(boot->Name()) == "Datetime");  // loses the cim: prefix in fragments
  CHECK(body.find("Win32_OperatingSystem") == std::string::npos);  // class name appears nowhere
}

TEST_CASE("fault rendering follows the Windows shape") {
  const std::string body = sim::render::fault(sim::render::FaultKind::kInvalidClass, "uuid:REQ",
                                              "win01", "SELECT * FROM Nope", "en-US");
  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(body.c_str()) == tinyxml2::XML_SUCCESS);
  auto* fault = doc.RootElement()->FirstChildElement("s:Body")->FirstChildElement("s:Fault");
  REQUIRE(fault);
  CHECK(std::string(fault->FirstChildElement("s:Code")->FirstChildElement("s:Value")->GetText()) ==
        "s:Sender");
  CHECK(std::string(fault->FirstChildElement("s:Code")
                        ->FirstChildElement("s:Subcode")
                        ->FirstChildElement("s:Value")
                        ->GetText()) == "n:CannotProcessFilter");
  auto* wsf = fault->FirstChildElement("s:Detail")->FirstChildElement("f:WSManFault");
  REQUIRE(wsf);
  CHECK(std::string(wsf->Attribute("Code")) == "2150858778");
  CHECK(std::string(wsf->Attribute("Machine")) == "win01");
  CHECK(body.find(
            "<f:Message>The specified class does not exist in the given namespace. </f:Message>") !=
        std::string::npos);
  CHECK(body.find("<p:ParameterInfo>SELECT * FROM Nope</p:ParameterInfo>") != std::string::npos);

  for (auto [name, code] : std::initializer_list<std::pair<const char*, const char*>>{
           {"access_denied", "5"},
           {"invalid_resource_uri", "2150858752"},
           {"quota_exceeded", "2150859174"},
           {"timed_out", "2150858793"},
           {"context_expired", "2150858779"},
           {"max_envelope", "2150858824"},
           {"invalid_selectors", "2150858843"},
           {"invalid_class", "2150858778"}}) {
    auto kind = sim::render::fault_from_name(name);
    REQUIRE(kind);
    const std::string f = sim::render::fault(*kind, "uuid:R", "m", "", "en-US");
    tinyxml2::XMLDocument d;
    REQUIRE_MESSAGE(d.Parse(f.c_str()) == tinyxml2::XML_SUCCESS, name);
    CHECK_MESSAGE(f.find(std::string("Code=\"") + code + "\"") != std::string::npos, name);
  }
}

TEST_CASE("inventory is deterministic per host and every class generates") {
  sim::Inventory a({}), b({});
  const double now = sim::now_unix_seconds();
  for (const auto& name : sim::class_names()) {
    const sim::ClassDef* cls = sim::find_class(name);
    auto ia = a.instances("host-a.example", *cls, now);
    auto ib = b.instances("HOST-A.example", *cls, now);
    CHECK_MESSAGE(!ia.empty(), name);
    REQUIRE(ia.size() == ib.size());
    for (std::size_t i = 0; i < ia.size(); ++i) {
      for (std::size_t k = 0; k < cls->properties.size(); ++k) {
        CHECK_MESSAGE(ia[i].values[k].items == ib[i].values[k].items,
                      name << "." << cls->properties[k]);
      }
    }
  }
  CHECK(sim::host_seed("a") != sim::host_seed("b"));
  CHECK(sim::host_seed("Win01") == sim::host_seed("win01"));
}

// LocalDateTime (the clock collector's host clock) is whole milliseconds, truncated. The
// times are microsecond clock reads (now_unix_seconds) plus a host's offset; the text must be
// exactly floor(microseconds / 1000) ms, never a millisecond less (the double-fraction
// version lost one about half the time, which the clock offset test saw as 2 ms).
TEST_CASE("millisecond datetimes: microsecond clock reads plus offsets, truncated exactly") {
  // "YYYY-MM-DDTHH:MM:SS[.mmm]Z" -> Unix milliseconds.
  auto parse_ms = [](const std::string& s) -> std::int64_t {
    std::tm tm{};
    REQUIRE(strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    std::int64_t ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
    REQUIRE(s.back() == 'Z');
    if (s.size() == 24) {
      REQUIRE(s[19] == '.');
      ms += std::stoi(s.substr(20, 3));
    } else {
      REQUIRE(s.size() == 20);  // whole seconds print no fraction
    }
    return ms;
  };
  CHECK(sim::xs_datetime(1764640000.0, false) == "2025-12-02T01:46:40Z");
  CHECK(sim::xs_datetime(1764640000.999, false) == "2025-12-02T01:46:40.999Z");
  CHECK(sim::xs_datetime(1764640000.0009, false) == "2025-12-02T01:46:40Z");
  CHECK(sim::xs_datetime(-0.0005, false) == "1969-12-31T23:59:59.999Z");
  std::uint64_t state = 12;
  int wrong = 0;
  std::string first_wrong;
  for (int i = 0; i < 100000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const std::int64_t read_us = 1764640000000000 + static_cast<std::int64_t>(state >> 30);
    for (const std::int64_t offset_us : {0ll, 30000000ll, -45500000ll, 1234567ll}) {
      const double t = static_cast<double>(read_us) / 1e6 + static_cast<double>(offset_us) / 1e6;
      const std::string text = sim::xs_datetime(t, false);
      const std::int64_t want = (read_us + offset_us) / 1000;
      if (parse_ms(text) != want && wrong++ == 0) {
        first_wrong = text + " for " + std::to_string(read_us + offset_us) + " us";
      }
    }
  }
  CHECK_MESSAGE(wrong == 0, first_wrong);

  // The path the clock collector reads: Win32_OperatingSystem.LocalDateTime of hosts whose
  // clocks run 30 s ahead and 45.5 s behind (before the fix, 23 of 45 such rows were 1 ms low).
  sim::HostConfig ahead, behind;
  ahead.name = "ahead.sim.test";
  ahead.clock_offset_s = 30;
  behind.name = "behind.sim.test";
  behind.clock_offset_s = -45.5;
  sim::Inventory inv({ahead, behind});
  const sim::ClassDef* os = sim::find_class("Win32_OperatingSystem");
  REQUIRE(os != nullptr);
  const auto local = static_cast<std::size_t>(os->find("LocalDateTime"));
  for (int i = 0; i < 2000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const std::int64_t read_us = 1764640000000000 + static_cast<std::int64_t>(state >> 30);
    for (const auto& [host, offset_us] :
         {std::pair{"ahead.sim.test", 30000000ll}, std::pair{"behind.sim.test", -45500000ll}}) {
      const auto rows = inv.instances(host, *os, static_cast<double>(read_us) / 1e6);
      REQUIRE(rows.size() == 1);
      const std::string text = rows[0].values[local].text();
      if (parse_ms(text) != (read_us + offset_us) / 1000 && wrong++ == 0) {
        first_wrong = std::string(host) + ": " + text + " for " + std::to_string(read_us) + " us";
      }
    }
  }
  CHECK_MESSAGE(wrong == 0, first_wrong);
}

// sim/data/classes.yml: `like:` copies a class's list (less `without:`), `perf: true` adds
// the raw perf classes' common properties.
TEST_CASE("class data: like, without and perf resolve to Windows' lists") {
  const sim::ClassDef* file = sim::find_class("CIM_DataFile");
  const sim::ClassDef* dir = sim::find_class("CIM_Directory");
  REQUIRE(file != nullptr);
  REQUIRE(dir != nullptr);
  std::vector<std::string> expected;
  for (const auto& p : file->properties) {
    if (p != "Manufacturer" && p != "Version") expected.push_back(p);
  }
  CHECK(expected.size() == file->properties.size() - 2);
  CHECK(dir->properties == expected);
  const sim::ClassDef* v4 = sim::find_class("Win32_PerfRawData_Tcpip_TCPv4");
  const sim::ClassDef* v6 = sim::find_class("Win32_PerfRawData_Tcpip_TCPv6");
  REQUIRE(v4 != nullptr);
  REQUIRE(v6 != nullptr);
  CHECK(v6->properties == v4->properties);
  CHECK(v4->find("Timestamp_Sys100NS") >= 0);
  CHECK(v4->find("ConnectionsEstablished") >= 0);
  const sim::ClassDef* logical = sim::find_class("Win32_PerfRawData_PerfDisk_LogicalDisk");
  const sim::ClassDef* physical = sim::find_class("Win32_PerfRawData_PerfDisk_PhysicalDisk");
  REQUIRE(logical != nullptr);
  REQUIRE(physical != nullptr);
  CHECK(logical->properties.size() == physical->properties.size() + 3);
  CHECK(logical->find("PercentFreeSpace_Base") >= 0);
  CHECK(physical->find("PercentFreeSpace") < 0);
  // Served alphabetically, case-insensitively, as Windows does.
  CHECK(std::is_sorted(
      file->properties.begin(), file->properties.end(),
      [](const std::string& a, const std::string& b) { return lower(a) < lower(b); }));
}

TEST_CASE("classes outside root/cimv2 resolve only in their own namespace") {
  const sim::ClassDef* task = sim::find_class("root/microsoft/windows/taskscheduler",
                                              "msft_scheduledtask");
  REQUIRE(task != nullptr);
  CHECK(task->wmi_namespace == "root/Microsoft/Windows/TaskScheduler");
  CHECK(sim::find_class("root/cimv2", "MSFT_ScheduledTask") == nullptr);
  CHECK(sim::find_class("root/microsoft/windows/taskscheduler", "Win32_Service") == nullptr);
  CHECK(sim::find_class("root/cimv2", "Win32_QuickFixEngineering") != nullptr);
  CHECK(sim::known_namespace("root/microsoft/windows/taskscheduler"));
  // SELECT * items carry the class's own namespace in xmlns:p.
  sim::Inventory inventory({});
  const auto instances = inventory.instances("h", *task, sim::now_unix_seconds());
  REQUIRE(!instances.empty());
  std::string item;
  sim::render::append_instance(item, *task, instances.front());
  CHECK(item.find("wmi/root/Microsoft/Windows/TaskScheduler/MSFT_ScheduledTask\"") !=
        std::string::npos);
}

namespace {

// Rows of `wql` on host "files-01.sim.test" the way the server selects them: generate, then
// keep the instances the WHERE clause accepts.
std::vector<sim::Instance> select_rows(sim::Inventory& inventory, const std::string& wql,
                                       const sim::ClassDef*& cls) {
  auto query = sim::wql::parse(wql);
  REQUIRE_MESSAGE(query.has_value(), wql << ": " << (query ? "" : query.error()));
  cls = sim::find_class("root/cimv2", query->class_name);
  REQUIRE(cls != nullptr);
  std::vector<sim::Instance> out;
  for (auto& inst : inventory.instances("files-01.sim.test", *cls, sim::now_unix_seconds())) {
    const sim::wql::Lookup lookup = [&](const std::string& name) -> const sim::Value* {
      const int i = cls->find(name);
      return i < 0 ? nullptr : &inst.values[static_cast<std::size_t>(i)];
    };
    if (!query->where || sim::wql::evaluate(*query->where, lookup)) out.push_back(std::move(inst));
  }
  return out;
}

std::string text_of(const sim::ClassDef& cls, const sim::Instance& inst, const char* property) {
  const sim::Value& v = inst.values[static_cast<std::size_t>(cls.find(property))];
  return v.is_null() ? "<null>" : v.text();
}

}  // namespace

TEST_CASE("CIM_DataFile and CIM_Directory: WQL's escaped Path selects one directory") {
  sim::Inventory inventory({});
  const sim::ClassDef* cls = nullptr;
  // '\\logs\\app\\' is the directory \logs\app\ (WQL doubles backslashes in literals); Drive
  // and Path compare case-insensitively, as in WMI (the IIS query below spells them otherwise).
  const auto app = select_rows(
      inventory,
      "SELECT Name FROM CIM_DataFile WHERE Drive = 'C:' AND Path = '\\\\logs\\\\app\\\\'", cls);
  REQUIRE(app.size() >= 4);  // app.log and 3-9 rotated days (plus error.log on some hosts)
  bool current = false;
  for (const auto& inst : app) {
    const std::string name = text_of(*cls, inst, "Name");
    CAPTURE(name);
    CHECK(name.starts_with("C:\\logs\\app\\"));
    CHECK(name.find('\\', 12) == std::string::npos);  // not the archive subdirectory's files
    CHECK(text_of(*cls, inst, "Drive") == "c:");
    CHECK(text_of(*cls, inst, "Path") == "\\logs\\app\\");
    CHECK(name == "C:" + text_of(*cls, inst, "Path") + text_of(*cls, inst, "FileName") + "." +
                      text_of(*cls, inst, "Extension"));
    CHECK(text_of(*cls, inst, "FileType") == "Text Document");
    CHECK(inst.values[static_cast<std::size_t>(cls->find("LastModified"))].kind ==
          sim::ValueKind::kDatetime);
    CHECK(text_of(*cls, inst, "CompressionMethod") == "<null>");
    current |= name == "C:\\logs\\app\\app.log";
  }
  CHECK(current);
  // Single backslashes are escapes in WQL: '\logs\app\' is not the same directory.
  CHECK(
      select_rows(inventory, "SELECT Name FROM CIM_DataFile WHERE Path = '\\logs\\\\app\\\\'", cls)
          .empty());
  const auto iis = select_rows(inventory,
                               "SELECT Name FROM CIM_DataFile WHERE Drive = 'c:' AND Path = "
                               "'\\\\INETPUB\\\\logs\\\\logfiles\\\\w3svc1\\\\' AND "
                               "Extension = 'log'",
                               cls);
  CHECK(iis.size() >= 14);
  CHECK(iis.size() <= 30);
  // A query without a Path walks the whole drive, as on Windows: System32's bulk comes back.
  const auto walk = select_rows(inventory, "SELECT Name FROM CIM_DataFile WHERE Drive = 'C:'", cls);
  CHECK(walk.size() > 2000);
  const auto dirs = select_rows(
      inventory,
      "SELECT Name FROM CIM_Directory WHERE Drive = 'C:' AND Path = '\\\\logs\\\\app\\\\'", cls);
  REQUIRE(dirs.size() == 1);
  CHECK(text_of(*cls, dirs[0], "Name") == "C:\\logs\\app\\archive");
  CHECK(text_of(*cls, dirs[0], "FileType") == "File Folder");
  CHECK(text_of(*cls, dirs[0], "FileSize") == "<null>");
  CHECK(cls->find("Version") < 0);  // only CIM_DataFile has the version resource properties
}

}  // namespace test_render
