// Parses collector definitions (schema in collectors/README.md) and runs them over
// WQL rows. Parsing is strict and names the field at fault; transforming never
// throws and skips samples whose data is missing or malformed.
#include "collectors/definition.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "collectors/names.h"
#include "collectors/poll_time.h"
#include "common/duration.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "common/yaml.h"
#include "hooks.h"

namespace collectors {
namespace {

using internal::LabelHook;
using internal::ValueHook;

// A row's property by the name a spec reads, looked up first where that name was found in the
// last row (this thread): the rows of one answer list their properties in the same order, so
// a lookup costs a comparison instead of Row::find's hash and probe (~7% of the poll workers'
// CPU at 10,000 hosts, perf). The hints are keyed by the address of the spec's name string,
// which lives as long as its collector; a slot two names share, a stale slot, or a row in
// another order only falls back to Row::find, since the name at the hinted position is
// compared every time (a row holds one property per case-insensitive name).
const winrm::Property* find_property(const winrm::Row& row, const std::string& name) {
  static constexpr int kHintBits = 10;
  thread_local std::array<std::uint32_t, std::size_t{1} << kHintBits> hints{};
  const auto key = reinterpret_cast<std::uintptr_t>(&name);
  std::uint32_t& hint = hints[(key * 0x9E3779B97F4A7C15ULL) >> (64 - kHintBits)];
  const std::vector<winrm::Property>& properties = row.properties();
  if (hint < properties.size()) {
    const winrm::Property& candidate = properties[hint];
    if (candidate.name.size() == name.size() &&
        (candidate.name == name || common::iequals(candidate.name, name))) {
      return &candidate;
    }
  }
  const winrm::Property* found = row.find(name);
  if (found != nullptr) hint = static_cast<std::uint32_t>(found - properties.data());
  return found;
}

// Row::text through find_property.
std::optional<std::string_view> property_text(const winrm::Row& row, const std::string& name) {
  const winrm::Property* property = find_property(row, name);
  return property == nullptr ? std::nullopt : winrm::text_value(*property);
}

enum class ValueType { kNumber, kDatetime, kBoolean };
enum class Transform {
  kLowercase,
  kUppercase,
  kSanitize,
  kTrim,
  kUtcOffset,
  kForwardSlashes,
  kGlobalIp,
  kIpFamily
};

struct LabelSpec {
  std::string label;
  std::string property;  // empty when hook is set
  const LabelHook* hook = nullptr;
  std::string trim_prefix;
  std::string split_separator;  // empty: no split
  std::size_t split_index = 0;
  std::vector<Transform> transforms;
  // `each: true`: the property is an array and the metric gives one series per item (all
  // `each` labels of a metric read the same item); an item whose value ends up empty is
  // skipped (global_ip empties the addresses windows_exporter leaves out).
  bool each = false;
  // Final value -> label value (e.g. DriveType "3" -> "fixed"); unmapped values keep
  // map_default when set, else stay as they are.
  std::vector<std::pair<std::string, std::string>> map;
  std::optional<std::string> map_default;
};

struct EnumSpec {
  std::string property;
  std::string label;
  std::vector<std::string> values;
  bool lowercase = false;
  // Raw property value -> state label (e.g. NetConnectionStatus "2" -> "up"); empty =
  // the (lowercased) value is the state. Unmapped values set no state.
  std::vector<std::pair<std::string, std::string>> map;
};

struct SkipRule {
  std::string property;
  std::vector<std::string> equals;  // compared case-insensitively
};

struct MetricSpec {
  std::string name;
  std::size_t family = 0;  // index into the collector's family templates
  std::string value_property;
  ValueType value_type = ValueType::kNumber;
  double scale = 1.0;
  // Set when scale is 1/N for an integer N (1e-7, 0.125): dividing by N is exact
  // to the last bit, multiplying by the inexact 1e-7 is not (12345.6789012 vs
  // 12345.678901199999).
  double scale_divisor = 0.0;
  std::string divide_by;
  const ValueHook* hook = nullptr;
  bool info = false;
  bool count = false;  // value = number of rows with this label set
  std::vector<LabelSpec> labels;
  Labels const_labels;
  std::optional<EnumSpec> enum_spec;
  std::vector<SkipRule> skip;  // rows this metric ignores (the query's other metrics keep them)
  std::vector<std::string> name_sets;  // `compat:`; empty = every name set
};

struct QuerySpec {
  std::vector<std::string> selected;  // the SELECT list
  std::size_t max_rows = 0;           // 0: no cap
  std::vector<SkipRule> skip;
  std::vector<MetricSpec> metrics;
};

// windows_exporter's own gauges with a counter-style name: built-ins copy the type so
// that metadata matches windows_exporter (promtool lints it; tests allow exactly these).
bool windows_exporter_gauge_total(std::string_view name) {
  return name == "windows_memory_pool_nonpaged_allocs_total" ||
         name == "windows_cache_copy_read_hits_total" ||
         name == "windows_udp_datagram_received_total";
}

// Longest `refresh:` of a query: beyond a day, rows stale for that long are no longer
// "changes only on a reboot" data.
constexpr std::chrono::hours kMaxRefresh{24};

// Thrown only inside the parser and turned into an error value at its boundary.
struct DefinitionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- file classes: a query must name a directory or a file ---------------------------------
// For CIM_LogicalFile and its subclasses WMI walks every file of every drive unless the WHERE
// clause pins a location (Microsoft's CIM_DataFile remarks): minutes of disk load on a file
// server, then a result of any size. Path = '\\dir\\' (with Drive) or Name = 'c:\\dir\\f'
// use the file system's index; LIKE, FileName or Extension alone do not.
bool is_file_class(std::string_view cls) {
  for (std::string_view name :
       {"CIM_LogicalFile", "CIM_DataFile", "CIM_Directory", "Win32_Directory", "Win32_ShortcutFile",
        "Win32_CodecFile", "CIM_DeviceFile"}) {
    if (common::iequals(cls, name)) return true;
  }
  return false;
}

struct WqlToken {
  enum class Kind { kWord, kString, kOperator, kOpen, kClose } kind;
  std::string text;
};

// WQL tokens: words, string literals ('...' or "...", backslash escapes the next character,
// as in WQL), comparison operators and parentheses. nullopt: an unterminated literal.
std::optional<std::vector<WqlToken>> wql_tokens(std::string_view s) {
  std::vector<WqlToken> out;
  const auto is_operator = [](char c) { return c == '=' || c == '<' || c == '>' || c == '!'; };
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '(' || c == ')') {
      out.push_back({c == '(' ? WqlToken::Kind::kOpen : WqlToken::Kind::kClose, {c}});
      ++i;
    } else if (c == '\'' || c == '"') {
      std::string text;
      for (++i; i < s.size() && s[i] != c; ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        text += s[i];
      }
      if (i >= s.size()) return std::nullopt;
      ++i;
      out.push_back({WqlToken::Kind::kString, std::move(text)});
    } else if (is_operator(c)) {
      std::string text;
      while (i < s.size() && is_operator(s[i])) text += s[i++];
      out.push_back({WqlToken::Kind::kOperator, std::move(text)});
    } else {
      std::string text;
      while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != '(' &&
             s[i] != ')' && s[i] != '\'' && s[i] != '"' && !is_operator(s[i])) {
        text += s[i++];
      }
      out.push_back({WqlToken::Kind::kWord, std::move(text)});
    }
  }
  return out;
}

