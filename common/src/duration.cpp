#include "common/duration.h"

#include <charconv>
#include <cstdint>
#include <iterator>
#include <limits>

namespace common {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t millis;
};
// Descending: the order Prometheus requires.
constexpr Unit kUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        DurationSyntax syntax) {
  const bool go = syntax == DurationSyntax::kGo;
  if (text.empty()) return std::nullopt;
  if (go && text == "0") return std::chrono::milliseconds(0);
  // Half the range: the sum of two durations (interval + timeout) still fits.
  constexpr std::uint64_t kMax = std::numeric_limits<std::int64_t>::max() / 2;
  std::uint64_t total = 0;
  double fractions = 0;  // Go only: the fractional parts, in milliseconds
  std::size_t next_unit = 0;
  while (!text.empty()) {
    std::uint64_t whole = 0;
    const char* begin = text.data();
    const char* end = begin + text.size();
    auto [ptr, ec] = std::from_chars(begin, end, whole);
    if (ec == std::errc::result_out_of_range) return std::nullopt;
    bool digits = ec == std::errc() && ptr != begin;
    if (ec != std::errc()) ptr = begin;  // no leading digits (".5s" in Go)
    std::string_view fraction;
    if (go && ptr != end && *ptr == '.') {
      const char* f = ++ptr;
      while (ptr != end && is_digit(*ptr)) ++ptr;
      fraction = std::string_view(f, static_cast<std::size_t>(ptr - f));
      digits = digits || !fraction.empty();
    }
    if (!digits) return std::nullopt;
    // The unit is the whole run of letters after the number ("5mss" is no unit).
    const char* unit_end = ptr;
    while (unit_end != end && is_alpha(*unit_end)) ++unit_end;
    const std::string_view suffix(ptr, static_cast<std::size_t>(unit_end - ptr));
    std::size_t unit = 0;
    while (unit < std::size(kUnits) && kUnits[unit].suffix != suffix) ++unit;
    if (unit == std::size(kUnits) || (go && kUnits[unit].suffix == "d")) return std::nullopt;
    if (!go && unit < next_unit) return std::nullopt;  // not descending, or repeated
    next_unit = unit + 1;
    const std::uint64_t millis = kUnits[unit].millis;
    if (whole > kMax / millis) return std::nullopt;
    total += whole * millis;
    if (total > kMax) return std::nullopt;
    double scale = static_cast<double>(millis);
    for (char c : fraction) {
      scale /= 10;
      fractions += (c - '0') * scale;
    }
    text.remove_prefix(static_cast<std::size_t>(unit_end - begin));
  }
  total += static_cast<std::uint64_t>(fractions);
  if (total > kMax) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

}  // namespace common
