// Golden-file helpers. `render_probe` is the daemon's own serializer as /probe uses it
// for one target; `render` is a test-only renderer with sorted samples and labels, kept
// for order-independent comparisons.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "collectors/collector.h"
#include "collectors/definition.h"
#include "collectors/metric.h"
#include "winrm/row.h"

namespace collectors_test {

std::string render(const collectors::Families& families);
// Exactly the collector part of a /probe body for one target without configured labels:
// exporter::write_families with an empty label prefix (families sorted by name, samples
// in collector order, the daemon's value formatting and escaping).
std::string render_probe(const collectors::Families& families);
std::string format_value(double value);

// Test inputs shared by the definition and golden tests.
// A row with one string value per property, in this order.
winrm::Row make_row(std::initializer_list<std::pair<std::string, std::string>> properties);
// The error of a definition that must be rejected (the test fails when it is accepted).
std::string parse_error(const std::string& yaml, collectors::DefinitionOptions options = {});

// Rows of every page of an Enumerate/Pull sequence under tests/fixtures/<folder>
// (enum: real captures; sim: responses recorded from winrm-sim).
std::vector<winrm::Row> load_fixture_rows(const std::vector<std::string>& files,
                                          const std::string& folder = "enum");

// One line of tests/fixtures/sim/queries.tsv, written by record-sim-fixtures.py.
struct SimRecording {
  std::string prefix;  // <collector>_<query index>; files are <prefix>_pNNN.xml
  int pages = 0;
  std::string wmi_namespace;
  std::string wql;
};
std::vector<SimRecording> load_sim_manifest();
// <prefix>_p000.xml .. p<pages-1>.xml
std::vector<std::string> sim_page_files(const SimRecording& recording);

std::string read_file(const std::filesystem::path& path);
// Compares with tests/collectors/golden/<name>.prom; UPDATE_GOLDEN=1 rewrites it.
// Returns an empty string on success, else a description of the mismatch.
std::string check_golden(const std::string& name, const std::string& actual);

struct CommandResult {
  int exit_code = -1;
  std::string output;
};
// `promtool check metrics` with the file on stdin.
CommandResult promtool_check(const std::filesystem::path& file);

const collectors::MetricFamily* find_family(const collectors::Families& families,
                                            const std::string& name);

}  // namespace collectors_test
