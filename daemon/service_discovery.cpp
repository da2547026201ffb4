#include "service_discovery.h"

#include <algorithm>

#include "log.h"

namespace exporter {

std::string render_sd_json(const std::vector<SdTarget>& targets) {
  std::map<std::map<std::string, std::string>, std::vector<std::string>> groups;
  for (const auto& target : targets) groups[target.labels].push_back(target.name);
  std::string out = "[";
  bool first_group = true;
  for (auto& [labels, names] : groups) {
    std::sort(names.begin(), names.end());
    out += first_group ? "\n" : ",\n";
    first_group = false;
    out += "{\"targets\":[";
    // Appending piece by piece: `const char* + std::string&&` trips GCC 12's -Wrestrict
    // false positive inside libstdc++ at -O2/-O3 (GCC PR105329).
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (i) out += ',';
      out += json_quote(names[i]);
    }
    out += "],\"labels\":{";
    bool first_label = true;
    for (const auto& [name, value] : labels) {
      if (!first_label) out += ',';
      out += json_quote(name);
      out += ':';
      out += json_quote(value);
      first_label = false;
    }
    out += "}}";
  }
  out += groups.empty() ? "]\n" : "\n]\n";
  return out;
}

}  // namespace exporter
