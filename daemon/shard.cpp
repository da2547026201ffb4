#include "shard.h"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

namespace exporter {

std::uint64_t prometheus_hashmod(std::string_view value, std::uint64_t modulus) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(value.data(), value.size(), digest.data(), &length, EVP_md5(), nullptr) != 1 ||
      length != 16) {
    throw std::runtime_error("MD5 unavailable");  // a broken OpenSSL is a bug, not an I/O error
  }
  std::uint64_t tail = 0;
  for (unsigned int i = 8; i < 16; ++i) tail = (tail << 8) | digest[i];
  return tail % modulus;
}

}  // namespace exporter
