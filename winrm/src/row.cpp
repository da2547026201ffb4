#include "winrm/row.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <system_error>

#include "common/strings.h"
#include "seeded_hash.h"

namespace winrm {

namespace {

using common::iequals;
using common::trim;

template <typename T>
std::optional<T> parse_integer(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_double(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  // from_chars would also take "inf"/"nan"; WMI never sends those as numbers.
  char first = text.front() == '-' && text.size() > 1 ? text[1] : text.front();
  if (!(first >= '0' && first <= '9') && first != '.') return std::nullopt;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

// Howard Hinnant's days_from_civil: proleptic Gregorian date -> days since 1970-01-01.
// Pure arithmetic, so no timegm()/TZ state and thread-safe.
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `count` digits at `pos`.
std::optional<unsigned> digits(std::string_view text, std::size_t pos, std::size_t count) {
  if (pos + count > text.size()) return std::nullopt;
  unsigned value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
  }
  return value;
}

std::optional<double> civil_to_unix(std::int64_t year, unsigned month, unsigned day, unsigned hour,
                                    unsigned minute, unsigned second, double fraction) {
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;  // 60: leap second
  double days = static_cast<double>(days_from_civil(year, month, day));
  return days * 86400.0 + hour * 3600.0 + minute * 60.0 + second + fraction;
}

// Fractional digits "123456" after a '.', as seconds.
double fraction_value(std::string_view frac) {
  double value = 0;
  double scale = 0.1;
  for (char c : frac) {
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value;
}

}  // namespace

namespace {

// Rows up to this size are searched linearly; larger ones get the hash index.
constexpr std::size_t kIndexThreshold = 8;

// Property names come from the host: a seeded hash keeps them from being chosen to collide.
std::uint64_t lower_hash(std::string_view name) { return detail::seeded_hash(name, true); }

// First chunk of an arena, and the largest a chunk grows to (bigger texts get their own).
constexpr std::size_t kFirstChunk = 1024;
constexpr std::size_t kMaxChunk = 64 * 1024;

}  // namespace

void* TextArena::allocate_bytes(std::size_t size, std::size_t alignment) {
  auto padding = [&] {
    return static_cast<std::size_t>(-reinterpret_cast<std::uintptr_t>(next_) & (alignment - 1));
  };
  if (next_ == nullptr || padding() + size > left_) {
    std::size_t chunk = std::clamp<std::size_t>(allocated_, kFirstChunk, kMaxChunk);
    chunk = std::max(chunk, size + alignment);
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(chunk));
    next_ = chunks_.back().get();
    left_ = chunk;
    allocated_ += chunk;
  }
  const std::size_t skip = padding();
  void* out = next_ + skip;
  next_ += skip + size;
  left_ -= skip + size;
  return out;
}

std::string_view TextArena::copy(std::string_view text) {
  if (text.empty()) return {};
  char* out = allocate<char>(text.size());
  std::memcpy(out, text.data(), text.size());
  return {out, text.size()};
}

void PropertyValues::push_back(std::string_view value, TextArena& arena) {
  if (size_ == 0) {
    first_ = value;
    size_ = 1;
    return;
  }
  // The Block sits in the slot before the items.
  Block* block = size_ > 1 ? reinterpret_cast<Block*>(items_ - 1) : nullptr;
  if (block != nullptr && size_ < block->capacity && block->claimed == size_) {
    std::construct_at(items_ + size_, value);
  } else {
    // Grow (or leave a block another copy of the row has appended to) by doubling.
    const std::uint32_t capacity = std::max<std::uint32_t>(4, 2 * size_);
    std::string_view* slots = arena.allocate<std::string_view>(1 + std::size_t{capacity});
    auto* fresh = new (slots) Block{capacity, 0};
    std::string_view* items = slots + 1;
    const std::string_view* old = begin();
    for (std::uint32_t i = 0; i < size_; ++i) std::construct_at(items + i, old[i]);
    std::construct_at(items + size_, value);
    items_ = items;
    block = fresh;
  }
  ++size_;
  block->claimed = size_;
}

bool PropertyValues::operator==(const PropertyValues& other) const {
  return std::equal(begin(), end(), other.begin(), other.end());
}

Row::Row(std::shared_ptr<TextArena> arena, std::string_view class_name)
    : arena_(arena ? std::move(arena) : std::make_shared<TextArena>()),
      class_name_(arena_->copy(class_name)) {}

TextArena& Row::arena() {
  if (!arena_) arena_ = std::make_shared<TextArena>();
  return *arena_;
}

std::size_t Row::position_of(std::string_view name) const {
  if (index_.empty()) {
    for (std::size_t i = 0; i < properties_.size(); ++i) {
      if (iequals(properties_[i].name, name)) return i;
    }
    return kNotFound;
  }
  const std::size_t mask = index_.size() - 1;
  for (std::size_t slot = lower_hash(name) & mask;; slot = (slot + 1) & mask) {
    const std::uint32_t entry = index_[slot];
    if (entry == 0) return kNotFound;
    if (iequals(properties_[entry - 1].name, name)) return entry - 1;
  }
}

std::size_t Row::find_or_append(std::string_view name, bool name_stored, bool& appended) {
  appended = false;
  const std::size_t count = properties_.size();
  std::size_t free_slot = kNotFound;
  if (index_.empty()) {
    for (std::size_t i = 0; i < count; ++i) {
      if (iequals(properties_[i].name, name)) return i;
    }
  } else {
    const std::size_t mask = index_.size() - 1;
    for (std::size_t slot = lower_hash(name) & mask;; slot = (slot + 1) & mask) {
      const std::uint32_t entry = index_[slot];
      if (entry == 0) {
        free_slot = slot;
        break;
      }
      if (iequals(properties_[entry - 1].name, name)) return entry - 1;
    }
  }
  properties_.emplace_back().name = name_stored ? name : arena().copy(name);
  appended = true;
  // Index once the row outgrows a linear scan, keeping the table at most half full.
  if (count + 1 > kIndexThreshold) {
    if ((count + 1) * 2 <= index_.size()) {
      index_[free_slot] = static_cast<std::uint32_t>(count + 1);
    } else {
      std::size_t capacity = 32;
      while (capacity < (count + 1) * 4) capacity *= 2;
      index_.assign(capacity, 0);
      for (std::size_t i = 0; i <= count; ++i) {
        std::size_t slot = lower_hash(properties_[i].name) & (capacity - 1);
        while (index_[slot] != 0) slot = (slot + 1) & (capacity - 1);
        index_[slot] = static_cast<std::uint32_t>(i + 1);
      }
    }
  }
  return count;
}

const Property& Row::add_value(std::string_view name, bool name_stored, std::string_view value,
                               Property::Type type) {
  // Array elements arrive as adjacent repeats: try the last property before the index.
  std::size_t position;
  bool is_new = false;
  if (!properties_.empty() && iequals(properties_.back().name, name)) {
    position = properties_.size() - 1;
  } else {
    position = find_or_append(name, name_stored, is_new);
  }
  Property& property = properties_[position];
  if (is_new) {
    property.type = type;
  } else {
    // A nil element followed by values would be malformed; the values win.
    property.is_null = false;
  }
  property.values.push_back(value, arena());
  return property;
}

const Property& Row::add(std::string_view name, std::string_view value, Property::Type type) {
  return add_value(name, false, arena().copy(value), type);
}

const Property& Row::add_stored(std::string_view name, std::string_view value,
                                Property::Type type) {
  return add_value(name, true, value, type);
}

void Row::add_null(std::string_view name) {
  bool appended = false;
  std::size_t position = find_or_append(name, false, appended);
  // A new property is nil; an existing one keeps whatever was already recorded.
  if (appended) properties_[position].is_null = true;
}

void Row::add_null_stored(std::string_view name) {
  bool appended = false;
  std::size_t position = find_or_append(name, true, appended);
  if (appended) properties_[position].is_null = true;
}

const Property* Row::find(std::string_view name) const {
  std::size_t position = position_of(name);
  return position == kNotFound ? nullptr : &properties_[position];
}

Row::IndexStats Row::index_stats() const {
  IndexStats stats;
  stats.slots = index_.size();
  if (index_.empty()) return stats;
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = 0; i < properties_.size(); ++i) {
    // Bounded by the table size: an entry missing from the index ends at an empty slot.
    std::size_t slot = lower_hash(properties_[i].name) & mask;
    for (std::size_t visited = 1; visited <= index_.size(); ++visited, slot = (slot + 1) & mask) {
      ++stats.probes;
      if (index_[slot] == i + 1 || index_[slot] == 0) break;
    }
  }
  return stats;
}

std::optional<std::string_view> text_value(const Property& property) {
  if (property.is_null || property.values.empty()) return std::nullopt;
  return property.values.front();
}

std::optional<double> number_value(const Property& property) {
  auto value = text_value(property);
  return value ? parse_double(*value) : std::nullopt;
}

std::optional<std::uint64_t> uint64_value(const Property& property) {
  auto value = text_value(property);
  return value ? parse_integer<std::uint64_t>(*value) : std::nullopt;
}

std::optional<bool> boolean_value(const Property& property) {
  auto value = text_value(property);
  if (!value) return std::nullopt;
  std::string_view trimmed = trim(*value);
  if (iequals(trimmed, "true") || trimmed == "1") return true;
  if (iequals(trimmed, "false") || trimmed == "0") return false;
  return std::nullopt;
}

std::optional<double> unix_time_value(const Property& property) {
  auto value = text_value(property);
  if (!value) return std::nullopt;
  if (auto xs = parse_xs_datetime(*value)) return xs;
  return parse_cim_datetime(*value);
}

std::optional<std::string_view> Row::text(std::string_view name) const {
  const Property* property = find(name);
  return property == nullptr ? std::nullopt : text_value(*property);
}

std::optional<std::string> Row::string(std::string_view name) const {
  auto value = text(name);
  return value ? std::optional<std::string>(std::in_place, *value) : std::nullopt;
}

std::optional<double> Row::number(std::string_view name) const {
  const Property* property = find(name);
  return property == nullptr ? std::nullopt : number_value(*property);
}

std::optional<std::uint64_t> Row::uint64(std::string_view name) const {
  const Property* property = find(name);
  return property == nullptr ? std::nullopt : uint64_value(*property);
}

std::optional<std::int64_t> Row::int64(std::string_view name) const {
  auto value = text(name);
  return value ? parse_integer<std::int64_t>(*value) : std::nullopt;
}

std::optional<bool> Row::boolean(std::string_view name) const {
  const Property* property = find(name);
  return property == nullptr ? std::nullopt : boolean_value(*property);
}

std::optional<double> Row::unix_time(std::string_view name) const {
  const Property* property = find(name);
  return property == nullptr ? std::nullopt : unix_time_value(*property);
}

std::optional<double> Row::seconds(std::string_view name) const {
  auto value = text(name);
  if (!value) return std::nullopt;
  if (auto xs = parse_xs_duration(*value)) return xs;
  return parse_cim_interval(*value);
}

// YYYY-MM-DDTHH:MM:SS[.fff...][Z|(+|-)HH:MM]; no zone = UTC (Windows always sends one).
std::optional<double> parse_xs_datetime(std::string_view text) {
  text = trim(text);
  auto year = digits(text, 0, 4);
  auto month = digits(text, 5, 2);
  auto day = digits(text, 8, 2);
  auto hour = digits(text, 11, 2);
  auto minute = digits(text, 14, 2);
  auto second = digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  std::size_t pos = 19;
  double fraction = 0;
  if (pos < text.size() && text[pos] == '.') {
    std::size_t start = ++pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
    fraction = fraction_value(text.substr(start, pos - start));
  }
  int offset_minutes = 0;
  if (pos < text.size()) {
    if (text[pos] == 'Z' && pos + 1 == text.size()) {
      // UTC
    } else if ((text[pos] == '+' || text[pos] == '-') && pos + 6 == text.size() &&
               text[pos + 3] == ':') {
      auto off_hours = digits(text, pos + 1, 2);
      auto off_minutes = digits(text, pos + 4, 2);
      if (!off_hours || !off_minutes || *off_hours > 14 || *off_minutes > 59) return std::nullopt;
      offset_minutes = static_cast<int>(*off_hours * 60 + *off_minutes);
      if (text[pos] == '-') offset_minutes = -offset_minutes;
    } else {
      return std::nullopt;
    }
  }
  auto local = civil_to_unix(*year, *month, *day, *hour, *minute, *second, fraction);
  if (!local) return std::nullopt;
  return *local - offset_minutes * 60.0;  // local = UTC + offset
}

// DMTF CIM_DATETIME "yyyymmddHHMMSS.mmmmmmsUUU", UUU = offset from UTC in minutes.
std::optional<double> parse_cim_datetime(std::string_view text) {
  text = trim(text);
  if (text.size() != 25 || text[14] != '.' || (text[21] != '+' && text[21] != '-')) {
    return std::nullopt;
  }
  auto year = digits(text, 0, 4);
  auto month = digits(text, 4, 2);
  auto day = digits(text, 6, 2);
  auto hour = digits(text, 8, 2);
  auto minute = digits(text, 10, 2);
  auto second = digits(text, 12, 2);
  auto offset = digits(text, 22, 3);
  if (!year || !month || !day || !hour || !minute || !second || !offset) return std::nullopt;
  // Asterisks mark unknown sub-second precision; anything else unknown is unusable.
  std::string_view micro = text.substr(15, 6);
  double fraction = 0;
  if (micro.find_first_not_of('*') != std::string_view::npos) {
    auto known = micro.substr(0, micro.find('*'));
    if (known.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    if (micro.substr(known.size()).find_first_not_of('*') != std::string_view::npos) {
      return std::nullopt;
    }
    fraction = fraction_value(known);
  }
  auto local = civil_to_unix(*year, *month, *day, *hour, *minute, *second, fraction);
  if (!local) return std::nullopt;
  double offset_seconds = *offset * 60.0;
  return text[21] == '-' ? *local + offset_seconds : *local - offset_seconds;
}

// DMTF interval "ddddddddHHMMSS.mmmmmm:000".
std::optional<double> parse_cim_interval(std::string_view text) {
  text = trim(text);
  if (text.size() != 25 || text[14] != '.' || text[21] != ':') return std::nullopt;
  auto days = digits(text, 0, 8);
  auto hours = digits(text, 8, 2);
  auto minutes = digits(text, 10, 2);
  auto secs = digits(text, 12, 2);
  auto micros = digits(text, 15, 6);
  if (!days || !hours || !minutes || !secs || !micros) return std::nullopt;
  if (*hours > 23 || *minutes > 59 || *secs > 59) return std::nullopt;
  return *days * 86400.0 + *hours * 3600.0 + *minutes * 60.0 + *secs + *micros / 1e6;
}

// xs:duration [-]P[nY][nM][nD][T[nH][nM][n[.f]S]]. Years and months have no fixed length,
// so only zero values are accepted for them (WMI intervals are expressed in days).
std::optional<double> parse_xs_duration(std::string_view text) {
  text = trim(text);
  bool negative = false;
  if (!text.empty() && text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  if (text.empty() || text.front() != 'P') return std::nullopt;
  text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  bool in_time = false;
  bool any_component = false;
  double total = 0;
  std::string_view order_date = "YMD";
  std::string_view order_time = "HMS";
  std::size_t next_date = 0, next_time = 0;
  while (!text.empty()) {
    if (text.front() == 'T') {
      if (in_time) return std::nullopt;
      in_time = true;
      text.remove_prefix(1);
      if (text.empty()) return std::nullopt;  // "PT" alone is invalid
      continue;
    }
    std::size_t len = 0;
    bool seen_dot = false;
    while (len < text.size() && ((text[len] >= '0' && text[len] <= '9') || text[len] == '.')) {
      if (text[len] == '.') {
        if (seen_dot) return std::nullopt;
        seen_dot = true;
      }
      ++len;
    }
    if (len == 0 || len == text.size()) return std::nullopt;
    auto value = parse_double(text.substr(0, len));
    if (!value) return std::nullopt;
    char unit = text[len];
    text.remove_prefix(len + 1);
    std::string_view order = in_time ? order_time : order_date;
    std::size_t& next = in_time ? next_time : next_date;
    auto index = order.find(unit, next);
    if (index == std::string_view::npos) return std::nullopt;
    next = index + 1;
    if (seen_dot && !(in_time && unit == 'S')) return std::nullopt;
    any_component = true;
    if (!in_time) {
      if (unit == 'D') {
        total += *value * 86400.0;
      } else if (*value != 0) {
        return std::nullopt;  // non-zero years/months
      }
    } else {
      total += *value * (unit == 'H' ? 3600.0 : unit == 'M' ? 60.0 : 1.0);
    }
  }
  if (!any_component) return std::nullopt;
  return negative ? -total : total;
}

}  // namespace winrm
