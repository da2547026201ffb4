// Builds the winrm::Auth of a target from its credential profile: Basic, or Negotiate
// (Kerberos/NTLM) with one CredentialManager per profile shared by all its targets.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "config/config.h"
#include "winrm/auth.h"
#include "winrm/credentials.h"
#include "winrm/error.h"
#include "winrm/negotiate_auth.h"

namespace exporter {

// Makes the Auth of one Session. Negotiate keeps a security context bound to one
// connection, so every Session needs its own; Basic hands out one shared Auth.
using AuthMaker = std::function<std::shared_ptr<winrm::Auth>()>;

// Per-target authentication counters.
struct TargetAuthStats {
  std::shared_ptr<winrm::NegotiateStats> negotiate =
      std::make_shared<winrm::NegotiateStats>();  // handshakes (Negotiate only)
  // Polls that failed with ErrorKind::kAuth, by winrm::AuthErrorClass (kOther when the
  // error carries no class, e.g. a Basic 401).
  std::array<std::atomic<std::uint64_t>, winrm::kAuthErrorClassCount> errors{};
  void count_error(const winrm::Error& error);
};

// Everything a CredentialManager is built from but the password (compared apart, so that it
// is not copied): equal fingerprints and passwords let a reload keep the manager, and the
// app's per-target fingerprint includes it so a changed profile rebuilds the sessions.
std::string credential_fingerprint(const config::CredentialProfile& profile);

class AuthFactory {
 public:
  // The AuthMaker of a target. Kerberos/NTLM profiles share one CredentialManager per
  // profile name (one in-process ticket cache, one refresh schedule); it survives
  // reloads while the profile's credential settings are unchanged.
  winrm::Result<AuthMaker> make(const config::CredentialProfile& profile,
                                const config::Target& target,
                                std::shared_ptr<winrm::NegotiateStats> stats);
  // After a reload: drops managers of profiles that no longer exist.
  void retain(const std::map<std::string, config::CredentialProfile>& profiles);

  // The shared managers and Basic Auths: a reload that fails after make() restores them.
  struct State;
  std::shared_ptr<State> save() const;
  void restore(std::shared_ptr<State> state);

  // The profile's shared manager, made when there is none (the LDAP inventory binds with
  // the same ticket cache and refresh as the polls).
  std::shared_ptr<winrm::CredentialManager> manager_for(const config::CredentialProfile& profile);
  // The profile's current manager (null when none): for tests.
  std::shared_ptr<winrm::CredentialManager> manager(const std::string& profile) const;

  // winrm_exporter_kerberos_* families, one series set per Kerberos/NTLM profile.
  void render(std::string& out) const;

 private:
  struct Entry {
    std::string fingerprint;  // credential settings but the password
    config::Secret password;  // shared with the config, not a copy
    std::shared_ptr<winrm::CredentialManager> manager;
  };
  // One Basic Auth (it holds the encoded password) per profile and plain-HTTP permission,
  // shared by the profile's targets instead of one copy per target.
  struct BasicEntry {
    std::string username;
    config::Secret password;
    std::shared_ptr<winrm::Auth> auth;
  };
  winrm::Result<std::shared_ptr<winrm::Auth>> basic_for(const config::CredentialProfile& profile,
                                                        const config::Target& target);

  mutable std::mutex mutex_;
  std::map<std::string, Entry> managers_;     // by profile name
  std::map<std::string, BasicEntry> basics_;  // by profile name + '\n' + allow_http
};

struct AuthFactory::State {
  std::map<std::string, Entry> managers;
  std::map<std::string, BasicEntry> basics;
};

// A single Auth for one-off use (the query command): a private CredentialManager for
// Kerberos/NTLM.
winrm::Result<std::shared_ptr<winrm::Auth>> make_auth(const config::CredentialProfile& profile,
                                                      const config::Target& target);

// Mapping of a profile to the winrm credential options (exposed for tests).
winrm::CredentialOptions credential_options(const config::CredentialProfile& profile);
// The SPN service for a target: its override, else the profile's (HTTP by default).
std::string spn_service_for(const config::CredentialProfile& profile, const config::Target& target);

}  // namespace exporter
