// Golden files for every built-in collector: real Windows captures (tests/fixtures/enum)
// where one of the right class exists, responses recorded from winrm-sim for the exact
// built-in WQL (tests/fixtures/sim, see record-sim-fixtures.py) otherwise, plus hand-made
// edge-case rows. Goldens are rendered by the daemon's serializer as /probe renders one
// target, and each must pass `promtool check metrics`.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "cache.h"
#include "collectors/definition.h"
#include "collectors/poll_time.h"
#include "collectors/registry.h"
#include "pages.h"
#include "prom_text.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_golden {

using collectors_test::find_family;
using collectors_test::make_row;
using collectors_test::parse_error;

namespace {

using Rows = std::vector<winrm::Row>;

collectors::CollectorPtr builtin(const std::string& name) {
  const auto& all = collectors::builtin_collector_map();
  const auto it = all.find(name);
  REQUIRE_MESSAGE(it != all.end(), "no built-in collector " << name);
  return it->second;
}

// TYPE lines in order plus the number of sample lines.
std::pair<std::vector<std::string>, std::size_t> exposition_shape(const std::string& text) {
  std::vector<std::string> types;
  std::size_t samples = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("# TYPE ")) {
      types.push_back(line);
    } else if (!line.starts_with("#") && !line.empty()) {
      ++samples;
    }
  }
  return {types, samples};
}

// Runs the collector, compares with the golden file, checks it with promtool and
// returns the families for case-specific assertions.
collectors::Families run_case(const std::string& collector_name, const std::string& case_name,
                              const std::vector<Rows>& rows,
                              const std::set<std::string>& allowed_empty = {}) {
  const auto collector = builtin(collector_name);
  auto families = collector->transform(rows);
  REQUIRE_MESSAGE(families.has_value(), families.error());
  // Every family of the definition is exercised: a golden file missing one would
  // pass silently otherwise.
  for (const auto& family : *families) {
    if (allowed_empty.contains(family.name)) continue;
    CHECK_MESSAGE(!family.samples.empty(), family.name << " has no samples in " << case_name);
  }
  const std::string text = collectors_test::render_probe(*families);
  // The test-only renderer must agree on families and sample count: a serializer that
  // dropped or duplicated samples would otherwise be frozen into the golden.
  CHECK(exposition_shape(text) == exposition_shape(collectors_test::render(*families)));
  const std::string golden_name = collector_name + "_" + case_name;
  const std::string mismatch = collectors_test::check_golden(golden_name, text);
  CHECK_MESSAGE(mismatch.empty(), mismatch);

  const auto golden_path = std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" /
                           "golden" / (golden_name + ".prom");
  const auto actual_path = std::filesystem::path(WINRM_BINARY_DIR) / "tests" / "collectors" /
                           (golden_name + ".actual.prom");
  std::filesystem::create_directories(actual_path.parent_path());
  std::ofstream(actual_path, std::ios::binary) << text;
  for (const auto& path : {golden_path, actual_path}) {
    if (!std::filesystem::exists(path)) continue;
    const auto check = collectors_test::promtool_check(path);
    CHECK_MESSAGE(check.exit_code == 0, "promtool check metrics " << path.string() << " exit "
                                                                  << check.exit_code << ": "
                                                                  << check.output);
  }
  return std::move(*families);
}

double value_of(const collectors::Families& families, const std::string& name,
                const collectors::Labels& labels) {
  const auto* family = find_family(families, name);
  REQUIRE_MESSAGE(family != nullptr, name);
  for (const auto& sample : family->samples) {
    bool match = true;
    for (const auto& wanted : labels) {
      bool found = false;
      for (const auto& label : family->labels(sample)) found |= label == wanted;
      match &= found;
    }
    if (match) return sample.value;
  }
  FAIL("no sample of " << name << " with the requested labels");
  return 0;
}

}  // namespace

TEST_CASE("promtool is installed and rejects bad exposition") {
  const auto path = std::filesystem::path(WINRM_BINARY_DIR) / "tests" / "collectors" / "bad.prom";
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << "# TYPE windows_x_total gauge\nwindows_x_total 1\n";
  const auto check = collectors_test::promtool_check(path);
  CHECK(check.exit_code != 0);
  CHECK(check.exit_code != 127);  // 127: promtool not found by the shell
}

