#include "prom_text.h"

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "exposition.h"
#include "promtool.h"
#include "winrm/envelope.h"

namespace collectors_test {
namespace {

std::string escape(const std::string& text, bool quote) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::filesystem::path golden_dir() {
  return std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" / "golden";
}

}  // namespace

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string render(const collectors::Families& families) {
  std::vector<const collectors::MetricFamily*> sorted;
  for (const auto& family : families) sorted.push_back(&family);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](auto* a, auto* b) { return a->name < b->name; });
  std::string out;
  for (const auto* family : sorted) {
    if (family->samples.empty()) continue;  // like a registry: no samples, no HELP/TYPE
    out += "# HELP " + family->name + " " + escape(family->help, false) + "\n";
    out += "# TYPE " + family->name + " " + std::string(exporter::type_name(family->type)) + "\n";
    std::vector<std::string> lines;
    for (const auto& sample : family->samples) {
      auto labels = family->labels(sample);
      std::sort(labels.begin(), labels.end());
      std::string line = family->name;
      if (!labels.empty()) {
        line += "{";
        for (std::size_t i = 0; i < labels.size(); ++i) {
          if (i > 0) line += ",";
          line += labels[i].first + "=\"" + escape(labels[i].second, true) + "\"";
        }
        line += "}";
      }
      line += " " + format_value(sample.value);
      lines.push_back(std::move(line));
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& line : lines) out += line + "\n";
  }
  return out;
}

std::string render_probe(const collectors::Families& families) {
  std::string out;
  exporter::write_families(out, {exporter::FamilySource{"", &families}});
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<winrm::Row> load_fixture_rows(const std::vector<std::string>& files,
                                          const std::string& folder) {
  std::vector<winrm::Row> rows;
  for (const auto& file : files) {
    const auto path = std::filesystem::path(WINRM_TEST_FIXTURES) / folder / file;
    auto page = winrm::parse_enumeration_response(read_file(path));
    if (!page) throw std::runtime_error(file + ": " + page.error().describe());
    for (auto& row : page->rows) rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<SimRecording> load_sim_manifest() {
  const auto path = std::filesystem::path(WINRM_TEST_FIXTURES) / "sim" / "queries.tsv";
  std::istringstream in(read_file(path));
  std::vector<SimRecording> recordings;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.starts_with("#")) continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (int i = 0; i < 3; ++i) {  // the WQL (last field) holds no tab
      const auto tab = line.find('\t', start);
      if (tab == std::string::npos) throw std::runtime_error("bad queries.tsv line: " + line);
      fields.push_back(line.substr(start, tab - start));
      start = tab + 1;
    }
    recordings.push_back(
        SimRecording{fields[0], std::stoi(fields[1]), fields[2], line.substr(start)});
  }
  return recordings;
}

std::vector<std::string> sim_page_files(const SimRecording& recording) {
  std::vector<std::string> files;
  for (int page = 0; page < recording.pages; ++page) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, "_p%03d.xml", page);
    files.push_back(recording.prefix + suffix);
  }
  return files;
}

std::string check_golden(const std::string& name, const std::string& actual) {
  const auto path = golden_dir() / (name + ".prom");
  const char* update = std::getenv("UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << actual;
    return {};
  }
  if (!std::filesystem::exists(path)) {
    return path.string() + " is missing (run with UPDATE_GOLDEN=1 to create it)";
  }
  const std::string expected = read_file(path);
  if (expected == actual) return {};
  return path.string() + " differs (run with UPDATE_GOLDEN=1 to rewrite).\n--- expected\n" +
         expected + "--- actual\n" + actual;
}

CommandResult promtool_check(const std::filesystem::path& file) {
  // The path is ours (golden dir or a temp file), quoted for the shell.
  const std::string command = "promtool check metrics < '" + file.string() + "' 2>&1";
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t read = 0;
  while ((read = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    result.output.append(buffer, read);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  // Exit 3 = lint problems only; windows_exporter's own gauge named *_total is allowed.
  if (result.exit_code == 3 && only_windows_exporter_lint(result.output)) result.exit_code = 0;
  return result;
}

const collectors::MetricFamily* find_family(const collectors::Families& families,
                                            const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

winrm::Row make_row(std::initializer_list<std::pair<std::string, std::string>> properties) {
  winrm::Row row;
  for (const auto& [name, value] : properties) row.add(name, value);
  return row;
}

std::string parse_error(const std::string& yaml, collectors::DefinitionOptions options) {
  auto collector = collectors::parse_collector_definition_text(yaml, options);
  REQUIRE_MESSAGE(!collector.has_value(), "accepted: " << yaml);
  return collector.error();
}

}  // namespace collectors_test
