// multipart/encrypted framing against the synthetic fixtures (byte-exact both ways).
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "common/base64.h"
#include "winrm/message_encryption.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_framing {

namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(WINRM_TEST_FIXTURES) + "/encrypted/" + name, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("kerberos framing fixture parses and re-frames byte for byte") {
  const auto body = read_fixture("HANDWRITTEN_kerberos_aes_framing_dummy_bytes.bin");
  auto parts = winrm::gss::parse_encrypted(body);
  REQUIRE(parts.has_value());
  CHECK(parts->protocol == winrm::gss::kKerberosEncrypted);
  CHECK(parts->length == 839);
  CHECK(parts->original_type == "application/soap+xml;charset=UTF-8");
  REQUIRE(parts->message.header.size() == 60);
  CHECK(parts->message.header.substr(0, 4) == std::string("\x05\x04\x06\xff", 4));
  CHECK(parts->message.data == std::string(839, '\0'));
  CHECK(winrm::gss::frame_encrypted(parts->protocol, parts->length, parts->message) == body);
}

TEST_CASE("NTLM framing fixture: 16-byte signature header") {
  const auto body = read_fixture("HANDWRITTEN_spnego_ntlm_framing_dummy_bytes.bin");
  auto parts = winrm::gss::parse_encrypted(body);
  REQUIRE(parts.has_value());
  CHECK(parts->protocol == winrm::gss::kSpnegoEncrypted);
  CHECK(parts->length == 839);
  REQUIRE(parts->message.header.size() == 16);
  CHECK(parts->message.header.substr(0, 4) == std::string("\x01\0\0\0", 4));
  CHECK(parts->message.header.substr(4, 8) == std::string(8, '\xaa'));
  CHECK(parts->message.data.size() == 839);
  CHECK(winrm::gss::frame_encrypted(parts->protocol, parts->length, parts->message) == body);
}

TEST_CASE("framing tolerates missing TABs and a space after the dashes (WinRb, Exchange)") {
  auto body = read_fixture("HANDWRITTEN_kerberos_aes_framing_dummy_bytes.bin");
  std::string relaxed;
  for (std::size_t i = 0; i < body.size(); ++i) {
    // Drop the part-header TABs only in the textual prefix.
    if (i < 0xd7 && body[i] == '\t') continue;
    relaxed += body[i];
  }
  relaxed.insert(2, " ");  // "-- Encrypted Boundary"
  auto parts = winrm::gss::parse_encrypted(relaxed);
  REQUIRE(parts.has_value());
  CHECK(parts->length == 839);
  CHECK(parts->message.header.size() == 60);
  CHECK(parts->message.data.size() == 839);
}

TEST_CASE("malformed framing is a parse error, never a crash") {
  const auto body = read_fixture("HANDWRITTEN_kerberos_aes_framing_dummy_bytes.bin");
  for (std::size_t cut : {0ul, 10ul, 0x90ul, 0xd7ul, 0xdaul, 0x100ul, body.size() - 10}) {
    auto parts = winrm::gss::parse_encrypted(body.substr(0, cut));
    CHECK_FALSE(parts.has_value());
    if (!parts) CHECK(parts.error().kind == winrm::ErrorKind::kParse);
  }
  std::string huge_header = body;
  huge_header[0xd7 + 3] = '\x7f';  // header length 0x7f00003c
  CHECK_FALSE(winrm::gss::parse_encrypted(huge_header).has_value());
  std::string no_length = body;
  no_length.replace(no_length.find("Length="), 7, "Lxngth=");
  CHECK_FALSE(winrm::gss::parse_encrypted(no_length).has_value());
}

TEST_CASE("content type and base64 helpers") {
  CHECK(winrm::gss::encrypted_content_type(winrm::gss::kSpnegoEncrypted) ==
        "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";"
        "boundary=\"Encrypted Boundary\"");
  CHECK(winrm::gss::is_encrypted_content_type("Multipart/Encrypted;protocol=x"));
  CHECK_FALSE(winrm::gss::is_encrypted_content_type("application/soap+xml;charset=UTF-8"));
  for (std::string s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\0\xff\x10\x80", 4)}) {
    auto decoded = common::base64_decode(common::base64_encode(s));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == s);
  }
  CHECK_FALSE(common::base64_decode("abc").has_value());
}

TEST_CASE("error classes round-trip through Error") {
  auto error = winrm::make_auth_error(winrm::AuthErrorClass::kClockSkew, "detail").error();
  CHECK(error.kind == winrm::ErrorKind::kAuth);
  CHECK(error.message == "clock_skew: detail");
  CHECK(winrm::auth_error_class(error) == winrm::AuthErrorClass::kClockSkew);
  CHECK_FALSE(winrm::auth_error_class(winrm::make_error(winrm::ErrorKind::kAuth, "x").error()));
  // The class is a typed field: text that merely looks like one is not parsed.
  CHECK_FALSE(
      winrm::auth_error_class(winrm::make_error(winrm::ErrorKind::kAuth, "clock_skew: x").error()));
}

}  // namespace test_framing
