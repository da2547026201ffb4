// The few derived values that need code, referenced from YAML by name
// (`hook: boot_time` on a metric, `{hook: fqdn}` on a label).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/row.h"

namespace collectors::internal {

struct ValueHook {
  std::string_view name;
  std::vector<std::string_view> properties;  // must all be in the query's SELECT list
  std::optional<double> (*compute)(const winrm::Row& row);
};

struct LabelHook {
  std::string_view name;
  std::vector<std::string_view> properties;
  std::optional<std::string> (*compute)(const winrm::Row& row);
};

const ValueHook* find_value_hook(std::string_view name);
const LabelHook* find_label_hook(std::string_view name);
std::string value_hook_names();  // "a, b" for error messages
std::string label_hook_names();

}  // namespace collectors::internal
