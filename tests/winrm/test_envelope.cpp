// Enumerate/Pull response parsing against every fixture in tests/fixtures/enum, and the
// request builders against tests/fixtures/requests.
#include <doctest/doctest.h>
#include <tinyxml2.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_envelope_fixtures.h"
#include "winrm/envelope.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_envelope {

using winrm::EnumerationPage;
using winrm::Property;
using winrm::Row;
using winrm_test::read_fixture;

namespace {

EnumerationPage parse_ok(const std::string& relative) {
  auto page = winrm::parse_enumeration_response(read_fixture(relative));
  if (!page) FAIL(relative << ": " << page.error().describe());
  return *page;
}

struct PageExpectation {
  std::string file;
  std::size_t rows;
  enum Context { kNone, kPresent } context;
  bool end_of_sequence;
  std::string class_name;  // "" for XmlFragment rows
};

// One entry per file in tests/fixtures/enum (the coverage test below enforces that).
// Row counts are those stated in tests/fixtures/SOURCES.md.
const std::vector<PageExpectation>& enum_expectations() {
  using C = PageExpectation::Context;
  static const std::vector<PageExpectation> kPages = {
      {"enum/opennms_logicaldisk_fragment_enum_first_deDE.xml", 1, C::kPresent, false, ""},
      {"enum/opennms_logicaldisk_fragment_pull_last_deDE.xml", 3, C::kNone, true, ""},
      {"enum/pypsrp_enumerate_empty_result.xml", 0, C::kNone, true, ""},
      {"enum/txw2003_os_star_single.xml", 1, C::kNone, true, "Win32_OperatingSystem"},
      {"enum/txw2003_service_star_single.xml", 104, C::kNone, true, "Win32_Service"},
      {"enum/txw2008_service_star_p000.xml", 1, C::kPresent, false, "Win32_Service"},
      {"enum/txw2008_service_star_p001.xml", 50, C::kPresent, false, "Win32_Service"},
      {"enum/txw2008_service_star_p002.xml", 52, C::kPresent, false, "Win32_Service"},
      {"enum/txw2008_service_star_p003.xml", 19, C::kNone, true, "Win32_Service"},
      {"enum/txw2012_computersystem_star_single.xml", 1, C::kNone, true, "Win32_ComputerSystem"},
      {"enum/txw2012_logicaldisk_fragment_single.xml", 1, C::kNone, true, ""},
      {"enum/txw2012_logicaldisk_star_single.xml", 1, C::kNone, true, "Win32_LogicalDisk"},
      {"enum/txw2012_nicconfig_star_p000.xml", 1, C::kPresent, false,
       "Win32_NetworkAdapterConfiguration"},
      {"enum/txw2012_nicconfig_star_p001.xml", 12, C::kNone, true,
       "Win32_NetworkAdapterConfiguration"},
      {"enum/txw2012_os_fragment_single.xml", 1, C::kNone, true, ""},
      {"enum/txw2012_os_star_single.xml", 1, C::kNone, true, "Win32_OperatingSystem"},
      {"enum/txw2012_perfdisk_star_p000.xml", 1, C::kPresent, false,
       "Win32_PerfRawData_PerfDisk_PhysicalDisk"},
      {"enum/txw2012_perfdisk_star_p001.xml", 1, C::kNone, true,
       "Win32_PerfRawData_PerfDisk_PhysicalDisk"},
      {"enum/txw2012_perfnic_fragment_p000.xml", 1, C::kPresent, false, ""},
      {"enum/txw2012_perfnic_fragment_p001.xml", 2, C::kNone, true, ""},
      {"enum/txw2012_process_star_p000.xml", 1, C::kPresent, false, "Win32_Process"},
      {"enum/txw2012_process_star_p001.xml", 32, C::kPresent, false, "Win32_Process"},
      {"enum/txw2012_process_star_p002.xml", 13, C::kNone, true, "Win32_Process"},
      {"enum/txw2012_processor_star_single.xml", 1, C::kNone, true, "Win32_Processor"},
      {"enum/txw2012_service_fragment_p000.xml", 1, C::kPresent, false, ""},
      {"enum/txw2012_service_fragment_p001.xml", 59, C::kPresent, false, ""},
      {"enum/txw2012_service_fragment_p002.xml", 61, C::kPresent, false, ""},
      {"enum/txw2012_service_fragment_p003.xml", 10, C::kNone, true, ""},
      {"enum/winrb2008r2_process_enum_first.xml", 2, C::kPresent, false, "Win32_Process"},
      {"enum/winrb2008r2_process_pull_last.xml", 1, C::kNone, true, "Win32_Process"},
  };
  return kPages;
}

std::string context_of(const std::string& relative) { return parse_ok(relative).context; }

}  // namespace

