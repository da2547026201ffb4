// The built-in collectors against windows_exporter's own end-to-end output
// (tests/collectors/reference/, copied from windows_exporter HEAD 589ec15 and v0.29.2 with
// the label names of each family from its source). For every reference family of a
// windows_exporter collector we ship, the name set of that version must have the family
// with the same type and label names. Every exception is a line of known-differences.tsv
// with its reason, and an exception that no longer applies fails too, so the list cannot
// rot. Our label names come from the golden files (every built-in family is in one).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/definition.h"
#include "collectors/registry.h"
#include "exposition.h"
#include "prom_text.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_reference {

namespace {

const std::filesystem::path kReferenceDir =
    std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" / "reference";
const std::filesystem::path kGoldenDir =
    std::filesystem::path(WINRM_SOURCE_DIR) / "tests" / "collectors" / "golden";

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

std::set<std::string> split(const std::string& text) {
  std::set<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

// Label names of one exposition sample line: `name{a="x",b="y"} 1`.
std::set<std::string> sample_label_names(const std::string& line) {
  std::set<std::string> names;
  const auto open = line.find('{');
  if (open == std::string::npos) return names;
  static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*")re");
  const auto close = line.rfind('}');
  const std::string inside = line.substr(open + 1, close - open - 1);
  for (std::sregex_iterator it(inside.begin(), inside.end(), label), end; it != end; ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

struct ReferenceFamily {
  std::string type;
  std::set<std::string> labels;
  std::string collector;  // windows_exporter collector that produced it
};

struct Reference {
  std::map<std::string, ReferenceFamily> families;
  std::set<std::string> collectors;  // from windows_exporter_collector_success{collector}
};

Reference load_reference(const std::string& version) {
  Reference reference;
  std::map<std::string, std::set<std::string>> sample_labels;
  std::ifstream e2e(kReferenceDir / ("e2e-output-" + version + ".txt"));
  REQUIRE_MESSAGE(e2e.good(), "missing reference output for " << version);
  std::string line;
  static const std::regex collector_line(
      R"re(^windows_exporter_collector_success\{collector="([a-z_]+)"\})re");
  while (std::getline(e2e, line)) {
    if (line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // the file starts with a BOM
    std::smatch match;
    if (line.starts_with("# TYPE ")) {
      std::istringstream fields(line.substr(7));
      std::string name, type;
      fields >> name >> type;
      reference.families[name].type = type;
    } else if (std::regex_search(line, match, collector_line)) {
      reference.collectors.insert(match[1]);
    } else if (!line.empty() && line[0] != '#') {
      const std::string name = line.substr(0, line.find_first_of("{ "));
      sample_labels[name] = sample_label_names(line);
    }
  }
  std::ifstream labels(kReferenceDir / ("labels-" + version + ".tsv"));
  REQUIRE(labels.good());
  std::size_t labelled = 0;
  while (std::getline(labels, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, names;
    std::getline(fields, name, '\t');
    std::getline(fields, names, '\t');
    auto it = reference.families.find(name);
    REQUIRE_MESSAGE(it != reference.families.end(), name << " in labels but not in e2e output");
    it->second.labels = split(names);
    ++labelled;
    // The extracted label names agree with the sample lines where the output has some.
    if (auto sample = sample_labels.find(name); sample != sample_labels.end()) {
      CHECK_MESSAGE(sample->second == it->second.labels, name);
    }
  }
  CHECK(labelled > 100);
  for (auto& [name, family] : reference.families) {
    // Longest collector prefix: windows_cpu_info_core belongs to cpu_info, not cpu.
    for (const auto& collector : reference.collectors) {
      const std::string prefix = "windows_" + collector;
      if ((name == prefix || name.starts_with(prefix + "_")) &&
          collector.size() > family.collector.size()) {
        family.collector = collector;
      }
    }
  }
  REQUIRE(reference.collectors.size() > 10);
  return reference;
}

struct OurFamily {
  std::string type;
  std::set<std::string> labels;
  std::string collector;
};

// Families of every built-in restricted to one name set; label names from the goldens.
std::map<std::string, OurFamily> our_families(const std::string& name_set) {
  std::map<std::string, std::set<std::string>> golden_labels;
  for (const auto& entry : std::filesystem::directory_iterator(kGoldenDir)) {
    std::istringstream text(collectors_test::read_file(entry.path()));
    std::string line;
    while (std::getline(text, line)) {
      if (line.empty() || line[0] == '#') continue;
      const std::string name = line.substr(0, line.find_first_of("{ "));
      auto names = sample_label_names(line);
      auto [it, inserted] = golden_labels.emplace(name, names);
      if (!inserted) {
        CHECK_MESSAGE(it->second == names, name << ": label names differ within "
                                                << entry.path().filename().string());
      }
    }
  }
  std::map<std::string, OurFamily> families;
  for (const auto& [collector_name, collector] : collectors::builtin_collector_map()) {
    const auto selected = collectors::select_name_sets(collector, {name_set});
    const auto empty = selected->transform(
        std::vector<std::vector<winrm::Row>>(selected->queries().size()));
    REQUIRE(empty.has_value());
    for (const auto& family : *empty) {
      auto labels = golden_labels.find(family.name);
      CHECK_MESSAGE(labels != golden_labels.end(), family.name << " is in no golden file");
      families[family.name] = {std::string(exporter::type_name(family.type)),
                               labels == golden_labels.end() ? std::set<std::string>{}
                                                             : labels->second,
                               collector_name};
    }
  }
  return families;
}

struct KnownDifference {
  std::string kind;  // missing | type | labels | extra
  std::string detail;
};

// known-differences.tsv: version, family, kind, reason.
std::map<std::pair<std::string, std::string>, KnownDifference> known_differences(
    const std::string& version) {
  std::map<std::pair<std::string, std::string>, KnownDifference> out;
  std::ifstream in(kReferenceDir / "known-differences.tsv");
  REQUIRE(in.good());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream row(line);
    std::string field;
    while (std::getline(row, field, '\t')) fields.push_back(field);
    REQUIRE_MESSAGE(fields.size() == 4, "known-differences.tsv: " << line);
    CHECK_MESSAGE(fields[3].size() > 20, "known difference without a reason: " << line);
    if (fields[0] != version) continue;
    out[{fields[1], fields[2]}] = {fields[2], fields[3]};
  }
  return out;
}

// windows_exporter collectors whose families we emit, and under which of our collectors.
// cs (removed in 0.30) lives on in our os collector's pre030 names.
const std::map<std::string, std::string> kShipped = {
    {"cache", "cache"},         {"cpu", "cpu"},
    {"cpu_info", "cpu_info"},   {"cs", "os"},
    {"logical_disk", "logical_disk"}, {"memory", "memory"},
    {"net", "net"},             {"os", "os"},
    {"pagefile", "pagefile"},   {"physical_disk", "physical_disk"},
    {"process", "process"},     {"scheduled_task", "scheduled_task"},
    {"service", "service"},     {"system", "system"},
    {"tcp", "tcp"},             {"time", "time"},
    {"udp", "udp"},
};

void compare(const std::string& version, const std::string& name_set) {
  const Reference reference = load_reference(version);
  const auto ours = our_families(name_set);
  auto known = known_differences(version);
  std::set<std::pair<std::string, std::string>> used;
  const auto& builtins = collectors::builtin_collector_map();
  std::size_t compared = 0;

  const auto check = [&](bool differs, const std::string& family, const std::string& kind,
                         const std::string& what) {
    const auto key = std::make_pair(family, kind);
    if (differs) {
      CHECK_MESSAGE(known.contains(key), version << " (" << name_set << "): " << what);
      used.insert(key);
    }
  };

  for (const auto& [name, family] : reference.families) {
    const auto shipped = kShipped.find(family.collector);
    if (shipped == kShipped.end() || !builtins.contains(shipped->second)) continue;
    ++compared;
    const auto it = ours.find(name);
    check(it == ours.end(), name, "missing", name + " (" + family.collector + ") is missing");
    if (it == ours.end()) continue;
    check(it->second.type != family.type, name, "type",
          name + " is a " + it->second.type + ", windows_exporter: " + family.type);
    check(it->second.labels != family.labels, name, "labels",
          name + " has labels {" + join(it->second.labels) + "}, windows_exporter: {" +
              join(family.labels) + "}");
  }
  // Families we emit that this version lacks, for our collectors that the reference shows
  // families of (its process collector ran with a filter that matched nothing).
  std::set<std::string> shown;
  for (const auto& [name, family] : reference.families) {
    if (const auto it = kShipped.find(family.collector); it != kShipped.end())
      shown.insert(it->second);
  }
  for (const auto& [name, family] : ours) {
    if (reference.families.contains(name) || !shown.contains(family.collector)) continue;
    check(true, name, "extra", name + " (" + family.collector + ") is not in " + version);
  }
  for (const auto& [key, difference] : known) {
    CHECK_MESSAGE(used.contains(key), "known-differences.tsv: " << version << " " << key.first
                                                                << " " << key.second
                                                                << " no longer applies");
  }
  MESSAGE(version << ": " << compared << " reference families of shipped collectors compared, "
                  << used.size() << " documented differences");
  CHECK(compared > 90);
}

}  // namespace

TEST_CASE("v030 name set matches windows_exporter HEAD 589ec15") { compare("HEAD-589ec15", "v030"); }

TEST_CASE("pre030 name set matches windows_exporter v0.29.2") { compare("v0.29.2", "pre030"); }

}  // namespace test_reference
