// Why a WinRM connection was opened (issue 10: TLS handshakes per hour = hosts plus reconnects
// that can be explained). Sessions come from a target's SessionPool, which knows why it made
// one; the session counts each connection its transport opens under that cause.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace exporter {

enum class ConnectCause : std::uint8_t {
  kFirst,   // the first connection of a target (start-up, target added)
  kReload,  // the first one after a reload changed the target's WinRM settings or credentials
  kBusy,    // an extra session: every kept one was busy (a slow poll, overlapping polls)
  kError,   // replaces a session dropped after a failed query (transport, TLS, auth, timeout)
  kClosed,  // a session's transport reopened its connection (the server closed or reset it)
  kOther,   // none of the above: a bug in this accounting
};
inline constexpr int kConnectCauseCount = 6;

constexpr std::string_view connect_cause_label(ConnectCause cause) {
  constexpr std::array<std::string_view, kConnectCauseCount> kLabels = {"first", "reload", "busy",
                                                                        "error", "closed", "other"};
  return kLabels[static_cast<int>(cause)];
}

struct ConnectCauses {
  std::array<std::atomic<std::uint64_t>, kConnectCauseCount> connections{};
  void add(ConnectCause cause, std::uint64_t n) {
    connections[static_cast<int>(cause)].fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t get(ConnectCause cause) const {
    return connections[static_cast<int>(cause)].load(std::memory_order_relaxed);
  }
};

}  // namespace exporter