TEST_CASE("every enum fixture has an expectation") {
  std::set<std::string> expected;
  for (const auto& page : enum_expectations()) expected.insert(page.file);
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(winrm_test::fixture_path("enum"))) {
    on_disk.insert("enum/" + entry.path().filename().string());
  }
  CHECK(on_disk.size() == 30);
  CHECK(on_disk == expected);
}

TEST_CASE("enum fixtures: row counts, context and end of sequence per page") {
  for (const auto& expectation : enum_expectations()) {
    CAPTURE(expectation.file);
    EnumerationPage page = parse_ok(expectation.file);
    CHECK(page.rows.size() == expectation.rows);
    CHECK(page.end_of_sequence == expectation.end_of_sequence);
    if (expectation.context == PageExpectation::kPresent) {
      CHECK(page.context.starts_with("uuid:"));
      CHECK(page.context.size() == 41);
      CHECK_FALSE(page.done());
    } else {
      CHECK(page.context.empty());
      CHECK(page.done());
    }
    CHECK(page.relates_to.starts_with("uuid:"));
    for (const Row& row : page.rows) {
      // SELECT * also returns instances of subclasses under their own element name
      // (one Win32_TerminalService among the 2008 R2 Win32_Service pages).
      if (row.class_name() != "Win32_TerminalService") {
        CHECK(row.class_name() == expectation.class_name);
      } else {
        CHECK(expectation.class_name == "Win32_Service");
      }
      CHECK_FALSE(row.properties().empty());
    }
  }
}

TEST_CASE("multi-page sequences carry a new context on every page") {
  CHECK(context_of("enum/txw2008_service_star_p000.xml") ==
        "uuid:6854B090-BBDB-486B-B750-5BF34D000933");
  CHECK(context_of("enum/txw2008_service_star_p001.xml") ==
        "uuid:C47EADBE-5F58-4D6D-AE36-B2C977F10FA5");
  CHECK(context_of("enum/txw2008_service_star_p002.xml") ==
        "uuid:6C79B05D-4FB2-4CD2-8ECC-480429BC12BB");
  CHECK(context_of("enum/txw2008_service_star_p003.xml").empty());

  std::size_t total = 0;
  std::set<std::string> names;
  for (int i = 0; i < 4; ++i) {
    auto page = parse_ok("enum/txw2012_service_fragment_p00" + std::to_string(i) + ".xml");
    total += page.rows.size();
    for (const auto& row : page.rows) names.insert(row.string("Name").value_or(""));
  }
  CHECK(total == 131);         // 1 + 59 + 61 + 10
  CHECK(names.size() == 131);  // no duplicated or lost service across pages
  CHECK(names.count("WinRM") == 1);
}

TEST_CASE("relates_to is recorded") {
  CHECK(parse_ok("enum/txw2012_os_star_single.xml").relates_to ==
        "uuid:55F28C75-F63E-4F68-8360-A8C478003959");
  CHECK(parse_ok("enum/opennms_logicaldisk_fragment_enum_first_deDE.xml").relates_to ==
        "uuid:6C3B1D2E-0000-4000-8000-000000000001");
}

