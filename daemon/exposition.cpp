#include "exposition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <unordered_map>

namespace exporter {

namespace {

// Length of the valid UTF-8 sequence starting at text[i], 0 when invalid.
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t length;
  std::uint32_t code;
  if ((c & 0xE0) == 0xC0) {
    length = 2;
    code = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3;
    code = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    length = 4;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid.
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kMin[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

bool is_ascii_clean(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && c != '\\' && c != '"' && c != '\n';
  });
}

}  // namespace

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

void append_label_value(std::string& out, std::string_view value) {
  if (is_ascii_clean(value)) {  // the common case: no copy, no checks per byte
    out.append(value);
    return;
  }
  std::string clean = sanitize_utf8(value);
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

void append_help(std::string& out, std::string_view help) {
  std::string clean = sanitize_utf8(help);
  for (char c : clean) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_value(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[64];
  std::to_chars_result result;
  // Integers up to 2^53 are exact in a double: print them without exponent.
  if (value == std::trunc(value) && std::fabs(value) <= 9007199254740992.0) {
    result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  out.append(buffer, result.ptr);
}

std::string render_label_pairs(const collectors::Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    append_label_value(out, value);
    out += '"';
  }
  return out;
}

std::string_view type_name(collectors::MetricType type) {
  switch (type) {
    case collectors::MetricType::kCounter:
      return "counter";
    case collectors::MetricType::kGauge:
      return "gauge";
    case collectors::MetricType::kUntyped:
      break;
  }
  return "untyped";
}

namespace {

void append_sample(std::string& out, std::string_view name, std::string_view prefix,
                   const collectors::Labels& labels, double value) {
  out += name;
  if (!prefix.empty() || !labels.empty()) {
    out += '{';
    out += prefix;
    bool first = prefix.empty();
    for (const auto& [label, label_value] : labels) {
      if (!first) out += ',';
      first = false;
      out += label;
      out += "=\"";
      append_label_value(out, label_value);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  append_value(out, value);
  out += '\n';
}

}  // namespace

RenderedFamilies render_families(std::string_view label_prefix,
                                 const collectors::Families& families) {
  RenderedFamilies rendered;
  rendered.prefix = label_prefix;
  rendered.families.reserve(families.size());
  for (const auto& family : families) {
    RenderedFamily& out = rendered.families.emplace_back();
    out.name = family.name;
    out.help = family.help;
    out.type = family.type;
    out.samples = family.samples.size();
    out.lines.reserve(family.samples.size() * (family.name.size() + label_prefix.size() + 48));
    for (const auto& sample : family.samples) {
      append_sample(out.lines, family.name, label_prefix, sample.labels, sample.value);
    }
    out.lines.shrink_to_fit();  // kept for a whole interval: no slack per poll
    rendered.samples += out.samples;
    rendered.bytes += out.lines.size();
  }
  return rendered;
}

RenderedFamilies with_prefix(const RenderedFamilies& rendered, std::string_view label_prefix) {
  RenderedFamilies out;
  out.prefix = label_prefix;
  out.samples = rendered.samples;
  out.families.reserve(rendered.families.size());
  const std::string_view old_prefix = rendered.prefix;
  for (const auto& family : rendered.families) {
    RenderedFamily& copy = out.families.emplace_back();
    copy.name = family.name;
    copy.help = family.help;
    copy.type = family.type;
    copy.samples = family.samples;
    std::string_view lines = family.lines;
    // Every line is `name{old_prefix,labels} value`, `name{old_prefix} value`,
    // `name{labels} value` or `name value` (append_sample): swap the prefix in place.
    while (!lines.empty()) {
      std::size_t end = lines.find('\n');
      std::string_view line =
          lines.substr(0, end == std::string_view::npos ? lines.size() : end + 1);
      lines.remove_prefix(line.size());
      std::string_view rest = line.substr(family.name.size());
      bool has_labels;
      if (old_prefix.empty()) {
        has_labels = rest.starts_with('{');
        if (has_labels) rest.remove_prefix(1);
      } else {
        rest.remove_prefix(1 + old_prefix.size());  // `{` + old prefix
        has_labels = rest.starts_with(',');
        rest.remove_prefix(1);  // `,` before the labels or `}` before the value
      }
      // rest: `labels} value\n` when has_labels, else ` value\n`.
      copy.lines += family.name;
      if (label_prefix.empty() && !has_labels) {
        copy.lines += rest;
        continue;
      }
      copy.lines += '{';
      copy.lines += label_prefix;
      if (has_labels) {
        if (!label_prefix.empty()) copy.lines += ',';
      } else {
        copy.lines += '}';
      }
      copy.lines += rest;
    }
    out.bytes += copy.lines.size();
  }
  return out;
}

void write_rendered(std::string& out, const std::vector<const RenderedFamilies*>& sources) {
  struct Group {
    const RenderedFamily* first = nullptr;
    std::size_t samples = 0;
    std::vector<const RenderedFamily*> members;
  };
  std::unordered_map<std::string_view, Group> groups;
  std::size_t bytes = 0;
  for (const auto* source : sources) {
    if (!source) continue;
    bytes += source->bytes;
    for (const auto& family : source->families) {
      Group& group = groups[family.name];
      if (!group.first) group.first = &family;
      group.samples += family.samples;
      group.members.push_back(&family);
    }
  }
  std::vector<std::string_view> names;
  names.reserve(groups.size());
  for (const auto& [name, group] : groups) names.push_back(name);
  std::sort(names.begin(), names.end());

  out.reserve(out.size() + bytes + names.size() * 256);
  for (std::string_view name : names) {
    const Group& group = groups[name];
    if (group.samples == 0) continue;  // a family with no samples is noise
    const RenderedFamily& first = *group.first;
    out += "# HELP ";
    out += first.name;
    out += ' ';
    append_help(out, first.help);
    out += "\n# TYPE ";
    out += first.name;
    out += ' ';
    out += type_name(first.type);
    out += '\n';
    for (const auto* member : group.members) out += member->lines;
  }
}

void write_families(std::string& out, const std::vector<FamilySource>& sources) {
  std::vector<RenderedFamilies> rendered;
  rendered.reserve(sources.size());
  for (const auto& source : sources) {
    if (source.families) rendered.push_back(render_families(source.label_prefix, *source.families));
  }
  std::vector<const RenderedFamilies*> pointers;
  for (const auto& source : rendered) pointers.push_back(&source);
  write_rendered(out, pointers);
}

FamilyWriter::FamilyWriter(std::string& out, std::string_view name, std::string_view help,
                           collectors::MetricType type)
    : out_(out), name_(name) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type_name(type);
  out_ += '\n';
}

void FamilyWriter::sample(std::string_view labels, double value) {
  out_ += name_;
  if (!labels.empty()) {
    out_ += '{';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ';
  append_value(out_, value);
  out_ += '\n';
}

}  // namespace exporter
