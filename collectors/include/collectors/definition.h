// Data-driven collectors: a YAML definition (WQL queries plus metric mappings) turned
// into a Collector. Used for the built-ins and for custom collectors from the config.
// Schema: collectors/README.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <expected>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"

namespace collectors {

struct DefinitionOptions {
  // Built-ins must use names under windows_ and are held to the stricter rules.
  bool builtin = false;
  // Where the definition was read: the location prefix of a node's mark ("file:line", or
  // the config's "file:line: custom_collectors[0]"). Errors then start with the location
  // of the field at fault and ": ". Unset: errors carry no location.
  std::function<std::string(const YAML::Mark&)> locate = {};
};

// Parses and validates one collector definition. Error text names the collector,
// query, metric and field at fault. Never throws.
std::expected<CollectorPtr, std::string> parse_collector_definition(const YAML::Node& node);
std::expected<CollectorPtr, std::string> parse_collector_definition(
    const YAML::Node& node, const DefinitionOptions& options);
// Same, from YAML text (yaml-cpp syntax errors are reported with line and column).
std::expected<CollectorPtr, std::string> parse_collector_definition_text(
    std::string_view yaml, const DefinitionOptions& options = {});

// windows_exporter name sets a metric entry can be tagged with (`compat:` in YAML):
// "v030" = names of windows_exporter 0.30 and later, "pre030" = the names dashboards
// written for 0.29 and earlier query. Untagged entries belong to both.
inline constexpr std::string_view kNameSetV030 = "v030";
inline constexpr std::string_view kNameSetPre030 = "pre030";
bool known_name_set(std::string_view name);

// The collector restricted to the metric entries of the given name sets (queries left
// with no metric are dropped). Collectors without tagged entries, and collectors not
// made by this parser, are returned unchanged.
CollectorPtr select_name_sets(const CollectorPtr& collector, const std::vector<std::string>& sets);

}  // namespace collectors