// Index of the parenthesis closing the one at `open`, or `end` when unbalanced.
std::size_t closing(const std::vector<WqlToken>& t, std::size_t open, std::size_t end) {
  int depth = 0;
  for (std::size_t i = open; i < end; ++i) {
    if (t[i].kind == WqlToken::Kind::kOpen) ++depth;
    if (t[i].kind == WqlToken::Kind::kClose && --depth == 0) return i;
  }
  return end;
}

// True when the condition t[begin, end) is an AND of terms one of which is
// `Path = '...'` or `Name = '...'` (either order), not under OR or NOT.
bool pins_location(const std::vector<WqlToken>& t, std::size_t begin, std::size_t end) {
  while (end - begin >= 2 && t[begin].kind == WqlToken::Kind::kOpen &&
         closing(t, begin, end) == end - 1) {
    ++begin;
    --end;
  }
  std::vector<std::pair<std::size_t, std::size_t>> terms;
  std::size_t start = begin;
  int depth = 0;
  for (std::size_t i = begin; i < end; ++i) {
    if (t[i].kind == WqlToken::Kind::kOpen) ++depth;
    if (t[i].kind == WqlToken::Kind::kClose) --depth;
    if (depth != 0 || t[i].kind != WqlToken::Kind::kWord) continue;
    if (common::iequals(t[i].text, "or")) return false;
    if (common::iequals(t[i].text, "and")) {
      terms.emplace_back(start, i);
      start = i + 1;
    }
  }
  terms.emplace_back(start, end);
  const auto is_key = [&](std::size_t i) {
    return t[i].kind == WqlToken::Kind::kWord &&
           (common::iequals(t[i].text, "Path") || common::iequals(t[i].text, "Name"));
  };
  for (const auto& [first, last] : terms) {
    if (last - first == 3 && t[first + 1].kind == WqlToken::Kind::kOperator &&
        t[first + 1].text == "=" &&
        ((is_key(first) && t[first + 2].kind == WqlToken::Kind::kString) ||
         (t[first].kind == WqlToken::Kind::kString && is_key(first + 2)))) {
      return true;
    }
    if (last - first >= 2 && t[first].kind == WqlToken::Kind::kOpen &&
        closing(t, first, last) == last - 1 && pins_location(t, first, last)) {
      return true;
    }
  }
  return false;
}

struct FileScope {
  std::string cls;  // as written in the query
  bool pinned = false;
};

// nullopt when the query is not on a file class.
std::optional<FileScope> file_scope(const std::string& wql) {
  const auto tokens = wql_tokens(wql);
  if (!tokens) return std::nullopt;  // the WQL shape check reports it
  const auto& t = *tokens;
  const auto from = std::find_if(t.begin(), t.end(), [](const WqlToken& token) {
    return token.kind == WqlToken::Kind::kWord && common::iequals(token.text, "from");
  });
  if (from == t.end() || from + 1 == t.end() || !is_file_class((from + 1)->text))
    return std::nullopt;
  const auto where = from + 2;
  const bool pinned = where != t.end() && where->kind == WqlToken::Kind::kWord &&
                      common::iequals(where->text, "where") &&
                      pins_location(t, static_cast<std::size_t>(where - t.begin()) + 1, t.size());
  return FileScope{(from + 1)->text, pinned};
}

// The address if it is a global unicast one (Go's net.IP.IsGlobalUnicast, which
// windows_exporter's nic_address_info applies: private ranges count), else "".
std::string global_ip(const std::string& address) {
  if (address.find(':') != std::string::npos) {
    const std::string a = common::to_lower(address);
    const bool link_local = a.size() >= 4 && a.starts_with("fe") &&
                            (a[2] == '8' || a[2] == '9' || a[2] == 'a' || a[2] == 'b');
    if (a == "::" || a == "::1" || a.starts_with("ff") || link_local) return {};
    return address;
  }
  unsigned o[4] = {0, 0, 0, 0};
  char tail = 0;
  if (std::sscanf(address.c_str(), "%u.%u.%u.%u%c", &o[0], &o[1], &o[2], &o[3], &tail) != 4 ||
      o[0] > 255 || o[1] > 255 || o[2] > 255 || o[3] > 255) {
    return {};
  }
  if (o[0] == 0 || o[0] == 127 || o[0] >= 224 || (o[0] == 169 && o[1] == 254)) return {};
  return address;
}

std::string ip_family(const std::string& address) {
  if (address.empty()) return {};
  return address.find(':') != std::string::npos ? "ipv6" : "ipv4";
}

// "60" -> "UTC+01:00"; Win32_OperatingSystem.CurrentTimeZone is minutes east of UTC.
std::string utc_offset_label(const std::string& minutes_text) {
  int minutes = 0;
  const char* end = minutes_text.data() + minutes_text.size();
  const auto [ptr, ec] = std::from_chars(minutes_text.data(), end, minutes);
  if (ec != std::errc() || ptr != end || minutes < -24 * 60 || minutes > 24 * 60) {
    return minutes_text;
  }
  char buffer[16];
  const int magnitude = minutes < 0 ? -minutes : minutes;
  std::snprintf(buffer, sizeof(buffer), "UTC%c%02d:%02d", minutes < 0 ? '-' : '+', magnitude / 60,
                magnitude % 60);
  return buffer;
}

class DefinedCollector final : public Collector {
 public:
  std::string name_;
  std::vector<Query> queries_;
  std::vector<QuerySpec> specs_;
  Families family_templates_;  // name/help/type, no samples

  const std::string& name() const override { return name_; }
  const std::vector<Query>& queries() const override { return queries_; }

  std::expected<Families, std::string> transform(
      const std::vector<std::vector<winrm::Row>>& rows) const override {
    if (rows.size() != specs_.size()) {
      return std::unexpected("collector '" + name_ + "': expected " +
                             std::to_string(specs_.size()) + " row sets, got " +
                             std::to_string(rows.size()));
    }
    // The buffers of this collector's last result on this thread (recycle()), else a copy
    // of the templates: the copies, reserves and hash tables were ~15% of the poll workers'
    // CPU in malloc at 10,000 hosts (perf, bench/RESULTS.md).
    Scratch& scratch = scratch_for(id_);
    Families families = scratch.take(family_templates_);
    std::vector<SeenSeries>& seen = scratch.seen;
    seen.resize(families.size());
    for (SeenSeries& table : seen) table.clear();
    for (std::size_t q = 0; q < specs_.size(); ++q) {
      const QuerySpec& spec = specs_[q];
      if (spec.max_rows != 0 && rows[q].size() > spec.max_rows) {
        return std::unexpected("collector '" + name_ + "': query " + std::to_string(q + 1) +
                               " returned " + std::to_string(rows[q].size()) +
                               " rows, more than its max_rows (" + std::to_string(spec.max_rows) +
                               "); narrow the WHERE clause or raise max_rows");
      }
      reserve(spec, rows[q].size(), families, seen, scratch.more);
      std::vector<std::size_t>& absent = scratch.absent;
      absent.assign(spec.metrics.size(), 0);
      std::size_t used_rows = 0;
      for (const winrm::Row& row : rows[q]) {
        if (skipped(spec.skip, row)) continue;
        ++used_rows;
        for (std::size_t m = 0; m < spec.metrics.size(); ++m) {
          const MetricSpec& metric = spec.metrics[m];
          if (skipped(metric.skip, row)) continue;
          if (!emit(metric, row, families[metric.family], seen[metric.family])) ++absent[m];
        }
      }
      for (std::size_t m = 0; m < spec.metrics.size(); ++m) {
        if (used_rows > 0 && absent[m] == used_rows) {
          return std::unexpected("collector '" + name_ + "': query " + std::to_string(q + 1) +
                                 ": metric '" + spec.metrics[m].name + "': property '" +
                                 source_property(spec.metrics[m]) + "' missing from all " +
                                 std::to_string(used_rows) + " rows");
        }
      }
    }
    return families;
  }

