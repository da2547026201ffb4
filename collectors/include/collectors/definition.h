// Data-driven collectors: a YAML definition (WQL queries plus metric mappings) turned
// into a Collector. Used for the built-ins and for custom collectors from the config.
// Schema: collectors/README.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <expected>
#include <string>
#include <string_view>

#include "collectors/collector.h"

namespace collectors {

struct DefinitionOptions {
  // Built-ins must use names under windows_ and are held to the stricter rules.
  bool builtin = false;
};

// Parses and validates one collector definition. Error text names the collector,
// query, metric and field at fault. Never throws.
std::expected<CollectorPtr, std::string> parse_collector_definition(const YAML::Node& node);
std::expected<CollectorPtr, std::string> parse_collector_definition(
    const YAML::Node& node, const DefinitionOptions& options);
// Same, from YAML text (yaml-cpp syntax errors are reported with line and column).
std::expected<CollectorPtr, std::string> parse_collector_definition_text(
    std::string_view yaml, const DefinitionOptions& options = {});

}  // namespace collectors
