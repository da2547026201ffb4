// The Negotiate Auth (SPNEGO with Kerberos, or NTLM) for `auth: kerberos` / `auth: ntlm`:
// mutual authentication, message encryption on HTTP and channel binding on HTTPS, on a
// security context bound to one connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "winrm/auth.h"
#include "winrm/credentials.h"

namespace winrm {

enum class EncryptionPolicy { kAuto, kAlways, kNever };  // auto: on for HTTP, off for HTTPS
enum class ChannelBindingPolicy { kAuto, kNever };       // auto: on for HTTPS

struct NegotiateOptions {
  std::shared_ptr<CredentialManager> credentials;
  std::string spn_service = "HTTP";  // or "WSMAN"
  std::string spn_host;              // empty: the endpoint's host (never reverse DNS)
  NegotiateMech mechanism = NegotiateMech::kKerberos;
  EncryptionPolicy encryption = EncryptionPolicy::kAuto;
  ChannelBindingPolicy channel_binding = ChannelBindingPolicy::kAuto;
  int max_legs = 4;  // handshake round trips before giving up
};

// Per-target handshake counters (one Auth per target).
struct NegotiateStats {
  std::atomic<std::uint64_t> handshakes{0};
  std::atomic<std::uint64_t> handshake_failures{0};
  std::atomic<std::uint64_t> reauth_on_401{0};
  std::atomic<std::uint64_t> encrypted_messages{0};
};

// The Auth for `auth: kerberos` / `auth: ntlm`. Holds one security context bound to
// the connection it was made on. Not thread-safe (like Connection).
std::shared_ptr<Auth> make_negotiate_auth(NegotiateOptions options,
                                          std::shared_ptr<NegotiateStats> stats = nullptr);

}  // namespace winrm
