// Duration strings ("1m30s", "500ms") for the config file, the web config and the
// simulator's config: one parser, two grammars.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace common {

enum class DurationSyntax {
  // Prometheus' durations: whole numbers, units d h m s ms in descending order, each at
  // most once ("1h2m3s4ms", "0s"). What the exporter's config uses.
  kPrometheus,
  // Go's time.ParseDuration as exporter-toolkit web configs use it: fractions ("1.5s"),
  // units h m s ms in any order, a bare "0". Sub-millisecond parts are truncated.
  kGo,
};

// Non-negative; nullopt for anything outside the grammar or beyond about 146,000 years.
std::optional<std::chrono::milliseconds> parse_duration(
    std::string_view text, DurationSyntax syntax = DurationSyntax::kPrometheus);

// Wall-clock seconds since the Unix epoch, with the fraction (poll and inventory timestamps).
inline double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace common
