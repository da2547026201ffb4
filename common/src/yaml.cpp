#include "common/yaml.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace common::yaml {

std::string Source::where(const YAML::Mark& mark) const {
  return name_ + ":" + std::to_string(mark.line >= 0 ? mark.line + 1 : 1);
}

std::string Source::where(const YAML::Node& node) const {
  return where(node.IsDefined() ? node.Mark() : YAML::Mark::null_mark());
}

YAML::Node Source::load(std::string_view text) const {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    throw Error(where(e.mark) + ": yaml: " + e.msg);
  } catch (const YAML::Exception& e) {
    throw Error(name_ + ": yaml: " + e.what());
  }
}

YAML::Node Source::load_file() const {
  std::ifstream in(name_, std::ios::binary);
  if (!in) throw Error(name_ + ": cannot read: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return load(text.str());
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::optional<KeyProblem> check_keys(const YAML::Node& map,
                                     const std::vector<std::string_view>& allowed) {
  std::map<std::string, YAML::Node> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // A copy: yaml-cpp's operator-> returns a proxy that dies with the full expression,
    // so a reference to it->first dangles (ASan: stack-use-after-scope).
    const YAML::Node key = it->first;
    if (!key.IsScalar()) return KeyProblem{KeyProblem::Kind::kNotScalar, key, "", {}, ""};
    const std::string name = key.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return KeyProblem{KeyProblem::Kind::kUnknown, key, name, {}, did_you_mean(name, allowed)};
    }
    if (auto first = seen.find(name); first != seen.end()) {
      return KeyProblem{KeyProblem::Kind::kRepeated, key, name, first->second, ""};
    }
    seen.emplace(name, key);
  }
  return std::nullopt;
}

}  // namespace common::yaml
