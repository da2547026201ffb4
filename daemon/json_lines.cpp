#include "json_lines.h"

#include "log.h"

namespace exporter {

std::string row_to_json(const winrm::Row& row) {
  std::string out = "{";
  bool first = true;
  for (const auto& property : row.properties()) {
    if (!first) out += ',';
    first = false;
    out += json_quote(property.name);
    out += ':';
    if (property.is_null) {
      out += "null";
    } else if (property.values.size() == 1) {
      out += json_quote(property.values.front());
    } else if (property.values.empty()) {
      out += "\"\"";
    } else {
      out += '[';
      for (std::size_t i = 0; i < property.values.size(); ++i) {
        if (i) out += ',';
        out += json_quote(property.values[i]);
      }
      out += ']';
    }
  }
  out += '}';
  return out;
}

}  // namespace exporter