TEST_CASE("cpu: hand-made perf rows") {
  Rows processors = {
      make_row({{"Name", "0,0"},
                {"PercentIdleTime", "123456789012"},
                {"PercentInterruptTime", "1000000"},
                {"PercentDPCTime", "2500000"},
                {"PercentPrivilegedTime", "98765432100"},
                {"PercentUserTime", "45678901234"},
                {"PercentC1Time", "100000000000"},
                {"PercentC2Time", "0"},
                {"PercentC3Time", "0"},
                {"InterruptsPersec", "987654321"},
                {"DPCsQueuedPersec", "12345"},
                {"ClockInterruptsPersec", "1200000"},
                {"IdleBreakEventsPersec", "1300000"},
                {"ParkingStatus", "0"},
                {"ProcessorFrequency", "2400"},
                {"PercentProcessorPerformance", "500000000"},
                {"PercentProcessorPerformance_Base", "5000000"},
                {"PercentProcessorUtility", "480000000"},
                {"PercentProcessorUtility_Base", "4294967295"},
                {"PercentPrivilegedUtility", "45000000"}}),
      make_row({{"Name", "0,1"},
                {"PercentIdleTime", "223456789012"},
                {"PercentInterruptTime", "2000000"},
                {"PercentDPCTime", "500000"},
                {"PercentPrivilegedTime", "8765432100"},
                {"PercentUserTime", "5678901234"},
                {"PercentC1Time", "200000000000"},
                {"PercentC2Time", "30000000"},
                {"PercentC3Time", "40000000"},
                {"InterruptsPersec", "87654321"},
                {"DPCsQueuedPersec", "2345"},
                {"ClockInterruptsPersec", "1200001"},
                {"IdleBreakEventsPersec", "1300001"},
                {"ParkingStatus", "1"},
                {"ProcessorFrequency", "2400"},
                {"PercentProcessorPerformance", "600000000"},
                {"PercentProcessorPerformance_Base", "6000000"},
                {"PercentProcessorUtility", "380000000"},
                {"PercentProcessorUtility_Base", "4294967295"},
                {"PercentPrivilegedUtility", "35000000"}}),
      // Skipped by the definition's skip rule even if the WHERE clause was ignored.
      make_row({{"Name", "_Total"},
                {"PercentIdleTime", "1"},
                {"PercentInterruptTime", "1"},
                {"PercentDPCTime", "1"},
                {"PercentPrivilegedTime", "1"},
                {"PercentUserTime", "1"},
                {"PercentC1Time", "1"},
                {"PercentC2Time", "1"},
                {"PercentC3Time", "1"},
                {"InterruptsPersec", "1"},
                {"DPCsQueuedPersec", "1"},
                {"ClockInterruptsPersec", "1"},
                {"IdleBreakEventsPersec", "1"},
                {"ParkingStatus", "1"},
                {"ProcessorFrequency", "2400"},
                {"PercentProcessorPerformance", "1"},
                {"PercentProcessorPerformance_Base", "1"},
                {"PercentProcessorUtility", "1"},
                {"PercentProcessorUtility_Base", "4294967295"},
                {"PercentPrivilegedUtility", "1"}}),
  };
  Rows computer = {make_row({{"NumberOfLogicalProcessors", "2"}})};
  const auto families = run_case("cpu", "handmade", {processors, computer});
  CHECK(value_of(families, "windows_cpu_time_total", {{"core", "0,0"}, {"mode", "idle"}}) ==
        doctest::Approx(12345.6789012));
  CHECK(value_of(families, "windows_cpu_time_total", {{"core", "0,1"}, {"mode", "user"}}) ==
        doctest::Approx(567.8901234));
  // Raw 32-bit bases are exported as they are (no scaling, no wrap correction).
  CHECK(value_of(families, "windows_cpu_processor_rtc_total", {{"core", "0,1"}}) == 4294967295.0);
  CHECK(value_of(families, "windows_cpu_parking_status", {{"core", "0,1"}}) == 1);
  CHECK(find_family(families, "windows_cpu_time_total")->samples.size() == 10);  // no _Total
  CHECK(value_of(families, "windows_cpu_logical_processor", {}) == 2);
}

TEST_CASE("memory: hand-made perf row plus captured ComputerSystem and OperatingSystem") {
  Rows perf = {make_row({{"AvailableBytes", "2147483648"},
                         {"CacheBytes", "104857600"},
                         {"CacheBytesPeak", "209715200"},
                         {"CacheFaultsPersec", "5000000"},
                         {"CommitLimit", "8589934592"},
                         {"CommittedBytes", "4294967296"},
                         {"DemandZeroFaultsPersec", "60000000"},
                         {"FreeAndZeroPageListBytes", "1073741824"},
                         {"FreeSystemPageTableEntries", "16777216"},
                         {"ModifiedPageListBytes", "52428800"},
                         {"PageFaultsPersec", "123456789"},
                         {"PageReadsPersec", "40000"},
                         {"PagesInputPersec", "90000"},
                         {"PagesOutputPersec", "1000"},
                         {"PagesPersec", "91000"},
                         {"PageWritesPersec", "100"},
                         {"PoolNonpagedAllocs", "300000"},
                         {"PoolNonpagedBytes", "99614720"},
                         {"PoolPagedAllocs", "400000"},
                         {"PoolPagedBytes", "209715200"},
                         {"PoolPagedResidentBytes", "188743680"},
                         {"StandbyCacheCoreBytes", "0"},
                         {"StandbyCacheNormalPriorityBytes", "536870912"},
                         {"StandbyCacheReserveBytes", "268435456"},
                         {"SystemCacheResidentBytes", "20971520"},
                         {"SystemCodeResidentBytes", "0"},
                         {"SystemCodeTotalBytes", "0"},
                         {"SystemDriverResidentBytes", "10485760"},
                         {"SystemDriverTotalBytes", "15728640"},
                         {"TransitionFaultsPersec", "700000"},
                         {"TransitionPagesRePurposedPersec", "0"},
                         {"WriteCopiesPersec", "8000"}})};
  const auto computer =
      collectors_test::load_fixture_rows({"txw2012_computersystem_star_single.xml"});
  const auto os = collectors_test::load_fixture_rows({"txw2012_os_star_single.xml"});
  const auto families = run_case("memory", "handmade_txw2012", {perf, computer, os});
  // FreePhysicalMemory is KiB in Win32_OperatingSystem.
  const double free_kib = *os.at(0).number("FreePhysicalMemory");
  CHECK(value_of(families, "windows_memory_physical_free_bytes", {}) == free_kib * 1024);
  CHECK(value_of(families, "windows_memory_physical_total_bytes", {}) ==
        *computer.at(0).number("TotalPhysicalMemory"));
}

