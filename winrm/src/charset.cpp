#include "winrm/charset.h"

#include <cstdint>
#include <cstring>

#include "common/strings.h"

namespace winrm {

namespace {

using common::append_utf8;
constexpr std::string_view kReplacement = common::kUtf8Replacement;

using common::ascii_lower;
using common::trim_ows;

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
  if (common::is_valid_utf8(body)) return body;
  storage = common::sanitize_utf8(body);
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
