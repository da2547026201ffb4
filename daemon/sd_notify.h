// Minimal systemd notify protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace exporter {

// Sends state (e.g. "READY=1") when NOTIFY_SOCKET is set; no-op otherwise. Returns
// false only when sending failed.
bool sd_notify(std::string_view state);

// Watchdog period from WATCHDOG_USEC (and WATCHDOG_PID when set), halved as systemd
// recommends; nullopt when the watchdog is off.
std::optional<std::chrono::microseconds> sd_watchdog_interval();

}  // namespace exporter
