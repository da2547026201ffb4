#include "yaml_doc.h"

#include <stdexcept>

#include "common/duration.h"

namespace sim {

void YamlDoc::fail(const YAML::Node& at, const std::string& where, const std::string& what) const {
  throw std::runtime_error(source_.where(at) + ": " + where + ": " + what);
}

void YamlDoc::check_keys(const YAML::Node& node, const std::string& where,
                         const std::vector<std::string_view>& allowed) const {
  if (!node.IsMap()) fail(node, where, "expected a mapping");
  const auto problem = common::yaml::check_keys(node, allowed);
  if (!problem) return;
  using Kind = common::yaml::KeyProblem::Kind;
  if (problem->kind == Kind::kNotScalar) fail(problem->key, where, "keys must be plain strings");
  if (problem->kind == Kind::kRepeated) {
    fail(problem->key, where, "repeated key '" + problem->name + "'");
  }
  fail(problem->key, where, "unknown key '" + problem->name + "'" + problem->suggestion);
}

Millis YamlDoc::duration(const YAML::Node& node, const std::string& where) const {
  const auto text = scalar<std::string>(node, where);
  const auto parsed = common::parse_duration(text, common::DurationSyntax::kGo);
  if (!parsed) fail(node, where, "bad duration '" + text + "' (e.g. 500ms, 1.5s, 2m, 1h)");
  return *parsed;
}

std::vector<std::string> YamlDoc::strings(const YAML::Node& node, const std::string& where) const {
  if (!node.IsSequence()) fail(node, where, node ? "expected a list" : "missing");
  std::vector<std::string> out;
  for (const auto& item : node) out.push_back(scalar<std::string>(item, where + "[]"));
  return out;
}

}  // namespace sim