TEST_CASE("Win32_OperatingSystem SELECT * values") {
  auto page = parse_ok("enum/txw2012_os_star_single.xml");
  REQUIRE(page.rows.size() == 1);
  const Row& os = page.rows[0];
  CHECK(os.uint64("BuildNumber") == 9200u);
  CHECK(os.string("buildnumber") == "9200");  // case-insensitive names
  const Property* csd = os.find("CSDVersion");
  REQUIRE(csd != nullptr);
  CHECK(csd->is_null);
  CHECK(csd->values.empty());
  CHECK_FALSE(os.string("CSDVersion").has_value());
  const Property* description = os.find("Description");
  REQUIRE(description != nullptr);
  CHECK_FALSE(description->is_null);
  CHECK(os.string("Description") == "");
  CHECK(os.string("BootDevice") == "\\Device\\HarddiskVolume1");
  CHECK(os.uint64("MaxProcessMemorySize") == 8589934464ull);
  CHECK(os.uint64("MaxNumberOfProcesses") == 4294967295ull);
  CHECK(os.boolean("Debug") == false);
  CHECK(os.boolean("Primary") == true);
  const Property* install = os.find("InstallDate");
  REQUIRE(install != nullptr);
  CHECK(install->type == Property::Type::kDatetime);
  CHECK(install->values == std::vector<std::string>{"2013-03-09T02:57:32Z"});
  CHECK(os.unix_time("InstallDate") == doctest::Approx(1362797852.0));
  CHECK(os.unix_time("LastBootUpTime").value() == doctest::Approx(1366043323.488171));
  const Property* mui = os.find("MUILanguages");
  REQUIRE(mui != nullptr);
  CHECK(mui->values == std::vector<std::string>{"en-US"});
  CHECK(os.find("NoSuchProperty") == nullptr);
  CHECK(os.properties().size() == 64);
}

TEST_CASE("Server 2003 Win32_OperatingSystem") {
  auto page = parse_ok("enum/txw2003_os_star_single.xml");
  REQUIRE(page.rows.size() == 1);
  CHECK(page.rows[0].uint64("BuildNumber") == 3790u);
  CHECK(page.rows[0].string("CSDVersion") == "Service Pack 2");
}

TEST_CASE("SELECT * and the all-properties projection give the same values") {
  auto compare = [](const std::string& star_file, const std::string& fragment_file,
                    const std::set<std::string>& volatile_properties) {
    CAPTURE(star_file);
    auto star = parse_ok(star_file);
    auto fragment = parse_ok(fragment_file);
    REQUIRE(star.rows.size() == 1);
    REQUIRE(fragment.rows.size() == 1);
    const Row& a = star.rows[0];
    const Row& b = fragment.rows[0];
    CHECK_FALSE(a.class_name().empty());
    CHECK(b.class_name().empty());
    REQUIRE(a.properties().size() == b.properties().size());
    std::set<std::string> differing;
    for (const auto& property : a.properties()) {
      CAPTURE(property.name);
      const Property* other = b.find(property.name);
      REQUIRE(other != nullptr);
      CHECK(other->type == property.type);
      CHECK(other->is_null == property.is_null);
      if (other->values != property.values) differing.insert(std::string(property.name));
    }
    // Only counters that moved between the two captures may differ.
    CHECK(differing == volatile_properties);
  };
  compare("enum/txw2012_os_star_single.xml", "enum/txw2012_os_fragment_single.xml",
          {"FreePhysicalMemory", "FreeVirtualMemory", "LocalDateTime"});
  compare("enum/txw2012_logicaldisk_star_single.xml",
          "enum/txw2012_logicaldisk_fragment_single.xml", {});
}

TEST_CASE("network adapter configuration: nil, arrays, datetimes") {
  auto page = parse_ok("enum/txw2012_nicconfig_star_p001.xml");
  bool saw_array = false;
  std::size_t nil_count = 0;
  std::size_t rows_without_order = 0;
  for (const Row& row : page.rows) {
    for (const auto& property : row.properties()) nil_count += property.is_null ? 1 : 0;
    if (auto obtained = row.unix_time("DHCPLeaseObtained")) {
      CHECK(*obtained == doctest::Approx(1366055938.0));  // 2013-04-15T19:58:58Z
      CHECK(row.find("DHCPLeaseObtained")->type == Property::Type::kDatetime);
    }
    const Property* order = row.find("DNSDomainSuffixSearchOrder");
    // Windows 2012 omits NULL array properties entirely (no xsi:nil element).
    if (order == nullptr) {
      ++rows_without_order;
      CHECK_FALSE(row.string("DNSDomainSuffixSearchOrder").has_value());
      continue;
    }
    if (!order->is_null && order->values.size() > 1) {
      saw_array = true;
      CHECK(order->values == std::vector<std::string>{"us-east-1.ec2-utilities.amazonaws.com",
                                                      "ec2.internal", "compute-1.internal",
                                                      "solutions.loc"});
      CHECK(row.string("DNSDomainSuffixSearchOrder") == "us-east-1.ec2-utilities.amazonaws.com");
    }
  }
  CHECK(saw_array);
  CHECK(rows_without_order == 11);
  CHECK(nil_count == 488);  // one per xsi:nil="true" in the file
}