  void recycle(Families families) const override {
    std::size_t bytes = 0;
    for (const MetricFamily& family : families) {
      bytes += family.label_text.capacity() + family.samples.capacity() * sizeof(Sample);
    }
    if (bytes > kMaxRecycledBytes) return;  // freed: a rare huge result is not kept per thread
    Scratch& scratch = scratch_for(id_);
    scratch.spare = std::move(families);
    scratch.has_spare = true;
  }

 private:
  class SeenSeries;
  struct Scratch;
  static constexpr std::size_t kMaxRecycledBytes = 4 << 20;

  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }
  // Unique per object, also when a freed collector's address is reused (config reloads).
  const std::uint64_t id_ = next_id();

  // Room for the samples a query's rows will likely add (one per row and metric, one per state
  // of an enum) and their label text, so that the families grow once per query rather than
  // doubling as they fill (a label text that outgrew its guess was copied again per family).
  static void reserve(const QuerySpec& spec, std::size_t rows, Families& families,
                      std::vector<SeenSeries>& seen,
                      std::vector<std::pair<std::size_t, std::size_t>>& more) {
    more.assign(families.size(), {0, 0});  // samples, bytes
    for (const MetricSpec& metric : spec.metrics) {
      const std::size_t samples = rows * (metric.enum_spec ? metric.enum_spec->values.size() : 1);
      more[metric.family].first += samples;
      more[metric.family].second += samples * label_bytes_guess(metric);
    }
    for (std::size_t f = 0; f < families.size(); ++f) {
      if (more[f].first == 0) continue;
      MetricFamily& family = families[f];
      family.samples.reserve(family.samples.size() + more[f].first);
      family.label_text.reserve(family.label_text.size() + more[f].second);
      seen[f].reserve(family.samples.size() + more[f].first);
    }
  }

  // The label text of one sample: `name="value"` per label with a value of a typical length,
  // the constant labels and the longest enum state exactly.
  static std::size_t label_bytes_guess(const MetricSpec& metric) {
    constexpr std::size_t kValueBytes = 24;  // a guess for values read from the row
    std::size_t bytes = 0;
    for (const LabelSpec& label : metric.labels) bytes += label.label.size() + 4 + kValueBytes;
    for (const auto& [label, value] : metric.const_labels) bytes += label.size() + value.size() + 4;
    if (metric.enum_spec) {
      std::size_t longest = 0;
      for (const std::string& value : metric.enum_spec->values) {
        longest = std::max(longest, value.size());
      }
      bytes += metric.enum_spec->label.size() + 4 + longest;
    }
    return bytes;
  }

  static bool skipped(const std::vector<SkipRule>& rules, const winrm::Row& row) {
    for (const SkipRule& rule : rules) {
      const auto value = property_text(row, rule.property);
      if (!value) continue;
      for (const std::string& candidate : rule.equals) {
        if (common::iequals(*value, candidate)) return true;
      }
    }
    return false;
  }

  static std::string source_property(const MetricSpec& metric) {
    if (metric.enum_spec) return metric.enum_spec->property;
    if (metric.hook) {
      std::string names;
      for (auto property : metric.hook->properties) {
        if (!names.empty()) names += ", ";
        names += property;
      }
      return names;
    }
    return metric.value_property;
  }

  static std::string label_value(const LabelSpec& spec, const winrm::Row& row) {
    if (spec.hook) return shape_label(spec, spec.hook->compute(row).value_or(""));
    return shape_label(spec, std::string(property_text(row, spec.property).value_or("")));
  }

  // A label that takes the property's value as it is (most labels): no string per sample.
  static bool verbatim(const LabelSpec& spec) {
    return !spec.hook && spec.trim_prefix.empty() && spec.split_separator.empty() &&
           spec.transforms.empty() && spec.map.empty();
  }

  // trim_prefix, split, transforms and map applied to a raw property value. Not yet valid
  // UTF-8: append_label_value sanitizes it as it escapes it.
  static std::string shape_label(const LabelSpec& spec, std::string value) {
    if (!spec.trim_prefix.empty() && value.starts_with(spec.trim_prefix)) {
      value.erase(0, spec.trim_prefix.size());
    }
    if (!spec.split_separator.empty()) {
      std::size_t start = 0;
      for (std::size_t i = 0; i < spec.split_index && start != std::string::npos; ++i) {
        start = value.find(spec.split_separator, start);
        if (start != std::string::npos) start += spec.split_separator.size();
      }
      if (start == std::string::npos) {
        value.clear();
      } else {
        const std::size_t end = value.find(spec.split_separator, start);
        value = value.substr(start, end == std::string::npos ? std::string::npos : end - start);
      }
    }
    for (Transform transform : spec.transforms) {
      switch (transform) {
        case Transform::kLowercase:
          value = common::to_lower(value);
          break;
        case Transform::kUppercase:
          for (char& c : value) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          break;
        case Transform::kSanitize:
          value = sanitize_identifier(value);
          break;
        case Transform::kTrim:
          value = std::string(common::trim(value));
          break;
        case Transform::kUtcOffset:
          value = utc_offset_label(value);
          break;
        case Transform::kForwardSlashes:
          std::replace(value.begin(), value.end(), '\\', '/');
          break;
        case Transform::kGlobalIp:
          value = global_ip(value);
          break;
        case Transform::kIpFamily:
          value = ip_family(value);
          break;
      }
    }
    if (!spec.map.empty()) {
      const auto mapped = std::find_if(spec.map.begin(), spec.map.end(),
                                       [&](const auto& entry) { return entry.first == value; });
      if (mapped != spec.map.end()) {
        value = mapped->second;
      } else if (spec.map_default) {
        value = *spec.map_default;
      }
    }
    return value;
  }

  static std::optional<double> number_of(const winrm::Property& property) {
    // uint64 first: perf counters exceed 2^53 and must round once, not twice.
    if (const auto exact = winrm::uint64_value(property)) return static_cast<double>(*exact);
    return winrm::number_value(property);
  }

  // The sample value before scaling; nullopt (absent=false) for nil or bad data.
  static std::optional<double> raw_value(const MetricSpec& metric, const winrm::Row& row,
                                         bool& absent) {
    if (metric.info) return 1.0;
    if (metric.hook) {
      for (auto property : metric.hook->properties) {
        if (row.find(property) == nullptr) absent = true;
      }
      return absent ? std::nullopt : metric.hook->compute(row);
    }
    // Each property looked up once (a hashed lookup per call was ~2% of the CPU at 10,000
    // hosts, and a number was looked up up to three times).
    const winrm::Property* property = find_property(row, metric.value_property);
    if (property == nullptr) {
      absent = true;
      return std::nullopt;
    }
    std::optional<double> value;
    switch (metric.value_type) {
      case ValueType::kNumber:
        value = number_of(*property);
        break;
      case ValueType::kDatetime:
        value = winrm::unix_time_value(*property);
        break;
      case ValueType::kBoolean:
        if (const auto flag = winrm::boolean_value(*property)) value = *flag ? 1.0 : 0.0;
        break;
    }
    if (value && !metric.divide_by.empty()) {
      const winrm::Property* by = find_property(row, metric.divide_by);
      const auto divisor = by == nullptr ? std::nullopt : number_of(*by);
      if (!divisor || *divisor == 0) return std::nullopt;
      *value /= *divisor;
    }
    return value;
  }

  // Series already emitted in one family, by their label text: an open-addressing table of
  // sample indexes keyed by a hash of the text. A map keyed by the joined values cost a key
  // string and a node per sample: the largest malloc caller of a poll (perf at 2,000 hosts,
  // bench/RESULTS.md, issue 10).
  class SeenSeries {
   public:
    // Room for `series` without growing (at most half full).
    // Empty, keeping its table (the next poll's series are about as many).
    void clear() {
      std::fill(slots_.begin(), slots_.end(), Slot{});
      used_ = 0;
    }

    void reserve(std::size_t series) {
      std::size_t size = std::max<std::size_t>(16, slots_.size());
      while (series * 2 > size) size *= 2;
      if (size > slots_.size()) rehash(size);
    }

    // The index of an earlier sample with the same label text; else nullopt, and the
    // sample about to be appended (index samples.size()) is recorded.
    std::optional<std::size_t> find_or_add(const MetricFamily& family, std::string_view labels) {
      if ((used_ + 1) * 2 > slots_.size()) grow();
      const std::uint64_t hash = std::hash<std::string_view>{}(labels);
      const std::size_t mask = slots_.size() - 1;
      for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        Slot& slot = slots_[i];
        if (slot.index == 0) {
          slot = Slot{hash, family.samples.size() + 1};
          ++used_;
          return std::nullopt;
        }
        if (slot.hash == hash && family.label_pairs(family.samples[slot.index - 1]) == labels) {
          return slot.index - 1;
        }
      }
    }

   private:
    struct Slot {
      std::uint64_t hash = 0;
      std::size_t index = 0;  // sample index + 1; 0: empty
    };

    void grow() { rehash(std::max<std::size_t>(16, slots_.size() * 2)); }

    void rehash(std::size_t size) {
      std::vector<Slot> old = std::move(slots_);
      slots_.assign(size, Slot{});
      const std::size_t mask = slots_.size() - 1;
      for (const Slot& slot : old) {
        if (slot.index == 0) continue;
        std::size_t i = slot.hash & mask;
        while (slots_[i].index != 0) i = (i + 1) & mask;
        slots_[i] = slot;
      }
    }

    std::vector<Slot> slots_;
    std::size_t used_ = 0;
  };

  // What a transform keeps per thread and collector between polls: the hash tables, the
  // counters, and the families of the last result handed back (recycle), whose strings and
  // vectors keep their capacity.
  struct Scratch {
    std::uint64_t id = 0;
    std::uint64_t last_use = 0;
    std::vector<SeenSeries> seen;
    std::vector<std::pair<std::size_t, std::size_t>> more;
    std::vector<std::size_t> absent;
    Families spare;
    bool has_spare = false;

    // The templates' names, HELP and types in the spare families' storage (no allocation
    // when it fits), without samples; a copy of the templates when there is no spare.
    Families take(const Families& templates) {
      if (!has_spare || spare.size() != templates.size()) return templates;
      Families out = std::move(spare);
      spare.clear();
      has_spare = false;
      for (std::size_t i = 0; i < out.size(); ++i) {
        out[i].name = templates[i].name;
        out[i].help = templates[i].help;
        out[i].type = templates[i].type;
        out[i].samples.clear();
        out[i].label_text.clear();
      }
      return out;
    }
  };

  // This thread's scratch for a collector; the least recently used one is reset for a new
  // collector beyond kMaxScratch (more collectors than that polled by one thread).
  static Scratch& scratch_for(std::uint64_t id) {
    static constexpr std::size_t kMaxScratch = 32;
    thread_local std::vector<std::unique_ptr<Scratch>> scratches;
    thread_local std::uint64_t clock = 0;
    ++clock;
    Scratch* oldest = nullptr;
    for (const auto& scratch : scratches) {
      if (scratch->id == id) {
        scratch->last_use = clock;
        return *scratch;
      }
      if (oldest == nullptr || scratch->last_use < oldest->last_use) oldest = scratch.get();
    }
    if (scratches.size() < kMaxScratch) {
      oldest = scratches.emplace_back(std::make_unique<Scratch>()).get();
    } else {
      *oldest = Scratch{};
    }
    oldest->id = id;
    oldest->last_use = clock;
    return *oldest;
  }

  // Takes the label pairs appended to family.label_text from `start` on as a new sample.
  // Two rows that map to the same series (e.g. NIC names equal after sanitizing) would make
  // the exposition invalid: the first one wins, and the text is dropped again. A count metric
  // adds up instead: one per row.
  static void add_sample(MetricFamily& family, SeenSeries& seen, std::size_t start, double value,
                         bool count = false) {
    const std::string_view labels = std::string_view(family.label_text).substr(start);
    if (const auto earlier = seen.find_or_add(family, labels)) {
      if (count) family.samples[*earlier].value += value;
      family.label_text.resize(start);
      return;
    }
    family.samples.push_back(Sample{static_cast<std::uint32_t>(start),
                                    static_cast<std::uint32_t>(labels.size()), value});
  }

  // Appends the metric's samples for one row. Returns false when the source
  // property is missing from the row altogether (not merely nil).
  static bool emit(const MetricSpec& metric, const winrm::Row& row, MetricFamily& family,
                   SeenSeries& seen) {
    const auto each = std::find_if(metric.labels.begin(), metric.labels.end(),
                                   [](const LabelSpec& spec) { return spec.each; });
    if (each == metric.labels.end()) return emit_one(metric, row, family, seen, nullptr);
    // One series per array item; an absent or nil array gives none.
    const winrm::Property* array = find_property(row, each->property);
    if (array == nullptr) return false;
    std::string text;  // one buffer for all items
    for (const std::string_view item : array->values) {
      text.assign(item);
      emit_one(metric, row, family, seen, &text);
    }
    return true;
  }

  // `item`: the array item the metric's `each` labels take, or null.
  static bool emit_one(const MetricSpec& metric, const winrm::Row& row, MetricFamily& family,
                       SeenSeries& seen, const std::string* item) {
    // The sample's labels go straight into the family's text; an early return drops them.
    std::string& text = family.label_text;
    const std::size_t start = text.size();
    for (const LabelSpec& spec : metric.labels) {
      if (spec.each) {
        std::string value = shape_label(spec, *item);
        if (value.empty()) {  // an item the label's transforms leave out
          text.resize(start);
          return true;
        }
        append_label_pair(text, start, spec.label, value);
      } else if (verbatim(spec)) {
        append_label_pair(text, start, spec.label, property_text(row, spec.property).value_or(""));
      } else {
        append_label_pair(text, start, spec.label, label_value(spec, row));
      }
    }
    for (const auto& [label, value] : metric.const_labels) {
      append_label_pair(text, start, label, value);
    }

    if (metric.enum_spec) {
      const EnumSpec& spec = *metric.enum_spec;
      const auto current = property_text(row, spec.property);
      if (!current) {
        text.resize(start);
        return find_property(row, spec.property) != nullptr;
      }
      std::string state = spec.lowercase ? common::to_lower(*current) : std::string(*current);
      if (!spec.map.empty()) {
        const auto mapped = std::find_if(spec.map.begin(), spec.map.end(),
                                         [&](const auto& entry) { return entry.first == state; });
        state = mapped == spec.map.end() ? std::string() : mapped->second;
      }
      // One sample per state, each its own copy of the row's labels plus the state. The copy
      // is kept in a buffer the thread reuses: one malloc per row and enum metric before.
      thread_local std::string row_labels;
      row_labels.assign(text, start);
      text.resize(start);
      for (const std::string& candidate : spec.values) {
        const std::size_t sample_start = text.size();
        text += row_labels;
        append_label_pair(text, sample_start, spec.label, candidate);
        add_sample(family, seen, sample_start, state == candidate ? 1.0 : 0.0);
      }
      return true;
    }

    if (metric.count) {
      add_sample(family, seen, start, 1.0, true);
      return true;
    }
    bool absent = false;
    const auto value = raw_value(metric, row, absent);
    if (absent || !value) {
      text.resize(start);
      return !absent;
    }
    const double scaled =
        metric.scale_divisor != 0 ? *value / metric.scale_divisor : *value * metric.scale;
    add_sample(family, seen, start, scaled);
    return true;
  }
};

