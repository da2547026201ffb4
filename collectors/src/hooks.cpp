#include "hooks.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

#include "collectors/poll_time.h"

namespace collectors::internal {
namespace {

// 100 ns intervals between 1601-01-01 (FILETIME epoch) and 1970-01-01.
constexpr std::uint64_t kFiletimeUnixEpoch = 116444736000000000ULL;

// Win32_PerfRawData_PerfOS_System.SystemUpTime is a PERF_ELAPSED_TIME counter: the
// raw value is the boot instant as a FILETIME, in units of Frequency_Object.
// Integer subtraction first: the raw value is ~1.3e17, beyond double's exact range.
// PERF_ELAPSED_TIME counters (SystemUpTime, ElapsedTime) hold an instant as a FILETIME,
// in units of Frequency_Object: convert to Unix seconds.
std::optional<double> elapsed_time_instant(const winrm::Row& row, std::string_view property) {
  const auto instant = row.uint64(property);
  const auto frequency = row.uint64("Frequency_Object");
  if (!instant || !frequency || *frequency == 0 || *instant < kFiletimeUnixEpoch) {
    return std::nullopt;
  }
  const std::uint64_t ticks = *instant - kFiletimeUnixEpoch;
  // Whole seconds and remainder separately keep sub-second precision.
  return static_cast<double>(ticks / *frequency) +
         static_cast<double>(ticks % *frequency) / static_cast<double>(*frequency);
}

std::optional<double> boot_time(const winrm::Row& row) {
  return elapsed_time_instant(row, "SystemUpTime");
}

// Win32_PerfRawData_PerfProc_Process.ElapsedTime is the process start instant.
std::optional<double> process_start_time(const winrm::Row& row) {
  return elapsed_time_instant(row, "ElapsedTime");
}

// IIS's APP_POOL_WAS perf object: CurrentApplicationPoolUptime is the pool's start instant
// and TotalApplicationPoolUptime WAS's, both PERF_ELAPSED_TIME (windows_exporter's iis
// collector does the same subtraction). A stopped pool reports 0: no sample.
std::optional<double> app_pool_start_time(const winrm::Row& row) {
  return elapsed_time_instant(row, "CurrentApplicationPoolUptime");
}

std::optional<double> was_start_time(const winrm::Row& row) {
  return elapsed_time_instant(row, "TotalApplicationPoolUptime");
}

// Win32_PageFileUsage reports MiB; the free part of a page file is what windows_exporter
// exports. CurrentUsage above AllocatedBaseSize (a file being resized) gives 0.
std::optional<double> pagefile_free_mib(const winrm::Row& row) {
  const auto allocated = row.uint64("AllocatedBaseSize");
  const auto used = row.uint64("CurrentUsage");
  if (!allocated || !used) return std::nullopt;
  return *used >= *allocated ? 0.0 : static_cast<double>(*allocated - *used);
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

// Win32_QuickFixEngineering.InstalledOn is a string, not a CIM datetime: "M/D/YYYY"
// (the en-US short date, no time of day; read as UTC midnight), or on some older systems
// 16 hex digits of a FILETIME. Anything else gives no sample.
std::optional<double> quickfix_installed_on(const winrm::Row& row) {
  const auto text = row.string("InstalledOn");
  if (!text) return std::nullopt;
  unsigned month = 0, day = 0, year = 0;
  char tail = 0;
  if (std::sscanf(text->c_str(), "%2u/%2u/%4u%c", &month, &day, &year, &tail) == 3 && month >= 1 &&
      month <= 12 && day >= 1 && day <= 31 && year >= 1970) {
    return static_cast<double>(days_from_civil(year, month, day)) * 86400.0;
  }
  if (text->size() == 16 &&
      text->find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
    const std::uint64_t filetime = std::stoull(*text, nullptr, 16);
    if (filetime < kFiletimeUnixEpoch) return std::nullopt;
    return static_cast<double>((filetime - kFiletimeUnixEpoch) / 10000000);
  }
  return std::nullopt;
}

// The host clock minus the exporter's clock (positive: the host is ahead), from
// Win32_OperatingSystem.LocalDateTime (millisecond resolution, with its UTC offset) and the
// poll-time stamps the daemon adds to host-clock rows (collectors/poll_time.h). The host read
// its clock between request and response; their midpoint is the best estimate of the
// exporter's time at that read. No stamps (rows not from a live poll): no sample.
struct PollTimes {
  double request;
  double response;
};

std::optional<PollTimes> poll_times(const winrm::Row& row) {
  const auto request = row.number(kRequestTimeProperty);
  const auto response = row.number(kResponseTimeProperty);
  if (!request || !response || *response < *request) return std::nullopt;
  return PollTimes{*request, *response};
}

std::optional<double> clock_offset(const winrm::Row& row) {
  const auto host = row.unix_time("LocalDateTime");
  const auto times = poll_times(row);
  if (!host || !times) return std::nullopt;
  return *host - (times->request + (times->response - times->request) / 2);
}

// Half the round trip: the host's read lies within +- this of the midpoint, and LocalDateTime
// drops the sub-millisecond part, so the true offset is in [clock_offset - this,
// clock_offset + this + 1 ms].
std::optional<double> clock_offset_uncertainty(const winrm::Row& row) {
  if (!row.unix_time("LocalDateTime")) return std::nullopt;
  const auto times = poll_times(row);
  if (!times) return std::nullopt;
  return (times->response - times->request) / 2;
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

const std::array<ValueHook, 8> kValueHooks = {{
    {"boot_time", {"SystemUpTime", "Frequency_Object"}, &boot_time},
    {"process_start_time", {"ElapsedTime", "Frequency_Object"}, &process_start_time},
    {"app_pool_start_time",
     {"CurrentApplicationPoolUptime", "Frequency_Object"},
     &app_pool_start_time},
    {"was_start_time", {"TotalApplicationPoolUptime", "Frequency_Object"}, &was_start_time},
    {"pagefile_free_mib", {"AllocatedBaseSize", "CurrentUsage"}, &pagefile_free_mib},
    {"quickfix_installed_on", {"InstalledOn"}, &quickfix_installed_on},
    {"clock_offset", {"LocalDateTime"}, &clock_offset},
    {"clock_offset_uncertainty", {"LocalDateTime"}, &clock_offset_uncertainty},
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
