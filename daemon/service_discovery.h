// Prometheus HTTP service discovery (http_sd) body for /sd.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace exporter {

struct SdTarget {
  std::string name;
  std::map<std::string, std::string> labels;  // the target's configured labels
};

// `[{"targets":[...],"labels":{...}}, ...]`: one group per distinct label set, groups
// ordered by label set, names sorted within a group; `[]` when there is no target.
std::string render_sd_json(const std::vector<SdTarget>& targets);

}  // namespace exporter
