// A secret value (password) that cannot be printed by accident: no operator<<, no
// fmt formatter, and str() shows a fixed mask. Use reveal() only where it is sent.
#pragma once

#include <string>

namespace config {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  std::string str() const { return value_.empty() ? "" : "<secret>"; }
  bool operator==(const Secret& other) const = default;

 private:
  std::string value_;
};

}  // namespace config
