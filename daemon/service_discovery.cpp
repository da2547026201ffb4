#include "service_discovery.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "log.h"

namespace exporter {

std::string render_sd_json(const std::vector<SdTarget>& targets) {
  std::map<std::map<std::string, std::string>, std::vector<std::string>> groups;
  for (const auto& target : targets) groups[target.labels].push_back(target.name);
  // One target group a line (readable with curl, small diffs); each group is dumped by
  // nlohmann::json, "targets" before "labels" as Prometheus' docs show them.
  std::string out = "[";
  bool first_group = true;
  for (auto& [labels, names] : groups) {
    std::sort(names.begin(), names.end());
    nlohmann::ordered_json group = {{"targets", nlohmann::ordered_json::array()},
                                    {"labels", nlohmann::ordered_json::object()}};
    for (const auto& name : names) group["targets"].push_back(json_string(name));
    for (const auto& [name, value] : labels)
      group["labels"][json_string(name)] = json_string(value);
    out += first_group ? "\n" : ",\n";
    first_group = false;
    out += group.dump();
  }
  out += groups.empty() ? "]\n" : "\n]\n";
  return out;
}

}  // namespace exporter