TEST_CASE("logical_disk: hand-made perf rows") {
  const auto disk = [](std::string name, std::string free_mib, std::string size_mib) {
    return make_row({{"Name", name},
                     {"PercentFreeSpace", free_mib},
                     {"PercentFreeSpace_Base", size_mib},
                     {"CurrentDiskQueueLength", "2"},
                     {"DiskReadsPersec", "123456"},
                     {"DiskWritesPersec", "654321"},
                     {"DiskReadBytesPersec", "5056102400"},
                     {"DiskWriteBytesPersec", "18446744073709551615"},
                     {"PercentDiskReadTime", "35000000000"},
                     {"PercentDiskWriteTime", "72000000000"},
                     {"PercentIdleTime", "8640000000000"},
                     {"SplitIOPerSec", "77"},
                     {"AvgDiskSecPerRead", "5000000"},
                     {"AvgDiskSecPerWrite", "12000000"},
                     {"AvgDiskSecPerTransfer", "17000000"},
                     {"Frequency_PerfTime", "10000000"},
                     {"AvgDiskReadQueueLength", "25000000"},
                     {"AvgDiskWriteQueueLength", "7"}});
  };
  Rows rows = {disk("C:", "40960", "102400"), disk("HarddiskVolume1", "100", "499"),
               disk("_Total", "41060", "102899")};
  Rows volumes = {make_row({{"DeviceID", "C:"},
                            {"DriveType", "3"},
                            {"VolumeName", ""},
                            {"FileSystem", "NTFS"},
                            {"VolumeSerialNumber", "0A1B2C3D"}}),
                  make_row({{"DeviceID", "D:"},
                            {"DriveType", "5"},
                            {"VolumeName", "SSS_X64FRE_EN-US_DV9"},
                            {"FileSystem", "UDF"},
                            {"VolumeSerialNumber", "CCB41BF2"}}),
                  make_row({{"DeviceID", "Z:"},
                            {"DriveType", "9"},
                            {"VolumeName", "odd"},
                            {"FileSystem", "NTFS"},
                            {"VolumeSerialNumber", "00000001"}})};
  const auto families = run_case("logical_disk", "handmade", {rows, volumes});
  CHECK(value_of(families, "windows_logical_disk_avg_read_requests_queued", {{"volume", "C:"}}) ==
        doctest::Approx(2.5));
  CHECK(value_of(families, "windows_logical_disk_info",
                 {{"volume", "D:"}, {"type", "cdrom"}, {"filesystem", "UDF"}}) == 1);
  // A DriveType outside the Win32 range maps to "unknown", as windows_exporter does.
  CHECK(value_of(families, "windows_logical_disk_info", {{"volume", "Z:"}, {"type", "unknown"}}) ==
        1);
  CHECK(value_of(families, "windows_logical_disk_free_bytes", {{"volume", "C:"}}) ==
        40960.0 * 1048576);
  CHECK(value_of(families, "windows_logical_disk_size_bytes", {{"volume", "C:"}}) ==
        102400.0 * 1048576);
  CHECK(value_of(families, "windows_logical_disk_idle_seconds_total", {{"volume", "C:"}}) ==
        doctest::Approx(864000));
  CHECK(value_of(families, "windows_logical_disk_read_latency_seconds_total", {{"volume", "C:"}}) ==
        doctest::Approx(0.5));
  CHECK(value_of(families, "windows_logical_disk_write_bytes_total", {{"volume", "C:"}}) ==
        18446744073709551615.0);
  CHECK(find_family(families, "windows_logical_disk_free_bytes")->samples.size() == 2);
}

TEST_CASE("net: captured Win32_PerfRawData_Tcpip_NetworkInterface (Server 2012)") {
  const auto rows = collectors_test::load_fixture_rows(
      {"txw2012_perfnic_fragment_p000.xml", "txw2012_perfnic_fragment_p001.xml"});
  REQUIRE(rows.size() == 3);
  // The Win32_NetworkAdapterConfiguration capture is SELECT * of every adapter: keep the
  // IP-enabled ones, as the collector's WHERE does. It has no Win32_NetworkAdapter rows:
  // those families come from the winrm-sim case below.
  Rows configurations;
  for (auto& row : collectors_test::load_fixture_rows(
           {"txw2012_nicconfig_star_p000.xml", "txw2012_nicconfig_star_p001.xml"})) {
    if (row.string("IPEnabled") == "true") configurations.push_back(std::move(row));
  }
  REQUIRE(configurations.size() == 1);
  const auto families = run_case("net", "txw2012", {rows, {}, configurations},
                                 {"windows_net_nic_info", "windows_net_nic_operation_status"});
  CHECK(value_of(families, "windows_net_nic_address_info",
                 {{"nic", "Citrix_PV_Ethernet_Adapter__0"},
                  {"address", "10.30.40.193"},
                  {"family", "ipv4"}}) == 1);
  // windows_exporter's NIC rule: [^a-zA-Z0-9] -> '_'.
  CHECK(value_of(families, "windows_net_current_bandwidth_bytes",
                 {{"nic", "Local_Area_Connection__11"}}) == 100000.0 / 8);
  CHECK(find_family(families, "windows_net_bytes_received_total")->samples.size() == 3);
}

TEST_CASE("os: captured Win32_OperatingSystem and Win32_ComputerSystem (Server 2012)") {
  const auto os = collectors_test::load_fixture_rows({"txw2012_os_star_single.xml"});
  const auto computer =
      collectors_test::load_fixture_rows({"txw2012_computersystem_star_single.xml"});
  const auto families = run_case("os", "txw2012", {os, computer});
  const auto* info = find_family(families, "windows_os_info");
  REQUIRE(info->samples.size() == 1);
  const auto pairs = info->labels(info->samples[0]);
  std::map<std::string, std::string> labels(pairs.begin(), pairs.end());
  CHECK(labels["version"] == *os.at(0).string("Version"));
  CHECK(labels["version"] ==
        labels["major_version"] + "." + labels["minor_version"] + "." + labels["build_number"]);
  CHECK_FALSE(labels["product"].starts_with("Microsoft "));
  CHECK(value_of(families, "windows_os_time", {}) == *os.at(0).unix_time("LocalDateTime"));
}

TEST_CASE("os: projected (XmlFragment) Win32_OperatingSystem gives the same info") {
  const auto star = collectors_test::load_fixture_rows({"txw2012_os_star_single.xml"});
  const auto fragment = collectors_test::load_fixture_rows({"txw2012_os_fragment_single.xml"});
  const auto computer =
      collectors_test::load_fixture_rows({"txw2012_computersystem_star_single.xml"});
  const auto collector = builtin("os");
  const auto from_star = collector->transform({star, computer});
  const auto from_fragment = collector->transform({fragment, computer});
  REQUIRE(from_star.has_value());
  REQUIRE(from_fragment.has_value());
  // The two captures were taken a moment apart: the clock and the memory/process gauges
  // moved, the identity did not.
  const auto without_time = [](collectors::Families families) {
    std::erase_if(families, [](const auto& family) {
      return family.name == "windows_os_time" || family.name.ends_with("_bytes") ||
             family.name == "windows_os_processes";
    });
    return collectors_test::render(families);
  };
  CHECK(without_time(*from_star) == without_time(*from_fragment));
  CHECK(find_family(*from_fragment, "windows_os_time")->samples.size() == 1);
}