TEST_CASE("perf counters above 2^53 stay exact") {
  auto page = parse_ok("enum/txw2012_perfdisk_star_p000.xml");
  REQUIRE(page.rows.size() == 1);
  const Row& disk = page.rows[0];
  CHECK(disk.uint64("Timestamp_Sys100NS") == 130105313120680421ull);
  CHECK(disk.int64("Timestamp_Sys100NS") == 130105313120680421ll);
  CHECK(disk.uint64("Frequency_PerfTime") == 62500000u);
  CHECK(disk.uint64("Timestamp_PerfTime") == 899303904758ull);
  // A double cannot represent it; the string/uint64 path must not go through one.
  CHECK(static_cast<std::uint64_t>(static_cast<double>(130105313120680421ull)) !=
        130105313120680421ull);

  auto nic = parse_ok("enum/txw2012_perfnic_fragment_p001.xml");
  REQUIRE(nic.rows.size() == 2);
  CHECK(nic.rows[0].uint64("Timestamp_Sys100NS") == 130105313085420000ull);
}

TEST_CASE("process datetimes with -07:00 offset and fractional seconds") {
  auto page = parse_ok("enum/winrb2008r2_process_pull_last.xml");
  REQUIRE(page.rows.size() == 1);
  const Row& process = page.rows[0];
  const Property* created = process.find("CreationDate");
  REQUIRE(created != nullptr);
  CHECK(created->type == Property::Type::kDatetime);
  // Pretty-printed upstream: the whitespace around <cim:Datetime> is not part of the value.
  CHECK(created->values == std::vector<std::string>{"2013-04-29T13:09:06.102138-07:00"});
  // 2013-04-29T20:09:06.102138Z
  CHECK(process.unix_time("CreationDate").value() == doctest::Approx(1367266146.102138));
  CHECK(process.uint64("ProcessId") == 1100u);
  CHECK(process.string("CommandLine") == "\\??\\C:\\Windows\\system32\\conhost.exe");
  CHECK(process.find("ExecutionState")->is_null);
}

TEST_CASE("de-DE projections keep nil sizes and exact values") {
  auto first = parse_ok("enum/opennms_logicaldisk_fragment_enum_first_deDE.xml");
  REQUIRE(first.rows.size() == 1);
  CHECK(first.rows[0].string("Name") == "A:");
  CHECK(first.rows[0].find("FreeSpace")->is_null);
  CHECK_FALSE(first.rows[0].uint64("Size").has_value());

  auto last = parse_ok("enum/opennms_logicaldisk_fragment_pull_last_deDE.xml");
  REQUIRE(last.rows.size() == 3);
  CHECK(last.rows[0].string("Name") == "C:");
  CHECK(last.rows[0].uint64("FreeSpace") == 44395380736ull);
  CHECK(last.rows[0].uint64("Size") == 64412164096ull);
  CHECK(last.rows[1].string("Name") == "D:");
  CHECK(last.rows[2].string("Name") == "E:");
  CHECK(last.rows[2].find("Size")->is_null);
}

