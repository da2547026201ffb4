// The built-in collectors (collectors/builtin/*.yml, compiled into the library).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"

namespace collectors {

// Name -> collector. Parsed once and shared; the collectors are immutable and
// safe to use from any thread.
const std::map<std::string, CollectorPtr>& builtin_collector_map();
std::map<std::string, CollectorPtr> builtin_collectors();

// Enabled when a target does not list its collectors:
// cpu, logical_disk, memory, net, os, service, system.
std::vector<std::string> default_collector_names();

// The YAML text a built-in was parsed from (empty when unknown), for docs and --help.
std::string_view builtin_definition_text(std::string_view name);

}  // namespace collectors
