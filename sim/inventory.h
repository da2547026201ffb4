// Deterministic per-virtual-host WMI data. Every host name (lower-cased) seeds its own
// stable inventory; counters are functions of wall-clock time since the host's boot,
// so any two polls give sane, non-negative rates (and values survive sim restarts of
// the model, except the boot time which is re-drawn like a reboot).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "value.h"

namespace sim {

struct HostModel;

struct Instance {
  std::vector<Value> values;  // aligned with ClassDef::properties
};

using ClassGenerator = void (*)(const HostModel&, double now_unix, std::vector<Instance>& out);

struct ClassDef {
  std::string name;
  std::string wmi_namespace = "root/cimv2";  // as Windows spells it in resource URIs
  std::vector<std::string> properties;       // case-insensitively sorted = Windows render order
  std::unordered_map<std::string, int> exact_index;
  std::unordered_map<std::string, int> lower_index;
  ClassGenerator generate = nullptr;

  int find(std::string_view name) const;   // case-insensitive, -1 when absent
  int exact(std::string_view name) const;  // generator use; -1 when absent
};

// Namespaces the sim knows: "root/cimv2" (most classes), "root/wmi" (none) and
// "root/microsoft/windows/taskscheduler" (MSFT_ScheduledTask).
bool known_namespace(std::string_view ns_lower);

// Case-insensitive lookup in any namespace; nullptr when the class does not exist.
const ClassDef* find_class(std::string_view name);
// The same, restricted to one namespace (lower-case), as an Enumerate resolves it.
const ClassDef* find_class(std::string_view ns_lower, std::string_view name);
std::vector<std::string> class_names();

class Inventory {
 public:
  explicit Inventory(const std::vector<HostConfig>& overrides);

  // Instances of `cls` on `host` (any case; port must already be stripped) at `now_unix`.
  std::vector<Instance> instances(const std::string& host, const ClassDef& cls, double now_unix);

  std::shared_ptr<const HostModel> model(const std::string& host);

 private:
  std::unordered_map<std::string, HostConfig> overrides_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const HostModel>> models_;
};

std::uint64_t host_seed(std::string_view host_lower);
double now_unix_seconds();
// 2013-04-15T16:28:43.488171Z style (UTC, microseconds), or with micro=false whole
// milliseconds truncated like a Windows clock read (2013-04-15T20:27:39.762Z).
std::string xs_datetime(double unix_seconds, bool micro = true);

}  // namespace sim