TEST_CASE("service: captured Win32_Service Enumerate+Pull sequences") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"txw2012_fragment",
       {"txw2012_service_fragment_p000.xml", "txw2012_service_fragment_p001.xml",
        "txw2012_service_fragment_p002.xml", "txw2012_service_fragment_p003.xml"}},
      {"txw2008_star",
       {"txw2008_service_star_p000.xml", "txw2008_service_star_p001.xml",
        "txw2008_service_star_p002.xml", "txw2008_service_star_p003.xml"}},
  };
  for (const auto& [case_name, files] : cases) {
    CAPTURE(case_name);
    const auto rows = collectors_test::load_fixture_rows(files);
    REQUIRE(rows.size() > 100);
    const auto families = run_case("service", case_name, {rows});
    // One-hot: exactly one state and one start mode per service.
    for (const auto& [family_name, width] : std::vector<std::pair<std::string, std::size_t>>{
             {"windows_service_state", 7}, {"windows_service_start_mode", 5}}) {
      const auto* family = find_family(families, family_name);
      REQUIRE(family != nullptr);
      CHECK(family->samples.size() == rows.size() * width);
      std::map<std::string, double> ones;
      for (const auto& sample : family->samples)
        ones[family->labels(sample).at(0).second] += sample.value;
      CHECK(ones.size() == rows.size());
      for (const auto& [service, sum] : ones) CHECK_MESSAGE(sum == 1, service);
    }
    CHECK(find_family(families, "windows_service_info")->samples.size() == rows.size());
  }
}

TEST_CASE("system: hand-made perf row plus captured OperatingSystem") {
  Rows perf = {make_row({{"ContextSwitchesPersec", "4294967296123"},
                         {"ExceptionDispatchesPersec", "4567"},
                         {"ProcessorQueueLength", "3"},
                         {"SystemCallsPersec", "987654321987"},
                         {"SystemUpTime", "133475328000000000"},
                         {"Frequency_Object", "10000000"},
                         {"Threads", "1234"},
                         {"Processes", "87"}})};
  const auto os = collectors_test::load_fixture_rows({"txw2012_os_star_single.xml"});
  const auto families = run_case("system", "handmade", {perf, os});
  // 133475328000000000 is 2023-12-20T08:00:00Z as a FILETIME.
  CHECK(value_of(families, "windows_system_boot_time_timestamp", {}) == 1703059200.0);
  CHECK(value_of(families, "windows_system_context_switches_total", {}) == 4294967296123.0);
}

namespace {

// Rows of every query of `collector_name` from tests/fixtures/sim, after checking that
// the recording was made with the collector's current namespace and WQL.
std::vector<Rows> sim_rows(const std::string& collector_name) {
  const auto collector = builtin(collector_name);
  const auto manifest = collectors_test::load_sim_manifest();
  std::vector<Rows> rows;
  for (std::size_t i = 0; i < collector->queries().size(); ++i) {
    const auto& query = collector->queries()[i];
    const std::string prefix = collector_name + "_" + std::to_string(i);
    const auto it = std::find_if(manifest.begin(), manifest.end(),
                                 [&](const auto& recording) { return recording.prefix == prefix; });
    REQUIRE_MESSAGE(it != manifest.end(), prefix << " is not recorded in fixtures/sim/queries.tsv");
    CHECK_MESSAGE(
        it->wql == query.wql,
        prefix << ": WQL changed since recording; run tests/collectors/record-sim-fixtures.py");
    CHECK(it->wmi_namespace == query.wmi_namespace);
    REQUIRE(it->pages >= 1);
    const auto files = collectors_test::sim_page_files(*it);
    const auto dir = std::filesystem::path(WINRM_TEST_FIXTURES) / "sim";
    auto next = *it;
    ++next.pages;  // a page past the recorded count means stale files
    CHECK_FALSE(std::filesystem::exists(dir / collectors_test::sim_page_files(next).back()));
    rows.push_back(collectors_test::load_fixture_rows(files, "sim"));
    CHECK_MESSAGE(!rows.back().empty(), prefix << " recorded no instances");
  }
  return rows;
}

std::map<std::string, double> by_label(const collectors::Families& families,
                                       const std::string& name, const std::string& label) {
  const auto* family = find_family(families, name);
  REQUIRE_MESSAGE(family != nullptr, name);
  std::map<std::string, double> values;
  for (const auto& sample : family->samples) {
    for (const auto& [key, value] : family->labels(sample)) {
      if (key == label) values[value] = sample.value;
    }
  }
  return values;
}

}  // namespace

TEST_CASE("cpu: responses recorded from winrm-sim") {
  const auto families = run_case("cpu", "sim", sim_rows("cpu"));
  const auto idle = by_label(families, "windows_cpu_time_total", "core");
  REQUIRE(idle.size() >= 2);
  for (const auto& [core, seconds] : idle) {
    CAPTURE(core);
    CHECK(core.find("_Total") == std::string::npos);  // neither "_Total" nor "0,_Total"
    CHECK(core.find(',') != std::string::npos);       // Processor Information: "socket,core"
  }
  // The simulated host is consistent: one perf instance per logical processor.
  CHECK(value_of(families, "windows_cpu_logical_processor", {}) == idle.size());
  CHECK(find_family(families, "windows_cpu_time_total")->samples.size() == 5 * idle.size());
  CHECK(value_of(families, "windows_cpu_time_total", {{"core", "0,0"}, {"mode", "idle"}}) > 0);
  CHECK(value_of(families, "windows_cpu_core_frequency_mhz", {{"core", "0,0"}}) >= 1000);
}

