// The exporter's own lightweight metric model. Collectors produce it; the daemon
// caches immutable snapshots of it and serialises them straight to the exposition
// format (much cheaper than prometheus-cpp's registry for 10k targets).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace collectors {

enum class MetricType { kGauge, kCounter, kUntyped };

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Sample {
  Labels labels;
  double value = 0;
};

struct MetricFamily {
  std::string name;  // full name, e.g. "windows_cpu_time_total"
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;
};

using Families = std::vector<MetricFamily>;

}  // namespace collectors
