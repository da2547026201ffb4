// `winrm_exporter query` against winrm-sim replaying captured multi-page enumerations:
// the printed JSON lines are exactly the rows parsed straight from the fixture files.
#include <doctest/doctest.h>

#include "e2e_util.h"
#include "json_lines.h"
#include "winrm/envelope.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_query_replay {

using namespace e2e;

namespace {

struct Sequence {
  std::string name;
  std::vector<std::string> files;
  std::string wql;
};

std::vector<Sequence> sequences() {
  auto numbered = [](const std::string& stem, int pages) {
    std::vector<std::string> files;
    for (int i = 0; i < pages; ++i) files.push_back(stem + "_p00" + std::to_string(i) + ".xml");
    return files;
  };
  return {
      {"txw2008 service *", numbered("txw2008_service_star", 4), "SELECT * FROM Win32_Service"},
      {"txw2012 service fragment", numbered("txw2012_service_fragment", 4),
       "SELECT Name, State FROM Win32_Service"},
      {"txw2012 process *", numbered("txw2012_process_star", 3), "SELECT * FROM Win32_Process"},
      {"winrb2008r2 process",
       {"winrb2008r2_process_enum_first.xml", "winrb2008r2_process_pull_last.xml"},
       "SELECT * FROM Win32_Process"},
      {"opennms de-DE logical disk",
       {"opennms_logicaldisk_fragment_enum_first_deDE.xml",
        "opennms_logicaldisk_fragment_pull_last_deDE.xml"},
       "SELECT Name, FreeSpace FROM Win32_LogicalDisk"},
      {"txw2012 perfdisk *", numbered("txw2012_perfdisk_star", 2),
       "SELECT * FROM Win32_PerfRawData_PerfDisk_LogicalDisk"},
      {"txw2012 perfnic fragment", numbered("txw2012_perfnic_fragment", 2),
       "SELECT Name FROM Win32_PerfRawData_Tcpip_NetworkInterface"},
      {"txw2012 nicconfig *", numbered("txw2012_nicconfig_star", 2),
       "SELECT * FROM Win32_NetworkAdapterConfiguration"},
  };
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("query returns exactly the rows of every multi-page fixture sequence") {
  const fs::path fixtures = fs::path(WINRM_TEST_FIXTURES) / "enum";
  TempDir dir;
  write_file(dir / "monitor.pass", "replay-pass\n");
  for (const auto& sequence : sequences()) {
    CAPTURE(sequence.name);
    std::vector<std::string> expected;
    std::string replay = "replay: [";
    for (std::size_t i = 0; i < sequence.files.size(); ++i) {
      fs::path file = fixtures / sequence.files[i];
      REQUIRE(fs::exists(file));
      replay += (i ? ", " : "") + file.string();
      auto page = winrm::parse_enumeration_response(read_file(file));
      REQUIRE_MESSAGE(page, file.string());
      for (const auto& row : page->rows) expected.push_back(exporter::row_to_json(row));
    }
    replay += "]\n";
    REQUIRE(expected.size() >= 2);  // multi-page sequences carry rows

    Sim sim(dir, "users:\n  - {username: monitor, password: replay-pass}\n" + replay, "replay");
    Process query(
        {kExporterBinary, "query", "--host=win2012.sim.test", "--connect-address=127.0.0.1",
         "--port=" + std::to_string(sim.https_port), "--ca-file=" + (dir / "ca.pem").string(),
         "--user=monitor", "--password-file=" + (dir / "monitor.pass").string(),
         // Replayed bodies keep the captured RelatesTo.
         "--no-verify-relates-to", sequence.wql},
        dir / "query.out", dir / "query.err");
    REQUIRE(wait_until([&] { return !query.running(); }, 20s));
    int status = query.stop();
    CHECK_MESSAGE(status == 0, read_file(dir / "query.err"));
    auto actual = lines_of(read_file(dir / "query.out"));
    CHECK(actual.size() == expected.size());
    CHECK(actual == expected);
    sim.process->stop();
  }
}

TEST_CASE("query errors go to stderr with kind and WSManFault code") {
  TempDir dir;
  write_file(dir / "monitor.pass", "pw\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: pw}\n");
  auto run = [&](const std::string& wql, const std::string& password_file) {
    Process query(
        {kExporterBinary, "query", "--host=win01.sim.test", "--connect-address=127.0.0.1",
         "--port=" + std::to_string(sim.https_port), "--ca-file=" + (dir / "ca.pem").string(),
         "--user=monitor", "--password-file=" + password_file, wql},
        dir / "q.out", dir / "q.err");
    REQUIRE(wait_until([&] { return !query.running(); }, 20s));
    return query.stop();
  };
  CHECK(run("SELECT Name FROM Win32_NoSuchClass", (dir / "monitor.pass").string()) == 1);
  std::string err = read_file(dir / "q.err");
  CHECK(err.find("kind=wsman_fault") != std::string::npos);
  CHECK(err.find("wsman_code=2150858778") != std::string::npos);
  CHECK(read_file(dir / "q.out").empty());

  write_file(dir / "wrong.pass", "wrong\n");
  CHECK(run("SELECT Name FROM Win32_Service", (dir / "wrong.pass").string()) == 1);
  CHECK(read_file(dir / "q.err").find("kind=auth") != std::string::npos);

  CHECK(run("SELECT Name, State FROM Win32_Service", (dir / "monitor.pass").string()) == 0);
  auto rows = lines_of(read_file(dir / "q.out"));
  REQUIRE(rows.size() > 3);
  CHECK(rows[0].rfind("{\"Name\":\"", 0) == 0);
  CHECK(rows[0].find("\"State\":\"") != std::string::npos);
}

}  // namespace test_query_replay