// ---------------------------------------------------------------------------------
// Parsing

class Parser {
 public:
  explicit Parser(const DefinitionOptions& options) : options_(options) {}

  std::shared_ptr<DefinedCollector> parse(const YAML::Node& node) {
    enter(node);
    if (!node.IsMap()) fail("collector definition", "must be a mapping");
    const std::string fallback = "collector definition";
    const YAML::Node name_node = node["name"];
    if (!name_node || !name_node.IsScalar()) fail(fallback, "field 'name' is required");
    collector_ = std::make_shared<DefinedCollector>();
    collector_->name_ = name_node.Scalar();
    where_ = "collector '" + collector_->name_ + "'";
    if (!valid_collector_name(collector_->name_)) {
      fail(where_, "field 'name': must match [a-z_][a-z0-9_]*");
    }
    check_keys(node, {"name", "help", "queries"}, where_);
    if (node["help"]) scalar(node["help"], where_, "help");
    const YAML::Node queries = node["queries"];
    if (!queries || !queries.IsSequence() || queries.size() == 0) {
      fail(where_, "field 'queries': must be a non-empty list");
    }
    for (std::size_t i = 0; i < queries.size(); ++i) parse_query(queries[i], i);
    return collector_;
  }

 private:
  // Errors point at the innermost node entered (the definition, a query, a metric, a label)
  // or at the field at fault; options_.locate turns that into "file:line".
  void enter(const YAML::Node& node) {
    if (!node.IsDefined() || node.Mark().line < 0) return;
    node_.reset(node);  // rebind: yaml-cpp's operator= would write into the old node
    mark_ = node.Mark();
  }

