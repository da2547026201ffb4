// ASCII-only string helpers. Protocol text (HTTP headers, WS-Man, WQL, config keys) is
// case-insensitive in ASCII only, so none of these depend on the C locale.
#pragma once

#include <string>
#include <string_view>

namespace common {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Lower-cased copy (ASCII letters only; other bytes, UTF-8 included, unchanged).
std::string to_lower(std::string_view text);

// ASCII case-insensitive equality and prefix test.
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view text, std::string_view prefix);

// Without leading and trailing spaces, tabs, CRs and LFs (XML whitespace; also what a line
// read from a file or a header may carry).
std::string_view trim(std::string_view text);

// Without leading and trailing spaces and tabs: HTTP's optional whitespace (RFC 9110 5.6.3).
std::string_view trim_ows(std::string_view text);

}  // namespace common
