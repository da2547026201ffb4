#include "collectors/registry.h"

#include <stdexcept>

#include "builtin_definitions.h"
#include "collectors/definition.h"
#include "common/yaml.h"

namespace collectors {

const std::map<std::string, CollectorPtr>& builtin_collector_map() {
  // Built-ins are part of the binary: a definition that fails to parse is a bug,
  // caught by the collector tests, so throwing here is acceptable.
  static const std::map<std::string, CollectorPtr> kCollectors = [] {
    std::map<std::string, CollectorPtr> collectors;
    for (const auto& embedded : internal::embedded_builtin_definitions()) {
      // Errors name the source file and line: collectors/builtin/<name>.yml:12.
      const common::yaml::Source source("collectors/builtin/" + std::string(embedded.name) +
                                        ".yml");
      auto collector = parse_collector_definition_text(
          embedded.yaml,
          {.builtin = true, .locate = [&](const YAML::Mark& mark) { return source.where(mark); }});
      if (!collector) throw std::logic_error("built-in collector " + collector.error());
      if ((*collector)->name() != embedded.name) {
        throw std::logic_error("built-in collector " + std::string(embedded.name) +
                               ".yml declares name '" + (*collector)->name() + "'");
      }
      collectors.emplace((*collector)->name(), std::move(*collector));
    }
    return collectors;
  }();
  return kCollectors;
}

std::map<std::string, CollectorPtr> builtin_collectors() { return builtin_collector_map(); }

std::vector<std::string> default_collector_names() {
  return {"cpu", "logical_disk", "memory", "net", "os", "service", "system"};
}

std::string_view builtin_definition_text(std::string_view name) {
  for (const auto& embedded : internal::embedded_builtin_definitions()) {
    if (embedded.name == name) return embedded.yaml;
  }
  return {};
}

}  // namespace collectors
