// Test-only Prometheus text renderer and golden-file helpers. Output is sorted
// (families by name, samples by rendered labels) so goldens are deterministic.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "collectors/collector.h"
#include "collectors/metric.h"
#include "winrm/row.h"

namespace collectors_test {

std::string render(const collectors::Families& families);
std::string format_value(double value);

// Rows of every page of a captured Enumerate/Pull sequence under tests/fixtures/enum.
std::vector<winrm::Row> load_fixture_rows(const std::vector<std::string>& files);

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