TEST_CASE("cpu_info: responses recorded from winrm-sim") {
  const auto families = run_case("cpu_info", "sim", sim_rows("cpu_info"));
  const auto cores = by_label(families, "windows_cpu_info_core", "device_id");
  REQUIRE(!cores.empty());
  CHECK(cores.contains("CPU0"));
  double logical = 0;
  for (const auto& [socket, count] :
       by_label(families, "windows_cpu_info_logical_processor", "device_id")) {
    logical += count;
  }
  // Sockets add up to the host's logical processors (cpu collector, same host).
  const auto cpu = builtin("cpu")->transform(sim_rows("cpu"));
  REQUIRE(cpu.has_value());
  CHECK(logical == value_of(*cpu, "windows_cpu_logical_processor", {}));
}

TEST_CASE("net: responses recorded from winrm-sim") {
  const auto rows = sim_rows("net");
  const auto families = run_case("net", "sim", rows);
  const auto traffic = by_label(families, "windows_net_bytes_received_total", "nic");
  const auto info = by_label(families, "windows_net_nic_info", "nic");
  REQUIRE(!info.empty());
  // The adapter series join the perf series on `nic`; WAN miniports (no NetConnectionID)
  // are filtered by the WHERE clause.
  for (const auto& [nic, one] : info) CHECK_MESSAGE(traffic.contains(nic), nic);
  CHECK(info.size() == rows.at(1).size());
  const auto* status = find_family(families, "windows_net_nic_operation_status");
  REQUIRE(status != nullptr);
  CHECK(status->samples.size() == 7 * info.size());
  // The sim's adapters have one private IPv4 and one link-local IPv6 address each: one
  // address series per adapter, on the same `nic` as the other series.
  const auto addresses = by_label(families, "windows_net_nic_address_info", "nic");
  CHECK(addresses.size() == info.size());
  for (const auto& [nic, one] : addresses) CHECK_MESSAGE(info.contains(nic), nic);
  const auto* address_info = find_family(families, "windows_net_nic_address_info");
  for (const auto& sample : address_info->samples) {
    for (const auto& [key, value] : address_info->labels(sample)) {
      if (key == "family") CHECK(value == "ipv4");
      if (key == "address") CHECK(value.starts_with("10."));
    }
  }
  double up = 0;
  for (const auto& sample : status->samples) {
    for (const auto& [key, value] : status->labels(sample)) {
      if (key == "status" && value == "up") up += sample.value;
    }
  }
  CHECK(up >= 1);
}

TEST_CASE("tcp, udp, cache: responses recorded from winrm-sim") {
  {
    const auto families = run_case("tcp", "sim", sim_rows("tcp"));
    const auto sent = by_label(families, "windows_tcp_segments_sent_total", "af");
    CHECK(sent.size() == 2);
    CHECK(sent.at("ipv4") > sent.at("ipv6"));
  }
  {
    const auto families = run_case("udp", "sim", sim_rows("udp"));
    CHECK(by_label(families, "windows_udp_datagram_received_total", "af").size() == 2);
  }
  {
    const auto rows = sim_rows("cache");
    const auto families = run_case("cache", "sim", rows);
    REQUIRE(rows.at(0).size() == 1);
    CHECK(value_of(families, "windows_cache_copy_read_hits_total", {}) <=
          value_of(families, "windows_cache_copy_reads_total", {}));
  }
}

TEST_CASE("logical_disk: responses recorded from winrm-sim") {
  const auto families = run_case("logical_disk", "sim", sim_rows("logical_disk"));
  const auto free = by_label(families, "windows_logical_disk_free_bytes", "volume");
  const auto size = by_label(families, "windows_logical_disk_size_bytes", "volume");
  REQUIRE(free.size() >= 2);
  CHECK(free.contains("C:"));
  CHECK_FALSE(free.contains("_Total"));
  for (const auto& [volume, bytes] : free) {
    CAPTURE(volume);
    CHECK(bytes > 0);
    CHECK(bytes <= size.at(volume));
  }
}

TEST_CASE("memory: responses recorded from winrm-sim") {
  const auto families = run_case("memory", "sim", sim_rows("memory"));
  const double total = value_of(families, "windows_memory_physical_total_bytes", {});
  CHECK(total >= 4.0 * 1024 * 1024 * 1024);
  CHECK(value_of(families, "windows_memory_physical_free_bytes", {}) <= total);
  CHECK(value_of(families, "windows_memory_available_bytes", {}) <= total);
}

TEST_CASE("system: responses recorded from winrm-sim") {
  const auto families = run_case("system", "sim", sim_rows("system"));
  const double boot = value_of(families, "windows_system_boot_time_timestamp", {});
  CHECK(boot > 1577836800.0);  // after 2020-01-01
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(boot < now);  // the recording was made after the simulated boot
  CHECK(value_of(families, "windows_system_threads", {}) >
        value_of(families, "windows_system_processes", {}));
  CHECK(value_of(families, "windows_system_processes", {}) > 0);
}

TEST_CASE("a golden file is the collector part of a real /probe body") {
  auto families = builtin("cpu")->transform(sim_rows("cpu"));
  REQUIRE(families.has_value());
  const std::string golden = collectors_test::render_probe(*families);

  auto info = std::make_shared<exporter::TargetInfo>();
  info->name = "golden-01";
  info->collectors = {"cpu"};
  const auto now = std::chrono::steady_clock::now();
  auto snapshot = std::make_shared<exporter::CollectorSnapshot>();
  // As the cache holds it: /metrics text with the target label, re-labelled for /probe.
  snapshot->families = std::make_shared<const exporter::RenderedFamilies>(
      exporter::render_families(exporter::Cache::metrics_prefix(*info), *families));
  snapshot->success = true;
  snapshot->last_success_unix = 1700000000;
  snapshot->last_success_steady = now;
  snapshot->duration_seconds = 0.25;
  exporter::Cache::TargetView view{info, {exporter::Cache::CollectorView{"cpu", snapshot, {}}}};

  const std::string body = exporter::render_probe_page(view, now);
  CHECK(body.ends_with(golden));  // self series first, then the cached families
  CHECK(body.find("target=\"") == std::string::npos);
  CHECK(body.find("windows_cpu_time_total{core=\"0,0\",mode=\"idle\"}") != std::string::npos);
  const auto path = std::filesystem::path(WINRM_BINARY_DIR) / "tests" / "collectors" /
                    "probe_cpu_sim.actual.prom";
  std::ofstream(path, std::ios::binary) << body;
  const auto check = collectors_test::promtool_check(path);
  CHECK_MESSAGE(check.exit_code == 0, check.output);
}

