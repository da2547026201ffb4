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

// ASCII case-insensitive equality and prefix test. Inline: the parser's property lookup
// compares names with it once per probe.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}
bool istarts_with(std::string_view text, std::string_view prefix);

// Without leading and trailing spaces, tabs, CRs and LFs (XML whitespace; also what a line
// read from a file or a header may carry). Inline: the parser trims every scalar value.
inline std::string_view trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Without leading and trailing spaces and tabs: HTTP's optional whitespace (RFC 9110 5.6.3).
std::string_view trim_ows(std::string_view text);

// Appends text escaped as XML character data or attribute value (&, <, >, ", '), which is
// also safe HTML text and attribute content; C0 controls XML 1.0 cannot carry (other than
// tab, LF, CR) are dropped rather than producing a document a server would reject.
void append_xml_escaped(std::string& out, std::string_view text);

}  // namespace common
