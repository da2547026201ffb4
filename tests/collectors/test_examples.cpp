// Worked custom collectors in collectors/examples/: each loads as a custom collector would
// (the config's schema, not the stricter built-in rules), runs on responses recorded from
// winrm-sim (tests/fixtures/sim, `record-sim-fixtures.py --collectors <example>`), and is
// compared with tests/collectors/golden/example_<name>_sim.prom, which promtool checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "collectors/definition.h"
#include "prom_text.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_examples {

namespace {

const std::filesystem::path kExamples =
    std::filesystem::path(WINRM_SOURCE_DIR) / "collectors" / "examples";

std::vector<std::filesystem::path> example_files() {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(kExamples)) {
    if (entry.path().extension() == ".yml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

TEST_CASE("every example collector loads, runs on recorded sim responses and matches its golden") {
  const auto files = example_files();
  REQUIRE(!files.empty());
  const auto manifest = collectors_test::load_sim_manifest();
  for (const auto& file : files) {
    CAPTURE(file.filename().string());
    auto parsed = collectors::parse_collector_definition_text(collectors_test::read_file(file));
    REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
    const auto& collector = *parsed;
    CHECK(collector->name() == file.stem().string());  // file name = collector name

    std::vector<std::vector<winrm::Row>> rows;
    for (std::size_t i = 0; i < collector->queries().size(); ++i) {
      const std::string prefix = collector->name() + "_" + std::to_string(i);
      const auto it = std::find_if(manifest.begin(), manifest.end(), [&](const auto& recording) {
        return recording.prefix == prefix;
      });
      REQUIRE_MESSAGE(it != manifest.end(),
                      prefix << " is not recorded; run record-sim-fixtures.py");
      CHECK_MESSAGE(it->wql == collector->queries()[i].wql,
                    prefix << ": WQL changed since recording");
      rows.push_back(
          collectors_test::load_fixture_rows(collectors_test::sim_page_files(*it), "sim"));
      CHECK_MESSAGE(!rows.back().empty(), prefix << " recorded no instances");
    }
    const auto families = collector->transform(rows);
    REQUIRE_MESSAGE(families.has_value(), families.error());
    for (const auto& family : *families) {
      CHECK_MESSAGE(!family.samples.empty(), family.name << " has no samples");
    }
    const std::string text = collectors_test::render_probe(*families);
    const std::string golden = "example_" + collector->name() + "_sim";
    const std::string mismatch = collectors_test::check_golden(golden, text);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
    const auto path = std::filesystem::path(WINRM_BINARY_DIR) / "tests" / "collectors" /
                      (golden + ".actual.prom");
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    const auto check = collectors_test::promtool_check(path);
    CHECK_MESSAGE(check.exit_code == 0, check.output);
  }
}

TEST_CASE("mssql example: values from the SQL Server perf classes") {
  auto parsed = collectors::parse_collector_definition_text(
      collectors_test::read_file(kExamples / "mssql.yml"));
  REQUIRE(parsed.has_value());
  const auto manifest = collectors_test::load_sim_manifest();
  std::vector<std::vector<winrm::Row>> rows;
  for (const std::string prefix : {"mssql_0", "mssql_1"}) {
    const auto it = std::find_if(manifest.begin(), manifest.end(),
                                 [&](const auto& recording) { return recording.prefix == prefix; });
    REQUIRE(it != manifest.end());
    rows.push_back(collectors_test::load_fixture_rows(collectors_test::sim_page_files(*it), "sim"));
  }
  const auto families = (*parsed)->transform(rows);
  REQUIRE(families.has_value());
  const auto* ratio =
      collectors_test::find_family(*families, "windows_mssql_bufman_buffer_cache_hit_ratio");
  REQUIRE(ratio != nullptr);
  REQUIRE(ratio->samples.size() == 1);
  // Buffercachehitratio / Buffercachehitratio_Base, a fraction.
  CHECK(ratio->samples[0].value ==
        doctest::Approx(*rows[1].at(0).number("Buffercachehitratio") /
                        *rows[1].at(0).number("Buffercachehitratio_Base")));
  CHECK(ratio->samples[0].value <= 1.0);
}

namespace {

// The example's transform over its recorded sim responses.
collectors::Families run_example(const std::string& name) {
  auto parsed = collectors::parse_collector_definition_text(
      collectors_test::read_file(kExamples / (name + ".yml")));
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  const auto manifest = collectors_test::load_sim_manifest();
  std::vector<std::vector<winrm::Row>> rows;
  for (std::size_t i = 0; i < (*parsed)->queries().size(); ++i) {
    const std::string prefix = name + "_" + std::to_string(i);
    const auto it = std::find_if(manifest.begin(), manifest.end(),
                                 [&](const auto& recording) { return recording.prefix == prefix; });
    REQUIRE(it != manifest.end());
    rows.push_back(collectors_test::load_fixture_rows(collectors_test::sim_page_files(*it), "sim"));
  }
  auto families = (*parsed)->transform(rows);
  REQUIRE_MESSAGE(families.has_value(), families.error());
  return *families;
}

std::string label_of(const collectors::MetricFamily& family, const collectors::Sample& sample,
                     const std::string& name) {
  const auto labels = family.labels(sample);
  const auto it = std::find_if(labels.begin(), labels.end(),
                               [&](const auto& label) { return label.first == name; });
  return it == labels.end() ? std::string("<absent>") : it->second;
}

}  // namespace

TEST_CASE("iis_app_pools example: one state per pool, _Total left out") {
  const auto families = run_example("iis_app_pools");
  const auto* state =
      collectors_test::find_family(families, "windows_iis_current_application_pool_state");
  REQUIRE(state != nullptr);
  std::map<std::string, double> current;  // pool -> sum of its one-hot series
  std::map<std::string, int> series;
  for (const auto& sample : state->samples) {
    const std::string pool = label_of(*state, sample, "app");
    current[pool] += sample.value;
    ++series[pool];
  }
  CHECK(current.count("_Total") == 0);
  CHECK(current.count("DefaultAppPool") == 1);
  for (const auto& [pool, sum] : current) {
    CAPTURE(pool);
    CHECK(sum == 1);           // exactly one state is current
    CHECK(series[pool] == 7);  // WAS's seven states
  }
  // Start times (PERF_ELAPSED_TIME FILETIMEs): exactly the running pools have one, and it is
  // not after WAS's own start.
  std::map<std::string, bool> running;
  for (const auto& sample : state->samples) {
    if (sample.value == 1)
      running[label_of(*state, sample, "app")] = label_of(*state, sample, "state") == "Running";
  }
  const auto* start =
      collectors_test::find_family(families, "windows_iis_current_application_pool_start_time");
  const auto* was =
      collectors_test::find_family(families, "windows_iis_total_application_pool_start_time");
  REQUIRE(start != nullptr);
  REQUIRE(was != nullptr);
  std::map<std::string, double> started, was_started;
  for (const auto& sample : start->samples) started[label_of(*start, sample, "app")] = sample.value;
  for (const auto& sample : was->samples) was_started[label_of(*was, sample, "app")] = sample.value;
  for (const auto& [pool, is_running] : running) {
    CAPTURE(pool);
    CHECK(started.count(pool) == (is_running ? 1u : 0u));
    REQUIRE(was_started.count(pool) == 1);
    CHECK(was_started[pool] > 1.6e9);  // a real date, not 0 or a parse failure
    if (is_running) CHECK(started[pool] >= was_started[pool]);
  }
  CHECK(std::count_if(running.begin(), running.end(), [](const auto& p) { return p.second; }) >= 1);
}

TEST_CASE("files example: size, mtime and count per directory") {
  const auto families = run_example("files");
  const auto* files = collectors_test::find_family(families, "windows_files");
  const auto* size = collectors_test::find_family(families, "windows_file_size_bytes");
  const auto* mtime =
      collectors_test::find_family(families, "windows_file_mtime_timestamp_seconds");
  REQUIRE(files != nullptr);
  REQUIRE(size != nullptr);
  REQUIRE(mtime != nullptr);
  std::map<std::string, double> count;  // path -> windows_files
  for (const auto& sample : files->samples) count[label_of(*files, sample, "path")] = sample.value;
  std::map<std::string, int> sizes;
  double newest = 0;
  for (const auto& sample : size->samples) {
    const std::string path = label_of(*size, sample, "path");
    const std::string file = label_of(*size, sample, "file");
    CAPTURE(file);
    ++sizes[path];
    // Name is the full path; only files directly in the directory are listed.
    CHECK(file.starts_with(path));
    CHECK(file.find('\\', path.size()) == std::string::npos);
  }
  for (const auto& sample : mtime->samples) newest = std::max(newest, sample.value);
  REQUIRE(count.size() == 2);
  for (const auto& [path, n] : count) {
    CAPTURE(path);
    CHECK(n == sizes[path]);  // one size series per counted row
  }
  CHECK(count["C:\\logs\\app\\"] >= 4);
  CHECK(count["C:\\inetpub\\logs\\LogFiles\\W3SVC1\\"] >= 14);
  CHECK(newest > 1.6e9);
  const auto* dirs =
      collectors_test::find_family(families, "windows_directory_mtime_timestamp_seconds");
  REQUIRE(dirs != nullptr);
  REQUIRE(dirs->samples.size() == 1);
  CHECK(label_of(*dirs, dirs->samples[0], "directory") == "C:\\logs\\app\\archive");
}

TEST_CASE("scheduled_task example: windows_exporter's task paths and state names") {
  const auto families = run_example("scheduled_task");
  const auto* state = collectors_test::find_family(families, "windows_scheduled_task_state");
  REQUIRE(state != nullptr);
  REQUIRE(!state->samples.empty());
  for (const auto& sample : state->samples) {
    const std::string task = label_of(*state, sample, "task");
    CAPTURE(task);
    CHECK(task.starts_with("/"));
    CHECK(task.find('\\') == std::string::npos);
    CHECK_FALSE(task.starts_with("/Microsoft/"));  // the WHERE keeps them out
  }
}

TEST_CASE("hotfix example: install days at UTC midnight, newest within the sim's range") {
  const auto families = run_example("hotfix");
  const auto* installed =
      collectors_test::find_family(families, "windows_hotfix_installed_timestamp_seconds");
  REQUIRE(installed != nullptr);
  REQUIRE(installed->samples.size() >= 4);
  double newest = 0;
  for (const auto& sample : installed->samples) {
    CHECK(std::fmod(sample.value, 86400.0) == 0);
    newest = std::max(newest, sample.value);
  }
  CHECK(newest > 1.6e9);  // a real date, not 0 or a parse failure
}

}  // namespace test_examples