TEST_CASE("every built-in collector has a golden from captured or recorded responses") {
  std::set<std::string> golden_names;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" / "golden")) {
    golden_names.insert(entry.path().stem().string());
  }
  for (const auto& [name, collector] : collectors::builtin_collector_map()) {
    bool found = false;
    for (const auto& golden : golden_names) {
      if (!golden.starts_with(name + "_")) continue;
      const std::string source = golden.substr(name.size() + 1);
      // txw*: real Windows captures (fixtures/enum); sim: winrm-sim recordings.
      found |= source.starts_with("txw") || source == "sim";
    }
    CHECK_MESSAGE(found, name << " has no golden from captured or recorded responses");
  }
}

TEST_CASE("every built-in family is covered by a golden file") {
  std::set<std::string> golden_text;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" / "golden")) {
    golden_text.insert(collectors_test::read_file(entry.path()));
  }
  for (const auto& [name, collector] : collectors::builtin_collector_map()) {
    std::vector<std::vector<winrm::Row>> empty(collector->queries().size());
    const auto families = collector->transform(empty);
    REQUIRE(families.has_value());
    for (const auto& family : *families) {
      bool found = false;
      for (const auto& text : golden_text)
        found |= text.find("# TYPE " + family.name + " ") != std::string::npos;
      CHECK_MESSAGE(found, family.name << " (" << name << ") appears in no golden file");
    }
  }
}

// Optional built-ins (not in default_collector_names(); enabled per target with
// `collectors: [+physical_disk]` and so on).

TEST_CASE("physical_disk: captured Win32_PerfRawData_PerfDisk_PhysicalDisk (Server 2012)") {
  // SELECT * capture: the _Total instance is present and must be skipped.
  const auto rows = collectors_test::load_fixture_rows(
      {"txw2012_perfdisk_star_p000.xml", "txw2012_perfdisk_star_p001.xml"});
  REQUIRE(rows.size() == 2);
  REQUIRE(*rows.at(0).string("Name") == "0 C:");
  const auto families = run_case("physical_disk", "txw2012", {rows});
  const auto reads = by_label(families, "windows_physical_disk_reads_total", "disk");
  // windows_exporter keeps the disk number: "0 C:" -> "0".
  CHECK(reads == std::map<std::string, double>{{"0", 6664}});
  CHECK(value_of(families, "windows_physical_disk_requests_queued", {{"disk", "0"}}) == 4);
  CHECK(value_of(families, "windows_physical_disk_read_bytes_total", {{"disk", "0"}}) == 120209408);
  CHECK(value_of(families, "windows_physical_disk_idle_seconds_total", {{"disk", "0"}}) ==
        doctest::Approx(544.4076));
  // AvgDisksecPerRead counts Frequency_PerfTime ticks (62.5 MHz on this host), not 100 ns.
  CHECK(value_of(families, "windows_physical_disk_read_latency_seconds_total", {{"disk", "0"}}) ==
        doctest::Approx(4232087500.0 / 62500000.0));
}

TEST_CASE("physical_disk: responses recorded from winrm-sim") {
  const auto families = run_case("physical_disk", "sim", sim_rows("physical_disk"));
  const auto reads = by_label(families, "windows_physical_disk_reads_total", "disk");
  REQUIRE(reads.size() >= 2);
  CHECK_FALSE(reads.contains("_Total"));
  for (const auto& [disk, count] : reads) {
    CAPTURE(disk);
    CHECK(disk.find_first_not_of("0123456789") == std::string::npos);  // number only
    CHECK(count > 0);
  }
}

TEST_CASE("process: responses recorded from winrm-sim") {
  const auto rows = sim_rows("process");
  const auto families = run_case("process", "sim", rows);
  REQUIRE(rows.at(0).size() > 10);
  const auto* info = find_family(families, "windows_process_info");
  REQUIRE(info != nullptr);
  CHECK(info->samples.size() == rows.at(0).size());  // one per instance, none dropped
  std::set<std::string> pids;
  bool saw_duplicate_image = false;
  for (const auto& sample : info->samples) {
    const auto pairs = info->labels(sample);
    std::map<std::string, std::string> labels(pairs.begin(), pairs.end());
    CHECK(labels.size() == 3);
    CHECK(labels["process"].find('#') == std::string::npos);
    CHECK(labels["process"] != "Idle");
    CHECK(labels["process"] != "_Total");
    CHECK_FALSE(labels["creating_process_id"].empty());
    pids.insert(labels["process_id"]);
  }
  CHECK(pids.size() == info->samples.size());
  for (const auto& row : rows.at(0)) {
    saw_duplicate_image |= row.string("Name")->find('#') != std::string::npos;
  }
  CHECK(saw_duplicate_image);  // the "#N" stripping is exercised
  // Every per-process series has {process, process_id} (+ mode/pool) and one series per
  // process and mode.
  CHECK(find_family(families, "windows_process_cpu_time_total")->samples.size() ==
        2 * rows.at(0).size());
  CHECK(find_family(families, "windows_process_io_bytes_total")->samples.size() ==
        3 * rows.at(0).size());
  CHECK(find_family(families, "windows_process_pool_bytes")->samples.size() ==
        2 * rows.at(0).size());

  const auto& first = rows.at(0).at(0);
  const std::string pid = *first.string("IDProcess");
  CHECK(value_of(families, "windows_process_cpu_time_total",
                 {{"process_id", pid}, {"mode", "user"}}) ==
        doctest::Approx(*first.number("PercentUserTime") / 1e7));
  CHECK(value_of(families, "windows_process_working_set_bytes", {{"process_id", pid}}) ==
        *first.number("WorkingSet"));
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const auto& sample : find_family(families, "windows_process_start_time")->samples) {
    CHECK(sample.value > 1577836800.0);  // after 2020-01-01
    CHECK(sample.value < now);
  }
}

