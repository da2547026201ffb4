// libFuzzer: request bytes from a network client to net::RequestParser (winrm-sim's and
// the exporter's listener). The input is fed in pieces whose sizes come from its first
// byte, as a network splits it; every request must complete or fail with a status, and
// the buffer must stay within the limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/http.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  net::ParserLimits limits;
  limits.max_head_bytes = 2048;
  limits.max_header_count = 16;
  limits.max_body_bytes = 4096;
  net::RequestParser parser(limits);
  // Chunk lines (1 KiB) may be buffered on top of a full body.
  const std::size_t bound = limits.max_head_bytes + limits.max_body_bytes + 1024 + 64 + piece;
  while (!input.empty()) {
    const auto n = std::min(piece, input.size());
    auto status = parser.feed(input.substr(0, n));
    input.remove_prefix(n);
    while (status == net::RequestParser::Status::kComplete) {
      auto request = parser.take();
      if (request.body.size() > limits.max_body_bytes) std::abort();
      if (request.headers.size() > limits.max_header_count) std::abort();
      volatile auto sink = request.query_param("target").has_value() + request.keep_alive();
      (void)sink;
      status = parser.feed({});
    }
    if (status == net::RequestParser::Status::kError) {
      const int s = parser.error_status();
      if (s != 400 && s != 413 && s != 417 && s != 431 && s != 501 && s != 505) std::abort();
      return 0;
    }
    if (parser.buffered_bytes() > bound) std::abort();
  }
  return 0;
}
