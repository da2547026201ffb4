// One YAML document the simulator reads (its config file, its embedded data files): errors
// carry "file:line: key: what", strict keys with "did you mean", through common/yaml.h like
// the exporter's own config.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/yaml.h"
#include "latency.h"

namespace sim {

class YamlDoc {
 public:
  explicit YamlDoc(std::string name) : source_(std::move(name)) {}
  const common::yaml::Source& source() const { return source_; }

  // Throws std::runtime_error("name:line: where: what"), the line of `at`.
  [[noreturn]] void fail(const YAML::Node& at, const std::string& where,
                         const std::string& what) const;

  // `node` must be a mapping whose keys come from `allowed`, each once.
  void check_keys(const YAML::Node& node, const std::string& where,
                  const std::vector<std::string_view>& allowed) const;

  template <typename T>
  T scalar(const YAML::Node& node, const std::string& where) const {
    if (!node.IsDefined()) fail(node, where, "missing");
    try {
      return node.as<T>();
    } catch (const YAML::Exception&) {
      fail(node, where, "bad value");
    }
  }

  // Go-style durations, as in the exporter's web config: "500ms", "1.5s", "2m", "1h30m".
  Millis duration(const YAML::Node& node, const std::string& where) const;

  // A sequence of scalars.
  std::vector<std::string> strings(const YAML::Node& node, const std::string& where) const;

 private:
  common::yaml::Source source_;
};

}  // namespace sim
