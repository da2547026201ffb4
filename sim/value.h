// Property values of simulated WMI instances.
#pragma once
#include <string>
#include <vector>

namespace sim {

// How a property is rendered: numbers/booleans/strings as text, datetimes nested in
// cim:Datetime, NULL as xsi:nil. Arrays repeat the element (empty array = NULL).
enum class ValueKind { kNull, kString, kNumber, kBool, kDatetime };

struct Value {
  ValueKind kind = ValueKind::kNull;
  std::vector<std::string> items;  // one item for scalars, n for arrays (unescaped text)
  bool is_array = false;

  bool is_null() const { return kind == ValueKind::kNull || items.empty(); }
  const std::string& text() const { return items.front(); }  // only when !is_null()

  static Value null() { return {}; }
  static Value str(std::string s) { return {ValueKind::kString, {std::move(s)}, false}; }
  static Value num(unsigned long long v) {
    return {ValueKind::kNumber, {std::to_string(v)}, false};
  }
  static Value snum(long long v) { return {ValueKind::kNumber, {std::to_string(v)}, false}; }
  static Value boolean(bool b) { return {ValueKind::kBool, {b ? "true" : "false"}, false}; }
  static Value datetime(std::string xs) { return {ValueKind::kDatetime, {std::move(xs)}, false}; }
  static Value str_array(std::vector<std::string> v) {
    if (v.empty()) return {};
    return {ValueKind::kString, std::move(v), true};
  }
};

}  // namespace sim
