#include "winrm/charset.h"

#include <cstdint>
#include <cstring>

namespace winrm {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trim_ows(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

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

void append_sanitized(std::string& out, std::string_view text, std::size_t pos) {
  while (pos < text.size()) {
    std::size_t ascii_end = ascii_prefix(text, pos);
    out.append(text.data() + pos, ascii_end - pos);
    pos = ascii_end;
    if (pos >= text.size()) break;
    std::size_t invalid_length = 0;
    std::size_t length = sequence_length(text, pos, invalid_length);
    if (length == 0) {
      out += kReplacement;
      pos += invalid_length;
    } else {
      out.append(text.data() + pos, length);
      pos += length;
    }
  }
}

void append_utf8(std::string& out, std::uint32_t cp) {
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

std::string utf16_to_utf8(std::string_view body, bool big_endian) {
  std::string out;
  out.reserve(body.size() / 2 * 3 + 3);
  const auto unit = [&](std::size_t i) -> std::uint32_t {
    const auto a = static_cast<unsigned char>(body[i]);
    const auto b = static_cast<unsigned char>(body[i + 1]);
    return big_endian ? (std::uint32_t{a} << 8 | b) : (std::uint32_t{b} << 8 | a);
  };
  std::size_t i = 0;
  const std::size_t whole = body.size() & ~std::size_t{1};
  while (i < whole) {
    std::uint32_t u = unit(i);
    i += 2;
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i < whole) {
        std::uint32_t next = unit(i);
        if (next >= 0xDC00 && next <= 0xDFFF) {
          i += 2;
          append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (next - 0xDC00));
          continue;
        }
      }
      out += kReplacement;  // high surrogate without its low half
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
      out += kReplacement;  // low surrogate first
    } else {
      append_utf8(out, u);
    }
  }
  if (whole != body.size()) out += kReplacement;  // odd trailing byte
  return out;
}

enum class Charset { kUtf8, kUtf16, kUtf16Le, kUtf16Be };

// A printable, bounded rendering of an untrusted charset name for an error message.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 40)) {
    out += (c >= 0x20 && c < 0x7F && c != '"') ? c : '?';
  }
  if (text.size() > 40) out += "...";
  return out;
}

}  // namespace

std::string charset_of(std::string_view content_type) {
  const auto skip_ows = [&](std::size_t pos) {
    while (pos < content_type.size() && (content_type[pos] == ' ' || content_type[pos] == '\t')) {
      ++pos;
    }
    return pos;
  };
  std::size_t pos = content_type.find(';');
  while (pos != std::string_view::npos) {
    pos = skip_ows(pos + 1);
    std::size_t name_end = content_type.find_first_of("=;", pos);
    if (name_end == std::string_view::npos) return {};
    std::string_view name = trim_ows(content_type.substr(pos, name_end - pos));
    if (content_type[name_end] == ';') {  // a parameter without a value
      pos = name_end;
      continue;
    }
    pos = skip_ows(name_end + 1);
    std::string value;
    if (pos < content_type.size() && content_type[pos] == '"') {
      // quoted-string (RFC 9110 5.6.4): a backslash escapes the next character.
      for (++pos; pos < content_type.size() && content_type[pos] != '"'; ++pos) {
        if (content_type[pos] == '\\' && pos + 1 < content_type.size()) ++pos;
        value += content_type[pos];
      }
      pos = content_type.find(';', pos);
    } else {
      std::size_t end = content_type.find(';', pos);
      value = std::string(
          trim_ows(content_type.substr(pos, end == std::string_view::npos ? end : end - pos)));
      pos = end;
    }
    bool is_charset = name.size() == 7;
    for (std::size_t i = 0; is_charset && i < 7; ++i) {
      is_charset = ascii_lower(name[i]) == "charset"[i];
    }
    if (is_charset) {
      for (char& c : value) c = ascii_lower(c);
      return value;
    }
  }
  return {};
}

bool is_valid_utf8(std::string_view text) { return first_invalid(text) == std::string_view::npos; }

std::string sanitize_utf8(std::string_view text) {
  std::size_t bad = first_invalid(text);
  if (bad == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text.data(), bad);
  append_sanitized(out, text, bad);
  return out;
}

void sanitize_utf8_in_place(std::string& text) {
  std::size_t bad = first_invalid(text);
  if (bad == std::string_view::npos) return;
  std::string out;
  out.reserve(text.size() + 16);
  out.append(text.data(), bad);
  append_sanitized(out, text, bad);
  text = std::move(out);
}

Result<std::string_view> decode_to_utf8(std::string_view body, std::string_view content_type,
                                        std::string& storage) {
  const std::string name = charset_of(content_type);
  Charset charset;
  if (name.empty() || name == "utf-8" || name == "utf8" || name == "us-ascii") {
    charset = Charset::kUtf8;
  } else if (name == "utf-16" || name == "utf16") {
    charset = Charset::kUtf16;
  } else if (name == "utf-16le") {
    charset = Charset::kUtf16Le;
  } else if (name == "utf-16be") {
    charset = Charset::kUtf16Be;
  } else {
    return make_error(ErrorKind::kParse,
                      "unsupported response charset \"" + printable(name) + "\"");
  }
  // A byte order mark overrides the declared charset.
  if (body.starts_with("\xEF\xBB\xBF")) {
    body.remove_prefix(3);
    charset = Charset::kUtf8;
  } else if (body.starts_with("\xFF\xFE")) {
    body.remove_prefix(2);
    charset = Charset::kUtf16Le;
  } else if (body.starts_with("\xFE\xFF")) {
    body.remove_prefix(2);
    charset = Charset::kUtf16Be;
  } else if (charset == Charset::kUtf16) {
    // No BOM: the document's first character is ASCII ('<' or whitespace), so its zero byte
    // tells the order; Windows' own default is little-endian.
    const bool big = body.size() >= 2 && body[0] == '\0' && body[1] != '\0';
    charset = big ? Charset::kUtf16Be : Charset::kUtf16Le;
  }
  if (charset == Charset::kUtf16Le || charset == Charset::kUtf16Be) {
    storage = utf16_to_utf8(body, charset == Charset::kUtf16Be);
    return std::string_view(storage);
  }
  std::size_t bad = first_invalid(body);
  if (bad == std::string_view::npos) return body;
  storage.clear();
  storage.reserve(body.size() + 16);
  storage.append(body.data(), bad);
  append_sanitized(storage, body, bad);
  return std::string_view(storage);
}

Result<std::string> decode_to_utf8(std::string_view body, std::string_view content_type) {
  std::string storage;
  auto decoded = decode_to_utf8(body, content_type, storage);
  if (!decoded) return std::unexpected(decoded.error());
  if (decoded->data() == storage.data()) return storage;
  return std::string(*decoded);
}

}  // namespace winrm
