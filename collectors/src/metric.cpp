#include "collectors/metric.h"

#include <algorithm>
#include <stdexcept>

#include "common/utf8.h"

namespace collectors {

namespace {

bool is_ascii_clean(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && c != '\\' && c != '"' && c != '\n';
  });
}

}  // namespace

void append_label_value(std::string& out, std::string_view value) {
  if (is_ascii_clean(value)) {  // the common case: no copy, no checks per byte
    out.append(value);
    return;
  }
  std::string clean = common::sanitize_utf8(value, common::Utf8Repair::kEachByte);
  for (char c : clean) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void append_label_pair(std::string& out, std::size_t start, std::string_view name,
                       std::string_view value) {
  if (out.size() > start) out += ',';
  out += name;
  out += "=\"";
  append_label_value(out, value);
  out += '"';
}

Labels MetricFamily::labels(const Sample& sample) const {
  // Only our own text reaches here (append_label_pair): a malformed one is a bug.
  const std::string_view text = label_pairs(sample);
  Labels labels;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t equals = text.find("=\"", at);
    if (equals == std::string_view::npos) throw std::logic_error("malformed label text");
    std::string name(text.substr(at, equals - at));
    std::string value;
    at = equals + 2;
    for (; at < text.size() && text[at] != '"'; ++at) {
      if (text[at] == '\\' && at + 1 < text.size()) {
        ++at;
        value += text[at] == 'n' ? '\n' : text[at];
      } else {
        value += text[at];
      }
    }
    if (at >= text.size()) throw std::logic_error("malformed label text");
    ++at;                                           // the closing quote
    if (at < text.size() && text[at] == ',') ++at;  // before the next pair
    labels.emplace_back(std::move(name), std::move(value));
  }
  return labels;
}

std::string MetricFamily::label(const Sample& sample, std::string_view name) const {
  for (auto& [label_name, value] : labels(sample)) {
    if (label_name == name) return std::move(value);
  }
  return {};
}

void MetricFamily::add(const Labels& labels, double value) {
  const std::size_t start = label_text.size();
  for (const auto& [name, label_value] : labels) {
    append_label_pair(label_text, start, name, label_value);
  }
  samples.push_back(Sample{static_cast<std::uint32_t>(start),
                           static_cast<std::uint32_t>(label_text.size() - start), value});
}

}  // namespace collectors
