// The line-tracking YAML reader every YAML input shares (the exporter's config, the web
// config, collector definitions): "file:line" locations, strict mapping keys with a "did
// you mean" suggestion. A separate library (common_yaml, on yaml-cpp): winrm/ and net/
// link `common` without YAML.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace common::yaml {

// A document that cannot be read or parsed; what() starts with "name:line: " where known.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One YAML document and the name its locations carry (a file path, or e.g.
// "collectors/builtin/cpu.yml" for embedded text).
class Source {
 public:
  explicit Source(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  // "name:line" (1-based; line 1 when the mark is unknown).
  std::string where(const YAML::Mark& mark) const;
  // The node's mark; line 1 when the node is undefined or carries no mark.
  std::string where(const YAML::Node& node) const;

  // Parses `text`; a syntax error becomes Error("name:line: yaml: ...").
  YAML::Node load(std::string_view text) const;
  // Reads the file `name` and parses it; Error("name: cannot read: ...") when unreadable.
  YAML::Node load_file() const;

 private:
  std::string name_;
};

std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for the closest candidate within a small edit distance, else "".
template <typename Range>
std::string did_you_mean(std::string_view word, const Range& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = std::string(candidate);
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

// What is wrong with the first offending key of a strict mapping.
struct KeyProblem {
  enum class Kind { kNotScalar, kUnknown, kRepeated };
  Kind kind;
  YAML::Node key;          // the offending key (its mark locates the error)
  std::string name;        // its text (empty when not a scalar)
  YAML::Node first;        // kRepeated: the first occurrence
  std::string suggestion;  // kUnknown: " (did you mean 'x'?)" or ""
};

// The strict-key rule of every YAML input here: keys are plain scalars from `allowed`,
// each at most once. `map` must be a mapping.
std::optional<KeyProblem> check_keys(const YAML::Node& map,
                                     const std::vector<std::string_view>& allowed);

}  // namespace common::yaml
