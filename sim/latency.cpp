#include "latency.h"

#include <algorithm>
#include <cmath>

#include "common/strings.h"

namespace sim {
namespace {

// z of the 99th percentile of the standard normal distribution.
constexpr double kZ99 = 2.3263478740408408;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t hash_name(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (char c : s) {
    h ^= static_cast<unsigned char>(common::ascii_lower(c));
    h *= 1099511628211ULL;
  }
  return h;
}

// A uniform double in (0, 1).
double unit(std::uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 0.5) / 9007199254740992.0;
}

}  // namespace

LatencyClass latency_class(std::string_view wmi_class) {
  auto starts = [&](std::string_view prefix) { return common::istarts_with(wmi_class, prefix); };
  if (starts("Win32_PerfRawData_") || starts("Win32_PerfFormattedData_"))
    return LatencyClass::kPerf;
  auto is = [&](std::string_view name) { return common::iequals(wmi_class, name); };
  if (is("Win32_Service") || is("Win32_Process")) return LatencyClass::kSlow;
  return LatencyClass::kDefault;
}

LatencyModel::LatencyModel(LatencyConfig config) : config_(config) {}

const LatencyProfile& LatencyModel::profile(LatencyClass cls) const {
  switch (cls) {
    case LatencyClass::kPerf:
      return config_.perf;
    case LatencyClass::kSlow:
      return config_.slow;
    default:
      return config_.fallback;
  }
}

Millis LatencyModel::draw(std::string_view host, LatencyClass cls, std::uint64_t n) const {
  const auto& p = profile(cls);
  const double median = static_cast<double>(p.median.count());
  const double p99 = static_cast<double>(std::max(p.p99, p.median).count());
  if (median <= 0) return Millis(0);
  // Log-normal: ln(latency) ~ N(ln median, sigma) with sigma from the p99.
  const double sigma = std::log(p99 / median) / kZ99;
  const std::uint64_t key = splitmix64(config_.seed ^ splitmix64(hash_name(host)) ^
                                       splitmix64((static_cast<std::uint64_t>(cls) << 56) ^ n));
  // Box-Muller.
  const double u1 = unit(splitmix64(key)), u2 = unit(splitmix64(key ^ 0x5bd1e995ULL));
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  const double ms = std::min(median * std::exp(sigma * z), 10.0 * p99);  // no absurd tails
  return Millis(static_cast<long long>(std::llround(ms)));
}

bool LatencyModel::stalled(std::string_view host, Millis elapsed) const {
  if (!config_.stall || config_.stall_every.count() <= 0) return false;
  const auto every = static_cast<std::uint64_t>(config_.stall_every.count());
  const std::uint64_t phase = splitmix64(config_.seed ^ hash_name(host) ^ 0x57a11ULL) % every;
  const std::uint64_t t = static_cast<std::uint64_t>(std::max<long long>(0, elapsed.count()));
  return (t + phase) % every < static_cast<std::uint64_t>(config_.stall_duration.count());
}

Millis LatencyModel::next(std::string_view host, std::string_view wmi_class, Millis elapsed) {
  const auto cls = latency_class(wmi_class);
  if (cls == LatencyClass::kPerf && stalled(host, elapsed)) return config_.stall_delay;
  std::uint64_t n;
  {
    std::lock_guard lock(mutex_);
    n = counters_[std::string(host)]++;
  }
  return draw(host, cls, n);
}

}  // namespace sim
