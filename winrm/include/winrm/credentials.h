// Per-profile Kerberos/NTLM credentials: a credential manager that obtains and refreshes
// tickets without kinit and hands out a GSS credential per handshake. No GSSAPI header
// here: the daemon holds managers without seeing GSS types.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "winrm/error.h"

namespace winrm {

namespace gss {
class Credential;  // winrm/gss.h
}

enum class NegotiateMech { kKerberos, kNtlm };

struct CredentialOptions {
  std::string profile;  // names the in-process cache MEMORY:winrm-exporter-<profile>
  NegotiateMech mech = NegotiateMech::kKerberos;
  // "user", "user@REALM" (Kerberos) or "DOMAIN\user" / "user@DOMAIN" (NTLM). Optional
  // with a keytab (its first entry is used).
  std::string principal;
  std::string realm;          // appended to a principal without '@'; krb5.conf default otherwise
  std::string client_keytab;  // "FILE:/path" or a path; preferred source
  std::string password;       // secret: never logged or put into error text
  std::string ccache;         // an existing cache kept fresh elsewhere (sssd, k5start)
  // Refresh once this fraction of a ticket's lifetime has passed (tickets stay usable
  // through a KDC outage for the rest of their lifetime).
  double refresh_fraction = 0.5;
  std::chrono::milliseconds min_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
};

// Counters for the daemon's metrics (winrm_exporter_kerberos_*).
struct CredentialStats {
  std::atomic<std::uint64_t> acquisitions{0};  // tickets obtained from the KDC (AS or renewal)
  std::atomic<std::uint64_t> renewals{0};      // of which renewals (ccache mode)
  std::atomic<std::uint64_t> handshake_credentials{0};  // gss_acquire_cred_from calls
  std::array<std::atomic<std::uint64_t>, kAuthErrorClassCount> failures{};  // by class
  std::atomic<std::int64_t> ticket_expiry_unix{0};  // 0 = no ticket (NTLM: always 0)
};

// Obtains and refreshes the Kerberos ticket of one profile, and hands out a GSS
// credential per handshake. Thread-safe; acquisitions of the same principal are
// serialized (parallel AS requests would each hit the KDC).
//
// Refresh policy (ours, not MIT's: MIT's client_keytab refresh inside
// gss_acquire_cred_from fires on every call once a ticket is within 30 s of expiry,
// which with short lifetimes is an AS-REQ storm): a new ticket is requested once
// refresh_fraction of its lifetime has passed; on failure the old ticket is used until
// it expires and retries back off exponentially (min_backoff .. max_backoff).
class CredentialManager {
 public:
  explicit CredentialManager(CredentialOptions options);
  ~CredentialManager();
  CredentialManager(const CredentialManager&) = delete;
  CredentialManager& operator=(const CredentialManager&) = delete;

  // A credential for one handshake (SPNEGO mech restricted to krb5 or NTLM). Refreshes
  // the ticket first when due. Errors are kAuth with a class (auth_error_class).
  Result<std::shared_ptr<gss::Credential>> acquire();

  // Expiry of the current ticket (nullopt: none yet / NTLM).
  std::optional<std::chrono::system_clock::time_point> ticket_expiry() const;
  const CredentialStats& stats() const { return *stats_; }
  std::shared_ptr<CredentialStats> shared_stats() const { return stats_; }
  const std::string& profile() const { return options_.profile; }
  NegotiateMech mech() const { return options_.mech; }
  // "MEMORY:winrm-exporter-<profile>"
  const std::string& ccache_name() const { return ccache_name_; }

 private:
  Result<void> refresh_locked(std::chrono::system_clock::time_point now);
  Result<std::shared_ptr<gss::Credential>> acquire_ntlm();
  Result<std::shared_ptr<gss::Credential>> acquire_krb5_locked();

  CredentialOptions options_;
  std::string ccache_name_;
  std::shared_ptr<CredentialStats> stats_;
  std::shared_ptr<std::mutex> principal_mutex_;  // shared by managers of one principal
  mutable std::mutex state_mutex_;
  std::chrono::system_clock::time_point ticket_start_{}, ticket_end_{};
  std::chrono::system_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::optional<Error> last_error_;
};

}  // namespace winrm
