#include "common/utf8.h"

#include <cstdint>
#include <cstring>

namespace common {
namespace {

// Length of the well-formed UTF-8 sequence at text[pos], or 0 when it is invalid; on 0,
// `invalid_length` is the maximal subpart to replace by one U+FFFD (at least 1).
std::size_t sequence_length(std::string_view text, std::size_t pos, std::size_t& invalid_length) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  std::size_t length;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    invalid_length = 1;
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (pos + i >= text.size()) {
      invalid_length = i;
      return 0;
    }
    const unsigned char c = byte(pos + i);
    const bool ok = i == 1 ? (c >= low && c <= high) : (c >= 0x80 && c <= 0xBF);
    if (!ok) {
      invalid_length = i;
      return 0;
    }
  }
  return length;
}

// Index of the first byte that is not ASCII, scanning eight bytes at a time.
std::size_t ascii_prefix(std::string_view text, std::size_t pos) {
  while (pos + 8 <= text.size()) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + pos, 8);
    if ((word & 0x8080808080808080ULL) != 0) break;
    pos += 8;
  }
  while (pos < text.size() && static_cast<unsigned char>(text[pos]) < 0x80) ++pos;
  return pos;
}

// Offset of the first invalid sequence, or npos.
std::size_t first_invalid(std::string_view text) {
  std::size_t pos = 0;
  while (true) {
    pos = ascii_prefix(text, pos);
    if (pos >= text.size()) return std::string_view::npos;
    std::size_t invalid_length = 0;
    std::size_t length = sequence_length(text, pos, invalid_length);
    if (length == 0) return pos;
    pos += length;
  }
}

void append_sanitized(std::string& out, std::string_view text, std::size_t pos, Utf8Repair repair) {
  while (pos < text.size()) {
    std::size_t ascii_end = ascii_prefix(text, pos);
    out.append(text.data() + pos, ascii_end - pos);
    pos = ascii_end;
    if (pos >= text.size()) break;
    std::size_t invalid_length = 0;
    std::size_t length = sequence_length(text, pos, invalid_length);
    if (length == 0) {
      out += kUtf8Replacement;
      pos += repair == Utf8Repair::kEachByte ? 1 : invalid_length;
    } else {
      out.append(text.data() + pos, length);
      pos += length;
    }
  }
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_valid_utf8(std::string_view text) { return first_invalid(text) == std::string_view::npos; }

std::string sanitize_utf8(std::string_view text, Utf8Repair repair) {
  std::size_t bad = first_invalid(text);
  if (bad == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text.data(), bad);
  append_sanitized(out, text, bad, repair);
  return out;
}

void sanitize_utf8_in_place(std::string& text, Utf8Repair repair) {
  std::size_t bad = first_invalid(text);
  if (bad == std::string_view::npos) return;
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text.data(), bad);
  append_sanitized(out, text, bad, repair);
  text = std::move(out);
}

}  // namespace common
