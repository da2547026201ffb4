// libFuzzer: the multipart/encrypted body of an HTTP message-encryption response
// (MS-WSMV 2.2.9.1.1.2.2), split before GSS unwrap. Any bytes must give parts or an error;
// parts framed again by frame_encrypted must parse back to the same parts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "winrm/message_encryption.h"

namespace {

bool has_control_characters(std::string_view text) {
  for (const unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parts = winrm::gss::parse_encrypted(body);
  if (!parts) return 0;
  // A protocol with CR/LF cannot be framed again as one header line.
  if (has_control_characters(parts->protocol)) return 0;
  const auto framed = winrm::gss::frame_encrypted(parts->protocol, parts->length, parts->message);
  auto again = winrm::gss::parse_encrypted(framed);
  if (!again || again->protocol != parts->protocol || again->length != parts->length ||
      again->message.header != parts->message.header ||
      again->message.data != parts->message.data) {
    std::fprintf(stderr, "frame_encrypted output does not parse back to the same parts\n");
    std::abort();
  }
  return 0;
}
