// Response charsets: Content-Type parsing, BOM sniffing, UTF-16 decoding and UTF-8 repair.
// Expected UTF-16 bytes come from glibc's iconv, an implementation independent of ours.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "iconv_util.h"
#include "winrm/charset.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_charset {

using winrm::charset_of;
using winrm::decode_to_utf8;
using winrm::is_valid_utf8;
using winrm::sanitize_utf8;

namespace {

const std::string kFffd = "\xEF\xBF\xBD";

std::string decoded(std::string_view body, std::string_view content_type) {
  auto result = decode_to_utf8(body, content_type);
  REQUIRE_MESSAGE(result.has_value(), result.error().describe());
  return *result;
}

}  // namespace

TEST_CASE("charset_of: case-insensitive parameter, quoted values, other parameters") {
  CHECK(charset_of("application/soap+xml;charset=UTF-8") == "utf-8");
  CHECK(charset_of("application/soap+xml; Charset=\"UTF-16\"") == "utf-16");
  CHECK(charset_of("application/soap+xml ; action=\"urn:a;b\" ; CHARSET = utf-16LE ") ==
        "utf-16le");
  CHECK(charset_of("text/xml; charset=\"utf\\-8\"") == "utf-8");  // quoted-pair
  CHECK(charset_of("application/soap+xml").empty());
  CHECK(charset_of("").empty());
  CHECK(charset_of("application/soap+xml; novalue; charset=utf-16be") == "utf-16be");
  CHECK(charset_of("application/soap+xml; xcharset=utf-16").empty());
}

TEST_CASE("UTF-8 bodies pass through; a UTF-8 BOM is removed") {
  CHECK(decoded("<a>Datentr\xC3\xA4ger</a>", "application/soap+xml;charset=UTF-8") ==
        "<a>Datentr\xC3\xA4ger</a>");
  CHECK(decoded("<a/>", "") == "<a/>");
  CHECK(decoded("\xEF\xBB\xBF<a/>", "application/soap+xml;charset=utf-8") == "<a/>");
  CHECK(decoded("<a/>", "text/xml; charset=us-ascii") == "<a/>");

  // The no-copy overload views the body itself when nothing needs repair.
  std::string storage;
  const std::string body = "<a>ok</a>";
  auto view = decode_to_utf8(body, "application/soap+xml;charset=UTF-8", storage);
  REQUIRE(view.has_value());
  CHECK(view->data() == body.data());
}

TEST_CASE("invalid UTF-8 becomes U+FFFD, one per maximal invalid subsequence") {
  CHECK(sanitize_utf8("ok") == "ok");
  CHECK(sanitize_utf8("bad\xFF\xFE") == "bad" + kFffd + kFffd);
  CHECK(sanitize_utf8("\x80") == kFffd);                          // lone continuation byte
  CHECK(sanitize_utf8("\xC0\x80") == kFffd + kFffd);              // overlong NUL
  CHECK(sanitize_utf8("\xED\xA0\x80") == kFffd + kFffd + kFffd);  // CESU surrogate
  CHECK(sanitize_utf8("\xF4\x90\x80\x80") == kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  CHECK(sanitize_utf8("x\xE2\x82") == "x" + kFffd);                // truncated at the end
  CHECK(sanitize_utf8("\xE2\x82x") == kFffd + "x");                // truncated in the middle
  CHECK(sanitize_utf8("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");  // U+1F600 is fine
  CHECK(is_valid_utf8("Datentr\xC3\xA4ger \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xC3"));

  std::string in_place =
      "a\xFF"
      "b";
  winrm::sanitize_utf8_in_place(in_place);
  CHECK(in_place == "a" + kFffd + "b");

  // Through decode_to_utf8 the whole body is repaired, never passed through.
  const std::string body = "<a>caf\xE9</a>";  // Latin-1 sent under a UTF-8 label
  CHECK(decoded(body, "application/soap+xml;charset=UTF-8") == "<a>caf" + kFffd + "</a>");
}

TEST_CASE("UTF-16LE and UTF-16BE, with and without BOM, match iconv") {
  const std::string text =
      "<?xml version=\"1.0\" encoding=\"UTF-16\"?><a b='\xC3\xA4'>Datentr\xC3\xA4ger "
      "\xE2\x82\xAC \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC</a>";
  const std::string le = iconv_from_utf8(text, "UTF-16LE");
  const std::string be = iconv_from_utf8(text, "UTF-16BE");
  CHECK(decoded(le, "application/soap+xml;charset=UTF-16LE") == text);
  CHECK(decoded(be, "application/soap+xml;charset=UTF-16BE") == text);
  CHECK(decoded("\xFF\xFE" + le, "application/soap+xml;charset=UTF-16") == text);
  CHECK(decoded("\xFE\xFF" + be, "application/soap+xml;charset=UTF-16") == text);
  // "utf-16" without BOM: the zero byte of the leading '<' gives the order.
  CHECK(decoded(le, "application/soap+xml;charset=utf-16") == text);
  CHECK(decoded(be, "application/soap+xml;charset=utf-16") == text);
  // A BOM wins over a wrong or missing label.
  CHECK(decoded("\xFF\xFE" + le, "application/soap+xml;charset=UTF-8") == text);
  CHECK(decoded("\xFE\xFF" + be, "") == text);
  CHECK(decoded("\xFF\xFE" + le, "application/soap+xml;charset=UTF-16BE") == text);
}

TEST_CASE("UTF-16 lone surrogates and an odd trailing byte become U+FFFD") {
  const std::string_view ct = "application/soap+xml;charset=UTF-16LE";
  // 'a', high surrogate D83D, 'b'
  CHECK(decoded(std::string("a\0\x3D\xD8"
                            "b\0",
                            6),
                ct) == "a" + kFffd + "b");
  // a low surrogate first
  CHECK(decoded(std::string("\x00\xDC"
                            "a\0",
                            4),
                ct) == kFffd + "a");
  // high surrogate at the very end
  CHECK(decoded(std::string("a\0\x3D\xD8", 4), ct) == "a" + kFffd);
  // two high surrogates then a low one: the first is lone, the second pairs
  CHECK(decoded(std::string("\x3D\xD8\x3D\xD8\x00\xDE", 6), ct) == kFffd + "\xF0\x9F\x98\x80");
  // odd byte count
  CHECK(decoded(std::string("a\0b", 3), ct) == "a" + kFffd);
  // big-endian pair D83D DE00 = U+1F600
  CHECK(decoded(std::string("\xD8\x3D\xDE\x00", 4), "text/xml;charset=utf-16be") ==
        "\xF0\x9F\x98\x80");
}

TEST_CASE("an unknown charset is a parse error naming it") {
  for (std::string_view ct : {"application/soap+xml;charset=ISO-8859-1",
                              "application/soap+xml; charset=\"windows-1252\""}) {
    auto result = decode_to_utf8("<a/>", ct);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == winrm::ErrorKind::kParse);
    const std::string& message = result.error().message;
    CHECK((message.find("iso-8859-1") != std::string::npos ||
           message.find("windows-1252") != std::string::npos));
  }
  // Hostile names are bounded and printable in the message.
  auto weird = decode_to_utf8("<a/>", "text/xml;charset=" + std::string(200, 'x') + "\x01");
  REQUIRE_FALSE(weird.has_value());
  CHECK(weird.error().message.size() < 120);
  CHECK(weird.error().message.find('\x01') == std::string::npos);
}

}  // namespace test_charset