  // "field 'type': ..." about the entered mapping points at that field's value.
  [[noreturn]] void fail(const std::string& where, const std::string& message) const {
    YAML::Mark mark = mark_;
    if (message.starts_with("field '") && node_.IsMap()) {
      const std::size_t end = message.find_first_of("'.", 7);
      const YAML::Node value = node_[message.substr(7, end - 7)];
      if (value.IsDefined() && value.Mark().line >= 0) mark = value.Mark();
    }
    const std::string prefix = options_.locate ? options_.locate(mark) + ": " : "";
    throw DefinitionError(prefix + where + ": " + message);
  }

  // Points at `node` itself (a malformed value, an unknown key).
  [[noreturn]] void fail_at(const YAML::Node& node, const std::string& where,
                            const std::string& message) {
    enter(node);
    node_.reset();  // no "field '...'" lookup: the node is the place
    fail(where, message);
  }

  // The strict-key rule the config and the web config share (common/yaml.h).
  void check_keys(const YAML::Node& node, const std::vector<std::string_view>& allowed,
                  const std::string& where) {
    const auto problem = common::yaml::check_keys(node, allowed);
    if (!problem) return;
    using Kind = common::yaml::KeyProblem::Kind;
    if (problem->kind == Kind::kNotScalar)
      fail_at(problem->key, where, "field names must be strings");
    if (problem->kind == Kind::kRepeated) {
      fail_at(problem->key, where, "repeated field '" + problem->name + "'");
    }
    std::string list;
    for (auto name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
    fail_at(
        problem->key, where,
        "unknown field '" + problem->name + "'" + problem->suggestion + " (allowed: " + list + ")");
  }

  std::string scalar(const YAML::Node& node, const std::string& where, std::string_view field) {
    if (!node.IsScalar()) {
      fail_at(node, where, "field '" + std::string(field) + "': must be a string");
    }
    return node.Scalar();
  }

  std::vector<std::string> string_list(const YAML::Node& node, const std::string& where,
                                       std::string_view field) {
    std::vector<std::string> out;
    if (node.IsScalar()) {
      out.push_back(node.Scalar());
    } else if (node.IsSequence()) {
      for (const auto& item : node) out.push_back(scalar(item, where, field));
    } else {
      fail_at(node, where,
              "field '" + std::string(field) + "': must be a string or a list of strings");
    }
    return out;
  }

  bool boolean(const YAML::Node& node, const std::string& where, std::string_view field) {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      fail_at(node, where, "field '" + std::string(field) + "': must be true or false");
    }
    return value;
  }

