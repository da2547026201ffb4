// Base64 (RFC 4648, standard alphabet, padded) on OpenSSL's EVP encoder.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace common {

std::string base64_encode(std::string_view bytes);

// Strict: length a multiple of 4, only the alphabet, '=' only as one or two final padding
// characters. No whitespace is skipped (callers trim what their protocol allows).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace common
