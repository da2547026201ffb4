#include "collectors/poll_time.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>

#include "common/strings.h"

namespace collectors {
namespace {

// The class name after FROM in "SELECT ... FROM Class [WHERE ...]"; empty if there is none.
std::string_view from_class(std::string_view wql) {
  std::size_t pos = 0;
  const auto next_token = [&]() -> std::string_view {
    while (pos < wql.size() && std::isspace(static_cast<unsigned char>(wql[pos]))) ++pos;
    const std::size_t start = pos;
    while (pos < wql.size() && !std::isspace(static_cast<unsigned char>(wql[pos]))) ++pos;
    return wql.substr(start, pos - start);
  };
  for (auto token = next_token(); !token.empty(); token = next_token()) {
    if (common::iequals(token, "from")) return next_token();
  }
  return {};
}

std::string unix_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.6f", seconds);
  return buffer;
}

constexpr std::string_view kOpen = "{{";
constexpr std::string_view kClose = "}}";

// "now" -> 0, "now-15m" -> 900 (seconds back); nullopt when malformed.
std::optional<double> seconds_back(std::string_view body) {
  if (body == "now") return 0.0;
  if (!body.starts_with("now-") || body.size() < 6) return std::nullopt;
  const std::string_view number = body.substr(4, body.size() - 5);
  long long amount = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), amount);
  if (ec != std::errc() || end != number.data() + number.size() || amount < 0) {
    return std::nullopt;
  }
  double unit = 0;
  switch (body.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return std::nullopt;
  }
  const double seconds = static_cast<double>(amount) * unit;
  if (seconds > 366 * 86400.0) return std::nullopt;  // a window, not an archive read
  return seconds;
}

std::string dmtf_utc(double unix_seconds) {
  const std::time_t whole = static_cast<std::time_t>(std::floor(unix_seconds));
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char buffer[96];  // room for any int fields, as -Wformat-truncation reckons
  std::snprintf(buffer, sizeof(buffer), "%04d%02d%02d%02d%02d%02d.000000+000", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buffer;
}

}  // namespace

bool has_wql_placeholders(std::string_view wql) {
  return wql.find(kOpen) != std::string_view::npos;
}

std::optional<std::string> check_wql_placeholders(std::string_view wql) {
  for (std::size_t open = wql.find(kOpen); open != std::string_view::npos;
       open = wql.find(kOpen, open + kOpen.size())) {
    const std::size_t close = wql.find(kClose, open);
    if (close == std::string_view::npos) return "unterminated '{{' placeholder";
    const std::string_view body = wql.substr(open + kOpen.size(), close - open - kOpen.size());
    if (!seconds_back(body)) {
      return "placeholder '{{" + std::string(body) +
             "}}' is not {{now}} or {{now-<N><s|m|h|d>}} (at most a year back)";
    }
  }
  return std::nullopt;
}

std::string expand_wql_placeholders(std::string_view wql, double now_unix) {
  std::string out;
  std::size_t pos = 0;
  while (pos < wql.size()) {
    const std::size_t open = wql.find(kOpen, pos);
    const std::size_t close = open == std::string_view::npos ? open : wql.find(kClose, open);
    if (close == std::string_view::npos) break;
    const auto back = seconds_back(wql.substr(open + kOpen.size(), close - open - kOpen.size()));
    out.append(wql.substr(pos, open - pos));
    if (back) {
      out += dmtf_utc(now_unix - *back);
    } else {
      out.append(wql.substr(open, close + kClose.size() - open));
    }
    pos = close + kClose.size();
  }
  out.append(wql.substr(pos));
  return out;
}

bool wants_poll_time(std::string_view wql) {
  static constexpr std::array<std::string_view, 3> kClockClasses = {
      "Win32_OperatingSystem", "Win32_UTCTime", "Win32_LocalTime"};
  const std::string_view cls = from_class(wql);
  for (const auto clock_class : kClockClasses) {
    if (common::iequals(cls, clock_class)) return true;
  }
  return false;
}

void stamp_poll_time(std::vector<winrm::Row>& rows, double request_unix, double response_unix) {
  const std::string request = unix_text(request_unix);
  const std::string response = unix_text(response_unix);
  for (auto& row : rows) {
    row.add(kRequestTimeProperty, request);
    row.add(kResponseTimeProperty, response);
  }
}

}  // namespace collectors