TEST_CASE("non-ASCII text stays UTF-8") {
  auto page = parse_ok("enum/txw2008_service_star_p001.xml");
  bool found = false;
  for (const Row& row : page.rows) {
    auto description = row.string("Description").value_or("");
    if (description.find("Web Services \xE2\x80\x93 Discovery") != std::string::npos) found = true;
  }
  CHECK(found);

  const std::string german =
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
      "xmlns:w='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd' xml:lang='de-DE'><s:Body>"
      "<n:PullResponse><n:Items><w:XmlFragment><VolumeName>Datentr\xC3\xA4ger &#252;ber"
      "</VolumeName></w:XmlFragment></n:Items><n:EndOfSequence/></n:PullResponse>"
      "</s:Body></s:Envelope>";
  auto parsed = winrm::parse_enumeration_response(german);
  REQUIRE(parsed.has_value());
  REQUIRE(parsed->rows.size() == 1);
  CHECK(parsed->rows[0].string("VolumeName") ==
        "Datentr\xC3\xA4ger \xC3\xBC"
        "ber");
}

TEST_CASE("Win32_ComputerSystem Roles array and processor values") {
  auto cs = parse_ok("enum/txw2012_computersystem_star_single.xml");
  REQUIRE(cs.rows.size() == 1);
  const Property* roles = cs.rows[0].find("Roles");
  REQUIRE(roles != nullptr);
  CHECK(roles->values ==
        std::vector<std::string>{"LM_Workstation", "LM_Server", "NT", "Server_NT"});
  auto cpu = parse_ok("enum/txw2012_processor_star_single.xml");
  REQUIRE(cpu.rows.size() == 1);
  CHECK(cpu.rows[0].uint64("NumberOfCores").has_value());
}

TEST_CASE("empty result: no rows, end of sequence, envelope-level p prefix ignored") {
  auto page = parse_ok("enum/pypsrp_enumerate_empty_result.xml");
  CHECK(page.rows.empty());
  CHECK(page.end_of_sequence);
  CHECK(page.context.empty());
  CHECK(page.done());
  CHECK(page.relates_to == "uuid:F345A186-4226-4A71-BFA1-5661C113F6F1");
}

TEST_CASE("prefixes are resolved by scope, not by spelling") {
  // Unusual prefixes for every namespace, `p` bound on the envelope to the MS wsman.xsd
  // URI and rebound per item; a default namespace on one instance.
  const std::string body =
      "<env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:en='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
      "xmlns:ws='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd' "
      "xmlns:p='http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd'>"
      "<env:Header><p:ActivityId>x</p:ActivityId></env:Header><env:Body>"
      "<en:EnumerateResponse><en:EnumerationContext> uuid:ABC </en:EnumerationContext>"
      "<ws:Items>"
      "<p:Win32_Foo xmlns:p='http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Foo'"
      " xmlns:i='http://www.w3.org/2001/XMLSchema-instance'>"
      "<p:A>1</p:A><p:B i:nil='true'/><p:C><x:Datetime xmlns:x='urn:any'>2020-01-01T00:00:00Z"
      "</x:Datetime></p:C><p:D><cim:Interval xmlns:cim='http://schemas.dmtf.org/wbem/wscim/1/"
      "common'>PT1.5S</cim:Interval></p:D></p:Win32_Foo>"
      "<Win32_Bar xmlns='http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Bar'>"
      "<E>2</E><E>3</E></Win32_Bar>"
      // xsi:nil with an unbound-to-xsi prefix is NOT nil.
      "<p:Win32_Baz xmlns:p='urn:baz' xmlns:xsi='urn:not-xsi'><p:F xsi:nil='true'/></p:Win32_Baz>"
      "</ws:Items><ws:EndOfSequence/></en:EnumerateResponse></env:Body></env:Envelope>";
  auto page = winrm::parse_enumeration_response(body);
  REQUIRE(page.has_value());
  CHECK(page->context == "uuid:ABC");
  CHECK(page->end_of_sequence);
  REQUIRE(page->rows.size() == 3);
  const Row& foo = page->rows[0];
  CHECK(foo.class_name() == "Win32_Foo");
  CHECK(foo.uint64("A") == 1u);
  CHECK(foo.find("B")->is_null);
  CHECK(foo.find("C")->type == Property::Type::kDatetime);
  CHECK(foo.unix_time("C") == doctest::Approx(1577836800.0));
  CHECK(foo.find("D")->type == Property::Type::kInterval);
  CHECK(foo.seconds("D") == doctest::Approx(1.5));
  CHECK(page->rows[1].class_name() == "Win32_Bar");
  CHECK(page->rows[1].find("E")->values == std::vector<std::string>{"2", "3"});
  CHECK_FALSE(page->rows[2].find("F")->is_null);

  // Items/EndOfSequence are looked up by namespace: a look-alike in another namespace is ignored.
  const std::string foreign =
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' xmlns:w='urn:other'>"
      "<s:Body><n:PullResponse><w:Items><X><Y>1</Y></X></w:Items><w:EndOfSequence/>"
      "</n:PullResponse></s:Body></s:Envelope>";
  auto ignored = winrm::parse_enumeration_response(foreign);
  REQUIRE(ignored.has_value());
  CHECK(ignored->rows.empty());
  CHECK_FALSE(ignored->end_of_sequence);
}

