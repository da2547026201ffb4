// The exporter's clock around a query, so that a collector can compare the host's clock with
// it without reading a clock itself. The daemon stamps the rows of host-clock queries with
// two extra properties: the exporter's time just before the Enumerate went out and just
// after its last response arrived (Unix seconds, as text). The host read its clock between
// the two, so the midpoint estimates the exporter's time at that read, within half the
// round trip.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/row.h"

namespace collectors {

// "__" is WMI's prefix for system properties: no class property can collide with these.
inline constexpr std::string_view kRequestTimeProperty = "__ExporterRequestTime";
inline constexpr std::string_view kResponseTimeProperty = "__ExporterResponseTime";

// True for a query of a class that holds the host's clock (Win32_OperatingSystem,
// Win32_UTCTime, Win32_LocalTime). Only those rows are stamped: one row each, so stamping
// costs nothing, and no other collector sees the extra properties.
bool wants_poll_time(std::string_view wql);

// Adds both properties to every row.
void stamp_poll_time(std::vector<winrm::Row>& rows, double request_unix, double response_unix);

// Sliding time windows in WQL: `{{now-15m}}` (units s, m, h, d; `{{now}}` alone too) is
// replaced, when the query is sent, with that instant as a DMTF datetime in UTC
// ("20261201204500.000000+000"), e.g. WHERE TimeGenerated >= '{{now-15m}}'. The daemon
// expands them with its own clock; collectors only validate them.
// Error text for a malformed placeholder, nullopt when every placeholder is valid.
std::optional<std::string> check_wql_placeholders(std::string_view wql);
bool has_wql_placeholders(std::string_view wql);
// Every placeholder replaced (invalid ones are left as they are; definitions are validated).
std::string expand_wql_placeholders(std::string_view wql, double now_unix);

}  // namespace collectors
