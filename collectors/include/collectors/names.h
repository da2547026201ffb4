// Prometheus naming rules and label-value hygiene shared by collectors and the daemon.
#pragma once

#include <string>
#include <string_view>

namespace collectors {

bool valid_metric_name(std::string_view name);     // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);      // [a-zA-Z_][a-zA-Z0-9_]*, not __reserved
bool valid_collector_name(std::string_view name);  // [a-z_][a-z0-9_]*

// Replaces every invalid UTF-8 sequence (overlong forms, surrogates, truncated
// sequences, code points above U+10FFFF) with U+FFFD.
std::string sanitize_utf8(std::string_view text);
bool valid_utf8(std::string_view text);

// windows_exporter's NIC name rule: every [^a-zA-Z0-9] becomes '_'.
std::string sanitize_identifier(std::string_view text);

}  // namespace collectors