TEST_CASE("embedded objects and references become kObject text") {
  const std::string body =
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
      "xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing' "
      "xmlns:w='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd'><s:Body><n:PullResponse>"
      "<n:Items><p:Assoc xmlns:p='urn:assoc'><p:Ref><a:Address>http://anon</a:Address>"
      "<a:ReferenceParameters><w:ResourceURI>http://uri/Msvm_X</w:ResourceURI><w:SelectorSet>"
      "<w:Selector Name='Name'>ABC</w:Selector></w:SelectorSet></a:ReferenceParameters>"
      "</p:Ref></p:Assoc></n:Items></n:PullResponse></s:Body></s:Envelope>";
  auto page = winrm::parse_enumeration_response(body);
  REQUIRE(page.has_value());
  REQUIRE(page->rows.size() == 1);
  const Property* ref = page->rows[0].find("Ref");
  REQUIRE(ref != nullptr);
  CHECK(ref->type == Property::Type::kObject);
  CHECK(ref->values == std::vector<std::string>{"http://anon http://uri/Msvm_X ABC"});
}

TEST_CASE("malformed and unexpected bodies are parse errors") {
  auto expect_parse_error = [](const std::string& body) {
    CAPTURE(body.substr(0, 80));
    auto page = winrm::parse_enumeration_response(body);
    REQUIRE_FALSE(page.has_value());
    CHECK(page.error().kind == winrm::ErrorKind::kParse);
    CHECK_FALSE(page.error().fault.has_value());
    CHECK_FALSE(page.error().message.empty());
  };
  expect_parse_error("");
  expect_parse_error("not xml at all");
  std::string truncated = read_fixture("enum/txw2012_os_star_single.xml");
  truncated.resize(truncated.size() / 2);
  expect_parse_error(truncated);
  expect_parse_error("<html><body>IIS error</body></html>");
  // SOAP 1.1 envelope namespace is not what WinRM speaks.
  expect_parse_error(
      "<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body/></s:Envelope>");
  // Neither a fault nor an enumeration response.
  expect_parse_error(
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:x='http://schemas.xmlsoap.org/ws/2004/09/transfer'><s:Body><x:GetResponse/>"
      "</s:Body></s:Envelope>");
  expect_parse_error(
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body></s:Body>"
      "</s:Envelope>");
  expect_parse_error("<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'/>");
  // Pathological nesting is refused by the parser's depth limit, not by a stack overflow.
  std::string deep =
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration'><s:Body><n:PullResponse>"
      "<n:Items><X>";
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  expect_parse_error(deep);
}

// --- Request builders -------------------------------------------------------------------