TEST_CASE("pagefile: responses recorded from winrm-sim") {
  const auto rows = sim_rows("pagefile");
  const auto families = run_case("pagefile", "sim", rows);
  REQUIRE(rows.at(0).size() == 1);
  const auto& row = rows.at(0).at(0);
  const std::string file = *row.string("Name");
  CHECK(file == "C:\\pagefile.sys");
  const double allocated_mib = *row.number("AllocatedBaseSize");
  const double used_mib = *row.number("CurrentUsage");
  CHECK(used_mib < allocated_mib);
  CHECK(value_of(families, "windows_pagefile_limit_bytes", {{"file", file}}) ==
        allocated_mib * 1048576);
  CHECK(value_of(families, "windows_pagefile_free_bytes", {{"file", file}}) ==
        (allocated_mib - used_mib) * 1048576);
}

TEST_CASE("optional built-ins are not in the default set") {
  const auto defaults = collectors::default_collector_names();
  for (const std::string name : {"physical_disk", "process", "pagefile", "cpu_info", "tcp", "udp",
                                 "cache", "time", "clock", "eventlog"}) {
    CAPTURE(name);
    CHECK(collectors::builtin_collector_map().contains(name));
    CHECK(std::find(defaults.begin(), defaults.end(), name) == defaults.end());
  }
}

TEST_CASE("time: responses recorded from winrm-sim") {
  const auto rows = sim_rows("time");
  const auto families = run_case("time", "sim", rows);
  const auto& os = rows.at(0).at(0);
  CHECK(value_of(families, "windows_time_current_timestamp_seconds", {}) ==
        *os.unix_time("LocalDateTime"));
  CHECK(value_of(families, "windows_time_timezone", {{"timezone", "Coordinated Universal Time"}}) ==
        1);
  // Computed Time Offset and NTP Roundtrip Delay are microseconds.
  const auto& w32time = rows.at(2).at(0);
  CHECK(value_of(families, "windows_time_computed_time_offset_seconds", {}) ==
        doctest::Approx(*w32time.number("ComputedTimeOffset") / 1e6));
  CHECK(value_of(families, "windows_time_ntp_round_trip_delay_seconds", {}) ==
        doctest::Approx(*w32time.number("NTPRoundtripDelay") / 1e6));
}

TEST_CASE("clock: recorded LocalDateTime with the poll's request/response stamps") {
  auto rows = sim_rows("clock");
  REQUIRE(rows.at(0).size() == 1);
  const double host = *rows.at(0).at(0).unix_time("LocalDateTime");
  SUBCASE("no stamps (not a live poll): no samples, no error") {
    const auto families = builtin("clock")->transform(rows);
    REQUIRE(families.has_value());
    for (const auto& family : *families) CHECK(family.samples.empty());
  }
  SUBCASE("host 30 s ahead, 400 ms round trip") {
    // The exporter's midpoint is 30 s before the host's reading.
    collectors::stamp_poll_time(rows.at(0), host - 30.2, host - 29.8);
    const auto families = run_case("clock", "sim", rows);
    CHECK(value_of(families, "windows_clock_offset_seconds", {}) == doctest::Approx(30.0));
    CHECK(value_of(families, "windows_clock_offset_uncertainty_seconds", {}) ==
          doctest::Approx(0.2));
  }
  SUBCASE("host 12.5 s behind") {
    collectors::stamp_poll_time(rows.at(0), host + 12.49, host + 12.51);
    const auto families = builtin("clock")->transform(rows);
    REQUIRE(families.has_value());
    CHECK(value_of(*families, "windows_clock_offset_seconds", {}) == doctest::Approx(-12.5));
    CHECK(value_of(*families, "windows_clock_offset_uncertainty_seconds", {}) ==
          doctest::Approx(0.01));
  }
  SUBCASE("a response stamped before its request is no measurement") {
    collectors::stamp_poll_time(rows.at(0), host + 1, host);
    const auto families = builtin("clock")->transform(rows);
    REQUIRE(families.has_value());
    for (const auto& family : *families) CHECK(family.samples.empty());
  }
}

TEST_CASE("poll-time stamps go on host-clock queries only") {
  CHECK(collectors::wants_poll_time("SELECT LocalDateTime FROM Win32_OperatingSystem"));
  CHECK(collectors::wants_poll_time("select Year from win32_utctime where Year > 0"));
  CHECK(collectors::wants_poll_time("SELECT Hour\n  FROM   Win32_LocalTime"));
  CHECK_FALSE(collectors::wants_poll_time("SELECT Name FROM Win32_Service"));
  CHECK_FALSE(collectors::wants_poll_time("SELECT Name FROM Win32_OperatingSystemX"));
  CHECK_FALSE(collectors::wants_poll_time("SELECT Win32_OperatingSystem"));
  Rows rows(2);
  collectors::stamp_poll_time(rows, 1700000000.25, 1700000000.75);
  for (const auto& row : rows) {
    CHECK(row.number(collectors::kRequestTimeProperty) == 1700000000.25);
    CHECK(row.number(collectors::kResponseTimeProperty) == 1700000000.75);
  }
}

TEST_CASE("eventlog: responses recorded from winrm-sim (a 15-minute TimeGenerated window)") {
  const auto rows = sim_rows("eventlog");
  const auto families = run_case("eventlog", "sim", rows);
  const auto* events = find_family(families, "windows_eventlog_events");
  REQUIRE(events != nullptr);
  double total = 0;
  for (const auto& sample : events->samples) {
    CHECK(sample.value >= 1);
    total += sample.value;
    for (const auto& [label, value] : events->labels(sample)) {
      if (label == "level") CHECK((value == "error" || value == "warning"));
      if (label == "log") CHECK((value == "System" || value == "Application"));
    }
  }
  // Every row is counted once; the sim writes two days of events, the window reads a few.
  CHECK(total == static_cast<double>(rows.at(0).size()));
  CHECK(total < 20);
}

