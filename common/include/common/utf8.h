// UTF-8 validation and repair. Everything that reaches a metric, a label or a log line is
// valid UTF-8: hosts can send anything.
#pragma once

#include <string>
#include <string_view>

namespace common {

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);

// How many U+FFFD stand for an invalid sequence. kMaximalSubpart is the WHATWG / Unicode
// "best practice" (one per maximal invalid subsequence: "\xE2\x82" -> one), used by the WinRM
// parser; kEachByte gives one per invalid byte ("\xE2\x82" -> two), which the exporter's
// label values and HELP text have always used.
enum class Utf8Repair { kMaximalSubpart, kEachByte };

// Replaces invalid sequences with U+FFFD, so the result is always valid UTF-8.
std::string sanitize_utf8(std::string_view text, Utf8Repair repair = Utf8Repair::kMaximalSubpart);

// In place: leaves valid text untouched (no allocation), otherwise replaces it sanitized.
void sanitize_utf8_in_place(std::string& text, Utf8Repair repair = Utf8Repair::kMaximalSubpart);

// Appends code point `cp` (<= U+10FFFF, not a surrogate) as UTF-8.
void append_utf8(std::string& out, char32_t cp);

// U+FFFD REPLACEMENT CHARACTER.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

}  // namespace common