namespace {

// A minimal, independent namespace resolver for comparing documents structurally.
struct Structure {
  std::string ns;
  std::string local;
  std::vector<std::pair<std::string, std::string>> attributes;  // "{ns}local" -> value
  std::string text;                                             // trimmed direct text
  std::vector<Structure> children;
};

std::string trimmed(std::string text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

Structure to_structure(const tinyxml2::XMLElement* element,
                       std::map<std::string, std::string> namespaces) {
  for (auto* attr = element->FirstAttribute(); attr; attr = attr->Next()) {
    std::string name = attr->Name();
    if (name == "xmlns") namespaces[""] = attr->Value();
    if (name.starts_with("xmlns:")) namespaces[name.substr(6)] = attr->Value();
  }
  namespaces["xml"] = "http://www.w3.org/XML/1998/namespace";
  auto resolve = [&](const std::string& qname, bool is_attribute) {
    auto colon = qname.find(':');
    std::string prefix = colon == std::string::npos ? "" : qname.substr(0, colon);
    std::string local = colon == std::string::npos ? qname : qname.substr(colon + 1);
    if (prefix.empty() && is_attribute) return std::pair<std::string, std::string>{"", local};
    REQUIRE(namespaces.count(prefix) == 1);
    return std::pair<std::string, std::string>{namespaces[prefix], local};
  };
  Structure out;
  std::tie(out.ns, out.local) = resolve(element->Name(), false);
  for (auto* attr = element->FirstAttribute(); attr; attr = attr->Next()) {
    std::string name = attr->Name();
    if (name == "xmlns" || name.starts_with("xmlns:")) continue;
    auto [ns, local] = resolve(name, true);
    out.attributes.emplace_back("{" + ns + "}" + local, attr->Value());
  }
  for (auto* node = element->FirstChild(); node; node = node->NextSibling()) {
    if (auto* text = node->ToText()) out.text += text->Value();
  }
  out.text = trimmed(out.text);
  for (auto* child = element->FirstChildElement(); child; child = child->NextSiblingElement()) {
    out.children.push_back(to_structure(child, namespaces));
  }
  return out;
}

Structure parse_structure(const std::string& xml) {
  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(xml.c_str(), xml.size()) == tinyxml2::XML_SUCCESS);
  return to_structure(doc.RootElement(), {});
}

void check_same_structure(const Structure& expected, const Structure& actual,
                          const std::string& path = "") {
  std::string here = path + "/" + expected.local;
  CAPTURE(here);
  CHECK(actual.ns == expected.ns);
  CHECK(actual.local == expected.local);
  CHECK(actual.attributes == expected.attributes);
  if (expected.local == "MessageID") {
    static const std::regex kUuid(
        "uuid:[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-"
        "[0-9A-F]{12}");
    CHECK(std::regex_match(actual.text, kUuid));
  } else {
    CHECK(actual.text == expected.text);
  }
  REQUIRE(actual.children.size() == expected.children.size());
  for (std::size_t i = 0; i < expected.children.size(); ++i) {
    check_same_structure(expected.children[i], actual.children[i], here);
  }
}

winrm::RequestOptions template_options() {
  // Values chosen to equal the templates' literal text, placeholders included.
  winrm::RequestOptions options;
  options.endpoint_url = "https://{host}:5986/wsman";
  options.max_envelope_size = 153600;
  options.operation_timeout = std::chrono::milliseconds(60000);
  options.session_id = "uuid:{SESSION-UUID}";
  return options;
}

}  // namespace