TEST_CASE("count metrics, max_rows and {{now-<window>}} placeholders") {
  const char* definition = R"(
name: events_test
queries:
  - wql: SELECT Logfile, EventCode FROM Win32_NTLogEvent WHERE TimeGenerated >= '{{now-1h}}'
    max_rows: 3
    metrics:
      - {name: test_events, type: gauge, help: Events, count: true,
         labels: {log: Logfile, event_id: EventCode}}
)";
  const auto collector = collectors::parse_collector_definition_text(definition);
  REQUIRE_MESSAGE(collector.has_value(), collector.error());
  const auto row = [](const char* log, const char* code) {
    return make_row({{"Logfile", log}, {"EventCode", code}});
  };
  SUBCASE("rows with one label set add up") {
    const auto families = (*collector)
                              ->transform({{row("System", "7031"), row("System", "7031"),
                                            row("Application", "1000")}});
    REQUIRE(families.has_value());
    CHECK(value_of(*families, "test_events", {{"log", "System"}, {"event_id", "7031"}}) == 2);
    CHECK(value_of(*families, "test_events", {{"log", "Application"}, {"event_id", "1000"}}) == 1);
  }
  SUBCASE("more rows than max_rows fail the poll, naming the limit") {
    const auto families = (*collector)
                              ->transform({{row("System", "1"), row("System", "2"),
                                            row("System", "3"), row("System", "4")}});
    REQUIRE_FALSE(families.has_value());
    CHECK(families.error().find("4 rows, more than its max_rows (3)") != std::string::npos);
  }
  SUBCASE("placeholders expand to DMTF UTC instants") {
    // 2026-12-01T21:20:00Z
    const std::string wql = collectors::expand_wql_placeholders(
        "WHERE T >= '{{now-15m}}' AND T < '{{now}}' AND X = '{{other}}'", 1796160000.7);
    CHECK(wql ==
          "WHERE T >= '20261201210500.000000+000' AND T < '20261201212000.000000+000' "
          "AND X = '{{other}}'");
    CHECK(collectors::has_wql_placeholders((*collector)->queries()[0].wql));
  }
  SUBCASE("bad definitions are rejected at load") {
    for (const char* bad : {"{{now-15x}}", "{{now-}}", "{{now+5m}}", "{{now-400d}}", "{{now-5m"}) {
      CAPTURE(bad);
      const std::string text = std::string(R"(
name: bad
queries:
  - wql: SELECT A FROM B WHERE T > ')") +
                               bad + R"('
    metrics: [{name: bad_a, type: gauge, help: A, value: A}]
)";
      CHECK(parse_error(text).find("field 'wql'") != std::string::npos);
    }
    CHECK(parse_error(R"(
name: bad
queries:
  - wql: SELECT A FROM B
    metrics: [{name: bad_total, type: counter, help: A, count: true}]
)")
              .find("count metrics are gauges") != std::string::npos);
    CHECK(parse_error(R"(
name: bad
queries:
  - wql: SELECT A FROM B
    max_rows: 0
    metrics: [{name: bad_a, type: gauge, help: A, value: A}]
)")
              .find("max_rows") != std::string::npos);
  }
}

// A CIM_DataFile custom collector on hand-made rows whose LastModified carries a DMTF offset
// other than UTC (winrm-sim's hosts are all UTC). collectors/examples/files.yml runs on
// recorded winrm-sim answers in collectors_test_examples.
TEST_CASE("files: the documented CIM_DataFile custom collector") {
  const char* definition = R"(
name: files_logs
queries:
  - wql: >-
      SELECT Name, FileSize, LastModified FROM CIM_DataFile
      WHERE Drive = 'C:' AND Path = '\\logs\\app\\'
    max_rows: 1000
    metrics:
      - {name: windows_file_size_bytes, type: gauge, help: File size (CIM_DataFile.FileSize),
         value: FileSize, labels: {file: Name}}
      - {name: windows_file_mtime_timestamp_seconds, type: gauge,
         help: Last modification (CIM_DataFile.LastModified), value: LastModified,
         value_type: datetime, labels: {file: Name}}
      - {name: windows_files, type: gauge, help: Files in the directory, count: true,
         const_labels: {path: "C:\\logs\\app\\"}}
)";
  const auto collector = collectors::parse_collector_definition_text(definition);
  REQUIRE_MESSAGE(collector.has_value(), collector.error());
  CHECK((*collector)->queries()[0].wql ==
        "SELECT Name, FileSize, LastModified FROM CIM_DataFile WHERE Drive = 'C:' AND Path = "
        "'\\\\logs\\\\app\\\\'");
  Rows rows;
  for (const auto& [name, size, modified] :
       {std::tuple{"c:\\logs\\app\\a.log", "1048576", "20261201101500.000000+000"},
        std::tuple{"c:\\logs\\app\\b.log", "0", "20261130235959.500000+060"}}) {
    winrm::Row row;
    row.add("Name", name);
    row.add("FileSize", size);
    row.add("LastModified", modified, winrm::Property::Type::kDatetime);
    rows.push_back(std::move(row));
  }
  const auto families = (*collector)->transform({rows});
  REQUIRE_MESSAGE(families.has_value(), families.error());
  CHECK(value_of(*families, "windows_file_size_bytes", {{"file", "c:\\logs\\app\\a.log"}}) ==
        1048576);
  // 2026-12-01T10:15:00Z; the second file's +060 offset puts it at 22:59:59.5Z the day before.
  CHECK(value_of(*families, "windows_file_mtime_timestamp_seconds",
                 {{"file", "c:\\logs\\app\\a.log"}}) == 1796120100);
  CHECK(value_of(*families, "windows_file_mtime_timestamp_seconds",
                 {{"file", "c:\\logs\\app\\b.log"}}) == 1796079599.5);
  CHECK(value_of(*families, "windows_files", {}) == 2);
  const auto path =
      std::filesystem::path(WINRM_BINARY_DIR) / "tests" / "collectors" / "files_custom.actual.prom";
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << collectors_test::render_probe(*families);
  const auto check = collectors_test::promtool_check(path);
  CHECK_MESSAGE(check.exit_code == 0, check.output);
}

}  // namespace test_golden
