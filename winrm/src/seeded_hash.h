// Hash for tables whose keys a remote host chooses (property names, namespace prefixes):
// seeded once per process so that a response cannot pick colliding keys, eight bytes at a
// time. Internal to winrm/.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

namespace winrm::detail {

inline std::uint64_t process_hash_seed() {
  static const std::uint64_t seed = [] {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device() ^ 0x9E3779B97F4A7C15ULL;
  }();
  return seed;
}

// fold_case ORs 0x20 into every byte: 'A'-'Z' hash as 'a'-'z' (and a few other pairs
// merge, which only costs a collision), so names equal under iequals hash alike.
inline std::uint64_t seeded_hash(std::string_view text, bool fold_case) {
  const std::uint64_t case_bits = fold_case ? 0x2020202020202020ULL : 0;
  constexpr std::uint64_t kMultiplier = 0x9FB21C651E98DF25ULL;
  std::uint64_t h = process_hash_seed() ^ text.size();
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    h = (h ^ (word | case_bits)) * kMultiplier;
    h ^= h >> 29;
  }
  if (i < text.size()) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + i, text.size() - i);
    h = (h ^ (word | case_bits)) * kMultiplier;
  }
  h ^= h >> 32;
  h *= kMultiplier;
  h ^= h >> 29;
  return h;
}

}  // namespace winrm::detail