TEST_CASE("build_enumerate matches the hand-written WQL template") {
  auto expected = parse_structure(read_fixture("requests/HANDWRITTEN_wql_enumerate_request.xml"));
  auto built = winrm::build_enumerate(
      template_options(),
      "SELECT Name, FreeSpace, Size FROM Win32_LogicalDisk WHERE DriveType = 3");
  CHECK(built.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
  check_same_structure(expected, parse_structure(built));
}

TEST_CASE("build_pull matches the hand-written template") {
  auto expected = parse_structure(read_fixture("requests/HANDWRITTEN_wql_pull_request.xml"));
  auto built = winrm::build_pull(template_options(), "uuid:{CONTEXT-FROM-LAST-RESPONSE}");
  check_same_structure(expected, parse_structure(built));
}

TEST_CASE("build_release matches the hand-written template") {
  auto expected = parse_structure(read_fixture("requests/HANDWRITTEN_wql_release_request.xml"));
  auto built = winrm::build_release(template_options(), "uuid:{CONTEXT-FROM-LAST-RESPONSE}");
  check_same_structure(expected, parse_structure(built));
}

TEST_CASE("request option details") {
  winrm::RequestOptions options;
  options.endpoint_url = "https://host.example:5986/wsman";
  options.operation_timeout = std::chrono::milliseconds(20000);
  options.message_id = "uuid:11111111-2222-4333-8444-555555555555";
  options.locale = "de-DE";
  auto built = winrm::build_enumerate(options, "SELECT * FROM Win32_Service");
  CHECK(built.find("<w:OperationTimeout>PT20.000S</w:OperationTimeout>") != std::string::npos);
  CHECK(built.find("<a:MessageID>uuid:11111111-2222-4333-8444-555555555555</a:MessageID>") !=
        std::string::npos);
  CHECK(built.find("<w:Locale xml:lang=\"de-DE\" s:mustUnderstand=\"false\"/>") !=
        std::string::npos);
  CHECK(built.find("<w:MaxEnvelopeSize s:mustUnderstand=\"true\">512000</w:MaxEnvelopeSize>") !=
        std::string::npos);
  CHECK(built.find("<w:MaxElements>32000</w:MaxElements>") != std::string::npos);
  CHECK(built.find("SessionId") == std::string::npos);  // omitted when not set
  options.operation_timeout = std::chrono::milliseconds(1500);
  CHECK(winrm::build_pull(options, "uuid:X").find("PT1.500S") != std::string::npos);
}

TEST_CASE("WQL with XML special characters round-trips") {
  const std::string wql =
      "SELECT * FROM Win32_Service WHERE Name = 'a&b' AND ProcessId < 5 AND PathName > \"C:\\\\x\"";
  winrm::RequestOptions options;
  options.endpoint_url = "https://h:5986/wsman?a=1&b=<2>";
  auto built = winrm::build_enumerate(options, wql);
  CHECK(built.find("a&amp;b") != std::string::npos);
  CHECK(built.find("&lt; 5") != std::string::npos);
  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(built.c_str(), built.size()) == tinyxml2::XML_SUCCESS);
  auto* filter = doc.RootElement()
                     ->FirstChildElement("s:Body")
                     ->FirstChildElement("n:Enumerate")
                     ->FirstChildElement("w:Filter");
  REQUIRE(filter != nullptr);
  CHECK(std::string(filter->GetText()) == wql);
  CHECK(std::string(filter->Attribute("Dialect")) == winrm::kWqlDialect);
  auto* to = doc.RootElement()->FirstChildElement("s:Header")->FirstChildElement("a:To");
  CHECK(std::string(to->GetText()) == options.endpoint_url);
  // Control characters that XML 1.0 cannot carry are dropped, keeping the document valid.
  auto with_control = winrm::build_enumerate(options, std::string("SELECT\x01 * FROM X"));
  tinyxml2::XMLDocument doc2;
  CHECK(doc2.Parse(with_control.c_str(), with_control.size()) == tinyxml2::XML_SUCCESS);
}

TEST_CASE("resource_uri_for") {
  const std::string base = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";
  CHECK(winrm::resource_uri_for("root/cimv2") == base + "root/cimv2/*");
  CHECK(winrm::resource_uri_for("root\\cimv2") == base + "root/cimv2/*");
  CHECK(winrm::resource_uri_for("/root/wmi/") == base + "root/wmi/*");
  CHECK(winrm::resource_uri_for("root\\virtualization\\v2") == base + "root/virtualization/v2/*");
  CHECK(winrm::resource_uri_for("ROOT/CIMV2") == base + "ROOT/CIMV2/*");
  winrm::RequestOptions options;
  options.wmi_namespace = "root\\wmi";
  CHECK(winrm::build_pull(options, "uuid:1").find(base + "root/wmi/*") != std::string::npos);
}

TEST_CASE("new_message_id is an upper-case UUID v4 and unique") {
  static const std::regex kUuid(
      "uuid:[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = winrm::new_message_id();
    CHECK(std::regex_match(id, kUuid));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
  // Each thread has its own engine, seeded apart: threads do not repeat each other's IDs.
  std::vector<std::string> other_thread;
  std::thread([&] {
    for (int i = 0; i < 1000; ++i) other_thread.push_back(winrm::new_message_id());
  }).join();
  for (const auto& id : other_thread) CHECK(std::regex_match(id, kUuid));
  seen.insert(other_thread.begin(), other_thread.end());
  CHECK(seen.size() == 2000);
  // Generated per request when not given.
  winrm::RequestOptions options;
  CHECK(winrm::build_release(options, "uuid:1") != winrm::build_release(options, "uuid:1"));
}

}  // namespace test_envelope
