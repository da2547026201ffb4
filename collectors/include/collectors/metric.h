// The exporter's own lightweight metric model. Collectors produce it; the daemon
// caches immutable snapshots of it and serialises them straight to the exposition
// format (much cheaper than prometheus-cpp's registry for 10k targets).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace collectors {

enum class MetricType { kGauge, kCounter, kUntyped };

using Labels = std::vector<std::pair<std::string, std::string>>;

// Label value escaping of the text exposition format: \\, \", \n (after UTF-8 sanitising:
// one U+FFFD per invalid byte).
void append_label_value(std::string& out, std::string_view value);
// `name="value"` appended, with a comma first when `out` holds pairs already from `start` on.
void append_label_pair(std::string& out, std::size_t start, std::string_view name,
                       std::string_view value);

// One series of a family. Its labels are kept as exposition text (`a="x",b="y"`, escaped)
// in the family's label_text: one buffer per family instead of a vector of string pairs per
// sample, which were the largest malloc/free caller of a poll (perf at 2,000 hosts,
// bench/RESULTS.md, issue 10), and /metrics copies the text as it is.
struct Sample {
  std::uint32_t label_offset = 0;  // into MetricFamily::label_text
  std::uint32_t label_length = 0;
  double value = 0;
};

struct MetricFamily {
  std::string name;  // full name, e.g. "windows_cpu_time_total"
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;
  std::string label_text;  // the samples' label pairs, back to back

  // A sample's label pairs as exposition text (may be empty).
  std::string_view label_pairs(const Sample& sample) const {
    return std::string_view(label_text).substr(sample.label_offset, sample.label_length);
  }
  // A sample's labels parsed back from the text (unescaped): tests and one-off pages.
  Labels labels(const Sample& sample) const;
  // The value of one label of a sample, "" when it has none by that name (tests).
  std::string label(const Sample& sample, std::string_view name) const;
  // Appends a sample with these labels (escaped here): hand-built families and tests.
  void add(const Labels& labels, double value);
};

using Families = std::vector<MetricFamily>;

}  // namespace collectors