  // "SELECT A, B FROM Class [WHERE ...]" -> {A, B}. Explicit lists only: they keep
  // responses small and let every referenced property be checked here.
  std::vector<std::string> select_list(const std::string& wql, const std::string& where) {
    // Tokens split on whitespace; commas stay inside tokens ("A," "B").
    std::vector<std::string> tokens;
    std::string token;
    for (char c : wql + " ") {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!token.empty()) tokens.push_back(std::move(token));
        token.clear();
      } else {
        token += c;
      }
    }
    const auto from = std::find_if(tokens.begin(), tokens.end(),
                                   [](const std::string& t) { return common::iequals(t, "from"); });
    const bool shape_ok = tokens.size() >= 4 && common::iequals(tokens[0], "select") &&
                          from != tokens.end() && from - tokens.begin() >= 2 &&
                          from + 1 != tokens.end() && valid_label_name(*(from + 1)) &&
                          (from + 2 == tokens.end() ||
                           (common::iequals(*(from + 2), "where") && from + 3 != tokens.end()));
    if (!shape_ok)
      fail(where, "field 'wql': expected SELECT <properties> FROM <class> [WHERE ...]");
    std::string list;
    for (auto it = tokens.begin() + 1; it != from; ++it) list += *it;
    std::vector<std::string> properties;
    std::size_t start = 0;
    while (start <= list.size()) {
      const std::size_t comma = std::min(list.find(',', start), list.size());
      const std::string property = list.substr(start, comma - start);
      if (property == "*") {
        fail(where, "field 'wql': SELECT * is not allowed; list the properties explicitly");
      }
      if (!valid_label_name(property)) {
        fail(where, "field 'wql': '" + property + "' is not a property name");
      }
      properties.push_back(property);
      start = comma + 1;
    }
    return properties;
  }

  // "root/cimv2", "root\\WebAdministration": path segments of [A-Za-z0-9_].
  static bool valid_namespace(std::string_view text) {
    bool segment_start = true;
    for (char c : text) {
      if (c == '/' || c == '\\') {
        if (segment_start) return false;
        segment_start = true;
      } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
        segment_start = false;
      } else {
        return false;
      }
    }
    return !segment_start;
  }

  void require_selected(const QuerySpec& query, std::string_view property, const std::string& where,
                        std::string_view field) {
    for (const std::string& selected : query.selected) {
      if (common::iequals(selected, property)) return;
    }
    fail(where, "field '" + std::string(field) + "': property '" + std::string(property) +
                    "' is not in the query's SELECT list");
  }

  void parse_query(const YAML::Node& node, std::size_t index) {
    enter(node);
    const std::string where = where_ + ", query " + std::to_string(index + 1);
    if (!node.IsMap()) fail(where, "must be a mapping");
    check_keys(node, {"namespace", "wql", "skip", "metrics", "max_rows", "refresh"}, where);
    Query query;
    if (node["namespace"]) {
      query.wmi_namespace = scalar(node["namespace"], where, "namespace");
      if (!valid_namespace(query.wmi_namespace)) {
        fail(where, "field 'namespace': '" + query.wmi_namespace +
                        "' is not a WMI namespace like root/cimv2");
      }
    }
    if (!node["wql"]) fail(where, "field 'wql' is required");
    query.wql = std::string(common::trim(scalar(node["wql"], where, "wql")));
    if (auto error = collectors::check_wql_placeholders(query.wql))
      fail(where, "field 'wql': " + *error);
    QuerySpec spec;
    spec.selected = select_list(query.wql, where);
    if (const YAML::Node max_rows = node["max_rows"]) {
      long long cap = 0;
      if (!max_rows.IsScalar() || !YAML::convert<long long>::decode(max_rows, cap) || cap < 1 ||
          cap > 1000000) {
        fail(where, "field 'max_rows': must be a whole number from 1 to 1000000");
      }
      spec.max_rows = static_cast<std::size_t>(cap);
    }
    if (const YAML::Node refresh = node["refresh"]) {
      const auto parsed = refresh.IsScalar() ? common::parse_duration(refresh.Scalar())
                                             : std::optional<std::chrono::milliseconds>();
      if (!parsed || *parsed > kMaxRefresh) {
        fail(where, "field 'refresh': must be a duration from 0s to 24h, like 15m");
      }
      // A sliding window ({{now-15m}}) asks about a different span at every poll.
      if (parsed->count() > 0 && collectors::has_wql_placeholders(query.wql)) {
        fail(where, "field 'refresh': not valid with a {{now}} placeholder in 'wql'");
      }
      query.refresh = *parsed;
    }
    if (const auto scope = file_scope(query.wql)) {
      if (!scope->pinned) {
        fail(where, "field 'wql': " + scope->cls +
                        " without a directory or a file in its WHERE clause makes WMI walk "
                        "every file on every drive; add Drive = 'C:' AND Path = '\\\\dir\\\\' "
                        "(or Name = 'c:\\\\dir\\\\file.log'), joined to the rest by AND");
      }
      if (spec.max_rows == 0) {
        fail(where, "field 'max_rows' is required for " + scope->cls +
                        " queries: a directory can hold any number of files");
      }
    }

    if (const YAML::Node skip = node["skip"]) spec.skip = parse_skip(skip, spec, where);

    const YAML::Node metrics = node["metrics"];
    if (!metrics || !metrics.IsSequence() || metrics.size() == 0) {
      fail(where, "field 'metrics': must be a non-empty list");
    }
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      spec.metrics.push_back(
          parse_metric(metrics[i], spec, where + ", metric " + std::to_string(i + 1)));
    }
    collector_->queries_.push_back(std::move(query));
    collector_->specs_.push_back(std::move(spec));
  }

  LabelSpec parse_label(const std::string& label, const YAML::Node& node, const QuerySpec& query,
                        const std::string& where) {
    enter(node);
    const std::string label_where = where + ", label '" + label + "'";
    LabelSpec spec;
    spec.label = label;
    if (node.IsScalar()) {
      spec.property = node.Scalar();
      require_selected(query, spec.property, label_where, "property");
      return spec;
    }
    if (!node.IsMap()) fail(label_where, "must be a property name or a mapping");
    check_keys(node,
               {"property", "hook", "transform", "trim_prefix", "split", "map", "default", "each"},
               label_where);
    if (node["property"].IsDefined() == node["hook"].IsDefined()) {
      fail(label_where, "needs exactly one of 'property' or 'hook'");
    }
    if (node["property"]) {
      spec.property = scalar(node["property"], label_where, "property");
      require_selected(query, spec.property, label_where, "property");
    } else {
      const std::string hook_name = scalar(node["hook"], label_where, "hook");
      spec.hook = internal::find_label_hook(hook_name);
      if (!spec.hook) {
        fail(label_where, "field 'hook': unknown label hook '" + hook_name +
                              "' (known: " + internal::label_hook_names() + ")");
      }
      for (auto property : spec.hook->properties) {
        require_selected(query, property, label_where, "hook");
      }
    }
    if (node["trim_prefix"])
      spec.trim_prefix = scalar(node["trim_prefix"], label_where, "trim_prefix");
    if (const YAML::Node split = node["split"]) {
      if (!split.IsMap()) fail(label_where, "field 'split': must be {separator, index}");
      check_keys(split, {"separator", "index"}, label_where + ", split");
      if (!split["separator"] || !split["index"]) {
        fail(label_where, "field 'split': needs 'separator' and 'index'");
      }
      spec.split_separator = scalar(split["separator"], label_where, "split.separator");
      int index = -1;
      if (!YAML::convert<int>::decode(split["index"], index) || index < 0 ||
          spec.split_separator.empty()) {
        fail(label_where, "field 'split': separator must be non-empty and index >= 0");
      }
      spec.split_index = static_cast<std::size_t>(index);
    }
    if (const YAML::Node transforms = node["transform"]) {
      for (const std::string& name : string_list(transforms, label_where, "transform")) {
        if (name == "lowercase") {
          spec.transforms.push_back(Transform::kLowercase);
        } else if (name == "uppercase") {
          spec.transforms.push_back(Transform::kUppercase);
        } else if (name == "sanitize") {
          spec.transforms.push_back(Transform::kSanitize);
        } else if (name == "trim") {
          spec.transforms.push_back(Transform::kTrim);
        } else if (name == "utc_offset") {
          spec.transforms.push_back(Transform::kUtcOffset);
        } else if (name == "forward_slashes") {
          spec.transforms.push_back(Transform::kForwardSlashes);
        } else if (name == "global_ip") {
          spec.transforms.push_back(Transform::kGlobalIp);
        } else if (name == "ip_family") {
          spec.transforms.push_back(Transform::kIpFamily);
        } else {
          fail(label_where, "field 'transform': unknown transform '" + name +
                                "' (known: lowercase, uppercase, sanitize, trim, utc_offset, "
                                "forward_slashes, global_ip, ip_family)");
        }
      }
    }
    if (const YAML::Node map = node["map"]) {
      if (!map.IsMap() || map.size() == 0) fail(label_where, "field 'map': must be a mapping");
      for (const auto& entry : map) {
        const std::string from = scalar(entry.first, label_where, "map");
        spec.map.emplace_back(from, scalar(entry.second, label_where, "map." + from));
      }
    }
    if (node["default"]) {
      if (!node["map"]) fail(label_where, "field 'default': only valid with 'map'");
      spec.map_default = scalar(node["default"], label_where, "default");
    }
    if (node["each"]) {
      spec.each = boolean(node["each"], label_where, "each");
      if (spec.each && spec.hook) fail(label_where, "field 'each': needs a property, not a hook");
    }
    return spec;
  }

  std::vector<SkipRule> parse_skip(const YAML::Node& skip, const QuerySpec& query,
                                   const std::string& where) {
    if (!skip.IsSequence()) fail(where, "field 'skip': must be a list");
    std::vector<SkipRule> rules;
    for (const auto& rule_node : skip) {
      if (!rule_node.IsMap()) fail(where, "field 'skip': entries must be mappings");
      check_keys(rule_node, {"property", "equals"}, where + ", skip");
      if (!rule_node["property"] || !rule_node["equals"]) {
        fail(where, "field 'skip': entries need 'property' and 'equals'");
      }
      SkipRule rule{scalar(rule_node["property"], where, "skip.property"),
                    string_list(rule_node["equals"], where, "skip.equals")};
      require_selected(query, rule.property, where, "skip.property");
      rules.push_back(std::move(rule));
    }
    return rules;
  }

  MetricSpec parse_metric(const YAML::Node& node, const QuerySpec& query, std::string where) {
    enter(node);
    if (!node.IsMap()) fail(where, "must be a mapping");
    if (!node["name"]) fail(where, "field 'name' is required");
    MetricSpec metric;
    metric.name = scalar(node["name"], where, "name");
    where = where_ + ", metric '" + metric.name + "'";
    check_keys(node,
               {"name", "type", "help", "value", "value_type", "scale", "divide_by", "hook", "info",
                "count", "labels", "const_labels", "enum", "skip", "compat"},
               where);
    if (!valid_metric_name(metric.name)) {
      fail(where, "field 'name': not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
    }
    if (options_.builtin && !metric.name.starts_with("windows_")) {
      fail(where, "field 'name': built-in metric names start with windows_");
    }

    if (!node["type"]) fail(where, "field 'type' is required (gauge or counter)");
    const std::string type_name = scalar(node["type"], where, "type");
    MetricType type = MetricType::kGauge;
    if (type_name == "counter") {
      type = MetricType::kCounter;
    } else if (type_name != "gauge") {
      fail(where, "field 'type': unknown type '" + type_name + "' (gauge or counter)");
    }
    const bool ends_total = metric.name.ends_with("_total");
    if (type == MetricType::kCounter && !ends_total) {
      fail(where, "field 'name': counter names must end in _total");
    }
    if (type != MetricType::kCounter && ends_total &&
        !(options_.builtin && windows_exporter_gauge_total(metric.name))) {
      fail(where, "field 'name': only counters may end in _total");
    }
    std::string help;
    if (node["help"]) help = scalar(node["help"], where, "help");

    // Exactly one value source.
    const int sources = int(node["value"].IsDefined()) + int(node["hook"].IsDefined()) +
                        int(node["info"].IsDefined() && boolean(node["info"], where, "info")) +
                        int(node["count"].IsDefined() && boolean(node["count"], where, "count")) +
                        int(node["enum"].IsDefined());
    if (sources != 1) {
      fail(where, "needs exactly one of 'value', 'hook', 'info: true', 'count: true' or 'enum'");
    }
    if (node["value"]) {
      metric.value_property = scalar(node["value"], where, "value");
      require_selected(query, metric.value_property, where, "value");
    }
    if (node["value_type"]) {
      if (!node["value"]) fail(where, "field 'value_type': only valid with 'value'");
      const std::string value_type = scalar(node["value_type"], where, "value_type");
      if (value_type == "datetime") {
        metric.value_type = ValueType::kDatetime;
      } else if (value_type == "boolean") {
        metric.value_type = ValueType::kBoolean;
      } else if (value_type != "number") {
        fail(where, "field 'value_type': unknown '" + value_type + "' (number, datetime, boolean)");
      }
    }
    if (node["hook"]) {
      const std::string hook_name = scalar(node["hook"], where, "hook");
      metric.hook = internal::find_value_hook(hook_name);
      if (!metric.hook) {
        fail(where, "field 'hook': unknown value hook '" + hook_name +
                        "' (known: " + internal::value_hook_names() + ")");
      }
      for (auto property : metric.hook->properties)
        require_selected(query, property, where, "hook");
    }
    metric.info = node["info"] && boolean(node["info"], where, "info");
    metric.count = node["count"] && boolean(node["count"], where, "count");
    if (metric.count && type != MetricType::kGauge) {
      fail(where,
           "field 'type': count metrics are gauges (the rows of one poll, not a running total)");
    }
    if (node["scale"]) {
      if (!node["value"] && !node["hook"])
        fail(where, "field 'scale': only valid with 'value' or 'hook'");
      if (!node["scale"].IsScalar() ||
          !YAML::convert<double>::decode(node["scale"], metric.scale) ||
          !std::isfinite(metric.scale) || metric.scale == 0) {
        fail(where, "field 'scale': must be a finite non-zero number");
      }
      const double reciprocal = 1.0 / metric.scale;
      if (std::abs(metric.scale) < 1 && std::abs(reciprocal - std::round(reciprocal)) < 1e-6) {
        metric.scale_divisor = std::round(reciprocal);
      }
    }
    if (node["divide_by"]) {
      if (!node["value"]) fail(where, "field 'divide_by': only valid with 'value'");
      metric.divide_by = scalar(node["divide_by"], where, "divide_by");
      require_selected(query, metric.divide_by, where, "divide_by");
    }

    std::set<std::string> label_names;
    const auto add_label_name = [&](const std::string& label, std::string_view field) {
      if (!valid_label_name(label)) {
        fail(where, "field '" + std::string(field) + "': '" + label +
                        "' is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)");
      }
      if (!label_names.insert(label).second) {
        fail(where, "field '" + std::string(field) + "': label '" + label + "' defined twice");
      }
    };
    if (const YAML::Node labels = node["labels"]) {
      if (!labels.IsMap()) fail(where, "field 'labels': must be a mapping of label: property");
      for (const auto& entry : labels) {
        const std::string label = entry.first.Scalar();
        add_label_name(label, "labels");
        metric.labels.push_back(parse_label(label, entry.second, query, where));
      }
      const LabelSpec* first_each = nullptr;
      for (const LabelSpec& spec : metric.labels) {
        if (!spec.each) continue;
        if (first_each == nullptr) first_each = &spec;
        if (!common::iequals(spec.property, first_each->property)) {
          fail(where, "field 'labels': every 'each' label must read the same array property");
        }
      }
    }
    if (const YAML::Node const_labels = node["const_labels"]) {
      if (!const_labels.IsMap()) fail(where, "field 'const_labels': must be a mapping");
      for (const auto& entry : const_labels) {
        const std::string label = entry.first.Scalar();
        add_label_name(label, "const_labels");
        const std::string value = scalar(entry.second, where, "const_labels." + label);
        if (!common::is_valid_utf8(value))
          fail(where, "field 'const_labels." + label + "': not valid UTF-8");
        metric.const_labels.emplace_back(label, value);
      }
    }
    if (const YAML::Node enum_node = node["enum"]) {
      const std::string enum_where = where + ", enum";
      if (!enum_node.IsMap()) fail(where, "field 'enum': must be a mapping");
      check_keys(enum_node, {"property", "label", "values", "lowercase", "map"}, enum_where);
      if (!enum_node["property"] || !enum_node["label"] || !enum_node["values"]) {
        fail(where, "field 'enum': needs 'property', 'label' and 'values'");
      }
      EnumSpec spec;
      spec.property = scalar(enum_node["property"], enum_where, "property");
      require_selected(query, spec.property, enum_where, "property");
      spec.label = scalar(enum_node["label"], enum_where, "label");
      add_label_name(spec.label, "enum.label");
      spec.values = string_list(enum_node["values"], enum_where, "values");
      if (spec.values.empty()) fail(enum_where, "field 'values': must not be empty");
      std::set<std::string> unique(spec.values.begin(), spec.values.end());
      if (unique.size() != spec.values.size()) fail(enum_where, "field 'values': duplicates");
      if (enum_node["lowercase"])
        spec.lowercase = boolean(enum_node["lowercase"], enum_where, "lowercase");
      if (const YAML::Node map = enum_node["map"]) {
        if (!map.IsMap() || map.size() == 0) fail(enum_where, "field 'map': must be a mapping");
        for (const auto& entry : map) {
          std::string raw = scalar(entry.first, enum_where, "map");
          if (spec.lowercase) raw = common::to_lower(raw);
          const std::string state = scalar(entry.second, enum_where, "map." + raw);
          if (!unique.contains(state)) {
            fail(enum_where, "field 'map': '" + state + "' is not one of 'values'");
          }
          spec.map.emplace_back(std::move(raw), state);
        }
      }
      if (type != MetricType::kGauge) fail(where, "field 'type': enum metrics are gauges");
      metric.enum_spec = std::move(spec);
    }
    if (metric.info && type != MetricType::kGauge)
      fail(where, "field 'type': info metrics are gauges");
    if (const YAML::Node skip = node["skip"]) metric.skip = parse_skip(skip, query, where);
    if (const YAML::Node compat = node["compat"]) {
      metric.name_sets = string_list(compat, where, "compat");
      for (const std::string& set : metric.name_sets) {
        if (!known_name_set(set)) {
          fail(where, "field 'compat': unknown name set '" + set + "' (v030, pre030)");
        }
      }
    }

    metric.family = family_index(metric.name, type, help, label_names, where);
    return metric;
  }

  // Entries may share a metric name (e.g. one per cpu mode); they form one family
  // and must agree on type and label names.
  std::size_t family_index(const std::string& name, MetricType type, const std::string& help,
                           const std::set<std::string>& label_names, const std::string& where) {
    Families& families = collector_->family_templates_;
    for (std::size_t i = 0; i < families.size(); ++i) {
      if (families[i].name != name) continue;
      if (families[i].type != type) fail(where, "field 'type': differs from the earlier entry");
      if (family_labels_[i] != label_names) {
        fail(where, "field 'labels': label names differ from the earlier entry of this metric");
      }
      if (!help.empty() && help != families[i].help) {
        fail(where, "field 'help': differs from the earlier entry (omit it on repeats)");
      }
      return i;
    }
    if (help.empty()) fail(where, "field 'help' is required");
    families.push_back(MetricFamily{name, help, type, {}, {}});
    family_labels_.push_back(label_names);
    return families.size() - 1;
  }

  DefinitionOptions options_;
  YAML::Node node_;  // the innermost mapping entered (definition, query, metric, label)
  YAML::Mark mark_ = YAML::Mark::null_mark();
  std::shared_ptr<DefinedCollector> collector_;
  std::vector<std::set<std::string>> family_labels_;
  std::string where_;
};

}  // namespace

