// The built-in collector definitions (collectors/builtin/*.yml), embedded at build time.
#pragma once

#include <string_view>
#include <vector>

namespace collectors::internal {

struct EmbeddedDefinition {
  std::string_view name;  // file name without .yml
  std::string_view yaml;
};

const std::vector<EmbeddedDefinition>& embedded_builtin_definitions();

}  // namespace collectors::internal
