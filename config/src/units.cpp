// Duration and size strings used by the config file.
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

#include "config/config.h"

namespace config {
namespace {

// Reads leading digits; false when there are none or they overflow.
bool take_number(std::string_view& text, std::uint64_t& out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, out);
  if (ec != std::errc() || ptr == begin) return false;
  text.remove_prefix(static_cast<std::size_t>(ptr - begin));
  return true;
}

}  // namespace

std::optional<std::size_t> parse_size(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
  };
  static constexpr Unit kUnits[] = {{"", 1},
                                    {"B", 1},
                                    {"KiB", 1ULL << 10},
                                    {"MiB", 1ULL << 20},
                                    {"GiB", 1ULL << 30},
                                    {"KB", 1'000},
                                    {"MB", 1'000'000},
                                    {"GB", 1'000'000'000}};
  std::uint64_t value = 0;
  if (!take_number(text, value)) return std::nullopt;
  for (const auto& unit : kUnits) {
    if (text != unit.suffix) continue;
    if (value > std::numeric_limits<std::size_t>::max() / unit.factor) return std::nullopt;
    return static_cast<std::size_t>(value * unit.factor);
  }
  return std::nullopt;
}

std::string format_duration(Duration duration) {
  auto ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out.push_back('-');  // not `out = "-"`: GCC 12 -Wrestrict false positive (PR105329)
    ms = -ms;
  }
  const std::pair<long long, const char*> units[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  for (const auto& [millis, suffix] : units) {
    if (ms >= millis) {
      out += std::to_string(ms / millis) + suffix;
      ms %= millis;
    }
  }
  return out;
}

const char* to_string(AuthMethod method) {
  switch (method) {
    case AuthMethod::kBasic:
      return "basic";
    case AuthMethod::kKerberos:
      return "kerberos";
    case AuthMethod::kNtlm:
      return "ntlm";
    case AuthMethod::kCertificate:
      return "certificate";
  }
  return "?";
}

const char* to_string(Scheme scheme) { return scheme == Scheme::kHttp ? "http" : "https"; }

}  // namespace config
