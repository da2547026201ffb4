// Splitting targets across exporter instances with the same function as Prometheus'
// `hashmod` relabel action, so a Prometheus relabel rule and the exporter agree on
// which instance owns a target.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace exporter {

// Prometheus hashmod: MD5 of value, the last 8 bytes of the digest read as a
// big-endian unsigned 64-bit integer, modulo modulus (> 0).
std::uint64_t prometheus_hashmod(std::string_view value, std::uint64_t modulus);

struct Shard {
  int index = 0;  // this instance, 0..total-1
  int total = 1;  // 1: no sharding, every target is owned

  int owner_of(std::string_view target) const {
    return total <= 1
               ? 0
               : static_cast<int>(prometheus_hashmod(target, static_cast<std::uint64_t>(total)));
  }
  bool owns(std::string_view target) const { return owner_of(target) == index; }
};

}  // namespace exporter
