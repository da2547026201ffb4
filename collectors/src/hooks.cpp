#include "hooks.h"

#include <array>
#include <cstdint>

namespace collectors::internal {
namespace {

// 100 ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01.
constexpr std::uint64_t kFiletimeUnixEpoch = 116444736000000000ULL;

// Win32_PerfRawData_PerfOS_System.SystemUpTime is a PERF_ELAPSED_TIME counter: the
// raw value is the boot instant as a FILETIME, in units of Frequency_Object.
// Integer subtraction first: the raw value is ~1.3e17, beyond double's exact range.
std::optional<double> boot_time(const winrm::Row& row) {
  const auto up_time = row.uint64("SystemUpTime");
  const auto frequency = row.uint64("Frequency_Object");
  if (!up_time || !frequency || *frequency == 0 || *up_time < kFiletimeUnixEpoch) {
    return std::nullopt;
  }
  const std::uint64_t ticks = *up_time - kFiletimeUnixEpoch;
  // Whole seconds and remainder separately keep sub-second precision.
  return static_cast<double>(ticks / *frequency) +
         static_cast<double>(ticks % *frequency) / static_cast<double>(*frequency);
}

// Win32_ComputerSystem.Domain holds the workgroup name on machines that are not
// domain members; windows_exporter reports an empty domain there.
std::optional<std::string> joined_domain(const winrm::Row& row) {
  if (row.boolean("PartOfDomain") == false) return std::string();
  return row.string("Domain").value_or("");
}

std::optional<std::string> fqdn(const winrm::Row& row) {
  auto host = row.string("DNSHostName");
  if (!host || host->empty()) return std::nullopt;
  const std::string domain = joined_domain(row).value_or("");
  return domain.empty() ? *host : *host + "." + domain;
}

const std::array<ValueHook, 1> kValueHooks = {{
    {"boot_time", {"SystemUpTime", "Frequency_Object"}, &boot_time},
}};

const std::array<LabelHook, 2> kLabelHooks = {{
    {"joined_domain", {"Domain", "PartOfDomain"}, &joined_domain},
    {"fqdn", {"DNSHostName", "Domain", "PartOfDomain"}, &fqdn},
}};

template <typename Hooks>
std::string join_names(const Hooks& hooks) {
  std::string out;
  for (const auto& hook : hooks) {
    if (!out.empty()) out += ", ";
    out += hook.name;
  }
  return out;
}

}  // namespace

const ValueHook* find_value_hook(std::string_view name) {
  for (const auto& hook : kValueHooks) {
    if (hook.name == name) return &hook;
  }
  return nullptr;
}

const LabelHook* find_label_hook(std::string_view name) {
  for (const auto& hook : kLabelHooks) {
    if (hook.name == name) return &hook;
  }
  return nullptr;
}

std::string value_hook_names() { return join_names(kValueHooks); }
std::string label_hook_names() { return join_names(kLabelHooks); }

}  // namespace collectors::internal