bool known_name_set(std::string_view name) {
  return name == kNameSetV030 || name == kNameSetPre030;
}

CollectorPtr select_name_sets(const CollectorPtr& collector, const std::vector<std::string>& sets) {
  const auto* defined = dynamic_cast<const DefinedCollector*>(collector.get());
  if (defined == nullptr) return collector;
  const auto wanted = [&](const MetricSpec& metric) {
    if (metric.name_sets.empty()) return true;
    return std::any_of(metric.name_sets.begin(), metric.name_sets.end(), [&](const auto& set) {
      return std::find(sets.begin(), sets.end(), set) != sets.end();
    });
  };
  bool all_kept = true;
  for (const QuerySpec& spec : defined->specs_) {
    for (const MetricSpec& metric : spec.metrics) all_kept &= wanted(metric);
  }
  if (all_kept) return collector;

  auto selected = std::make_shared<DefinedCollector>();
  selected->name_ = defined->name_;
  std::vector<std::size_t> family_map(defined->family_templates_.size(), SIZE_MAX);
  for (std::size_t q = 0; q < defined->specs_.size(); ++q) {
    QuerySpec spec = defined->specs_[q];
    std::erase_if(spec.metrics, [&](const MetricSpec& metric) { return !wanted(metric); });
    if (spec.metrics.empty()) continue;  // no WQL for a query nothing reads
    for (MetricSpec& metric : spec.metrics) {
      std::size_t& mapped = family_map[metric.family];
      if (mapped == SIZE_MAX) {
        mapped = selected->family_templates_.size();
        selected->family_templates_.push_back(defined->family_templates_[metric.family]);
      }
      metric.family = mapped;
    }
    selected->queries_.push_back(defined->queries_[q]);
    selected->specs_.push_back(std::move(spec));
  }
  return selected;
}

std::expected<CollectorPtr, std::string> parse_collector_definition(
    const YAML::Node& node, const DefinitionOptions& options) {
  try {
    return Parser(options).parse(node);
  } catch (const DefinitionError& error) {
    return std::unexpected(std::string(error.what()));
  } catch (const YAML::Exception& error) {
    return std::unexpected("collector definition: " + std::string(error.what()));
  } catch (const std::exception& error) {
    return std::unexpected("collector definition: " + std::string(error.what()));
  }
}

std::expected<CollectorPtr, std::string> parse_collector_definition(const YAML::Node& node) {
  return parse_collector_definition(node, DefinitionOptions{});
}

std::expected<CollectorPtr, std::string> parse_collector_definition_text(
    std::string_view yaml, const DefinitionOptions& options) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& error) {
    // yaml-cpp's what() carries "yaml-cpp: error at line L, column C"; with a location the
    // line is the file's.
    if (options.locate) return std::unexpected(options.locate(error.mark) + ": yaml: " + error.msg);
    return std::unexpected("collector definition: " + std::string(error.what()));
  } catch (const YAML::Exception& error) {
    return std::unexpected("collector definition: " + std::string(error.what()));
  }
  return parse_collector_definition(node, options);
}

}  // namespace collectors
