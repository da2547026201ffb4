#include "json_lines.h"

#include <nlohmann/json.hpp>

#include "log.h"

namespace exporter {

std::string row_to_json(const winrm::Row& row) {
  // ordered_json: properties in the row's order (json would sort them).
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  for (const auto& property : row.properties()) {
    auto& value = object[json_string(property.name)];
    if (property.is_null) {
      value = nullptr;
    } else if (property.values.size() == 1) {
      value = json_string(property.values.front());
    } else if (property.values.empty()) {
      value = "";
    } else {
      value = nlohmann::ordered_json::array();
      for (const auto& item : property.values) value.push_back(json_string(item));
    }
  }
  return object.dump();
}

}  // namespace exporter
