// Prometheus naming rules shared by collectors, the config and the daemon (label values are
// made valid UTF-8 with common::sanitize_utf8).
#pragma once

#include <string>
#include <string_view>

namespace collectors {

bool valid_metric_name(std::string_view name);     // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);      // [a-zA-Z_][a-zA-Z0-9_]*, not __reserved
bool valid_collector_name(std::string_view name);  // [a-z_][a-z0-9_]*

// windows_exporter's NIC name rule: every [^a-zA-Z0-9] becomes '_'.
std::string sanitize_identifier(std::string_view text);

}  // namespace collectors
