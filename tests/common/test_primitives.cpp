// common/: the primitives every module shares. RFC 4648 section 10 test vectors for base64.
#include <doctest/doctest.h>

#include <string>

#include "common/base64.h"
#include "common/strings.h"
#include "common/utf8.h"

TEST_CASE("ASCII helpers ignore case in ASCII only and trim what they say") {
  CHECK(common::iequals("Content-Length", "content-LENGTH"));
  CHECK_FALSE(common::iequals("Content-Length", "Content-Lengt"));
  CHECK_FALSE(common::iequals("\xC3\x89", "\xC3\xA9"));  // É vs é: not ASCII, not folded
  CHECK(common::istarts_with("Negotiate abc", "negotiate "));
  CHECK_FALSE(common::istarts_with("Nego", "negotiate"));
  CHECK(common::to_lower("WIN32_Service \xC3\x89") == "win32_service \xC3\x89");
  CHECK(common::trim(" \t\r\nabc d\r\n") == "abc d");
  CHECK(common::trim(" \t\r\n") == "");
  CHECK(common::trim_ows(" \tabc\r") == "abc\r");  // CR is not optional whitespace
}

TEST_CASE("base64 encodes and strictly decodes the RFC 4648 vectors") {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    CAPTURE(plain);
    CHECK(common::base64_encode(plain) == encoded);
    auto decoded = common::base64_decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == plain);
  }
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  CHECK(common::base64_decode(common::base64_encode(binary)) == binary);

  for (const char* bad :
       {"abc", "Zg=", "Z===", "====", "Zm9v\n", " Zm9v", "Zm=v", "Zg=a", "Zm9v-_==", "Zm9\x80"}) {
    CAPTURE(bad);
    CHECK_FALSE(common::base64_decode(bad).has_value());
  }
}

TEST_CASE("UTF-8 validation and repair follow the maximal-subpart rule") {
  CHECK(common::is_valid_utf8("plain ASCII and \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK_FALSE(common::is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(common::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(common::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK(common::sanitize_utf8("a\xFF"
                              "b") ==
        "a\xEF\xBF\xBD"
        "b");
  // A truncated 3-byte sequence is one maximal subpart: one replacement, not two.
  CHECK(common::sanitize_utf8("\xE2\x82"
                              "x") ==
        "\xEF\xBF\xBD"
        "x");
  std::string text = "valid";
  const char* before = text.data();
  common::sanitize_utf8_in_place(text);
  CHECK(text.data() == before);  // valid text is left alone
  text = "\x80\x80";
  common::sanitize_utf8_in_place(text);
  CHECK(text == "\xEF\xBF\xBD\xEF\xBF\xBD");
  std::string out;
  common::append_utf8(out, U'\u20AC');
  common::append_utf8(out, U'\U0001F600');
  CHECK(out == "\xE2\x82\xAC\xF0\x9F\x98\x80");
}
