// Fast Prometheus text exposition (format 0.0.4) for cached collector data: direct
// string appends with std::to_chars, each family merged across targets into one
// HELP/TYPE group, label values escaped and made valid UTF-8.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "collectors/metric.h"

namespace exporter {

// Replaces invalid UTF-8 sequences with U+FFFD.
std::string sanitize_utf8(std::string_view text);
// Label value escaping: \\, \", \n (after UTF-8 sanitising).
void append_label_value(std::string& out, std::string_view value);
// HELP escaping: \\ and \n.
void append_help(std::string& out, std::string_view help);
// Prometheus value formatting: NaN, +Inf, -Inf, exact integers without exponent.
void append_value(std::string& out, double value);
// `name="value"` pairs joined with commas (no braces).
std::string render_label_pairs(const collectors::Labels& labels);
std::string_view type_name(collectors::MetricType type);

// One family of one poll, rendered once when the poll published it: its sample lines
// (`name{prefix,labels} value\n`), so that scrapes only copy text.
struct RenderedFamily {
  std::string name;
  std::string help;
  collectors::MetricType type = collectors::MetricType::kUntyped;
  std::size_t samples = 0;
  std::string lines;
};

// The families of one poll with the label prefix their lines carry.
struct RenderedFamilies {
  std::string prefix;  // e.g. `target="a",dc="x"`, may be empty
  std::vector<RenderedFamily> families;
  std::size_t samples = 0;  // over all families
  std::size_t bytes = 0;    // of all lines
};

RenderedFamilies render_families(std::string_view label_prefix,
                                 const collectors::Families& families);
// The same samples with another label prefix (e.g. /probe's, without `target`).
RenderedFamilies with_prefix(const RenderedFamilies& rendered, std::string_view label_prefix);

// Writes the families of all sources, one HELP/TYPE group per family name (HELP/TYPE of
// the first source that has it), names in sorted order, samples in source order; a name
// with no samples at all is left out.
void write_rendered(std::string& out, const std::vector<const RenderedFamilies*>& sources);

// One source of families with a pre-rendered label prefix (e.g. `target="a",dc="x"`).
struct FamilySource {
  std::string_view label_prefix;
  const collectors::Families* families = nullptr;
};

// write_rendered of the sources rendered now (tests and one-off pages).
void write_families(std::string& out, const std::vector<FamilySource>& sources);

// Small helper for self metrics rendered by hand.
class FamilyWriter {
 public:
  FamilyWriter(std::string& out, std::string_view name, std::string_view help,
               collectors::MetricType type);
  // labels: pre-rendered pairs (may be empty).
  void sample(std::string_view labels, double value);

 private:
  std::string& out_;
  std::string_view name_;
};

}  // namespace exporter
