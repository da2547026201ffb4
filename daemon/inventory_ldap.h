// Active Directory inventory (`inventory_ldap:`): an LDAP search of computer objects on
// one or more domain controllers, refreshed on its own thread, whose hosts become
// targets next to the static ones. OpenLDAP's libldap does LDAP, BER, TLS and (through
// Cyrus SASL's GSSAPI plugin) the Kerberos bind; nothing here speaks the protocol itself.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "winrm/credentials.h"
#include "winrm/error.h"

namespace exporter {

struct DiscoveredHost {
  std::string host;  // dNSHostName, lower case
  std::string dn;
  std::map<std::string, std::string> labels;  // from attribute_labels and ou_label
};

struct LdapSearchResult {
  std::vector<DiscoveredHost> hosts;  // sorted by host, one entry per host
  std::string url;                    // the DC that answered
  int pages = 0;
  std::size_t entries_without_host = 0;  // computer objects lacking dNSHostName
};

// "Paris/Servers" for CN=WIN01,OU=Servers,OU=Paris,DC=corp,DC=example (top-down OU path);
// empty when the DN has no OU. nullopt when dn is not a valid DN.
std::optional<std::string> ou_path(const std::string& dn);

// One search: the source's URLs in order until one binds and completes the paged search.
// gssapi: credentials is the profile's CredentialManager (its ticket cache and refresh);
// the bind uses a krb5 credential from that cache (LDAP_OPT_X_SASL_GSS_CREDS), never
// kinit or the process's default cache. Errors name the URL and never hold the password.
winrm::Result<LdapSearchResult> search_ldap(
    const config::LdapInventory& source,
    const std::shared_ptr<winrm::CredentialManager>& credentials);

// The configuration polled: `base` (static targets) plus the hosts of each source, in
// source order. A host that is already a static target (by name or host) or came from an
// earlier source is skipped and counted as a duplicate of the later source.
struct MergeStats {
  std::size_t targets = 0;                   // targets this source contributed
  std::size_t duplicates = 0;                // hosts skipped as duplicates
  std::vector<std::string> duplicate_names;  // the first few, for the log
};
struct MergedConfig {
  std::shared_ptr<const config::Config> config;
  std::map<std::string, MergeStats> stats;  // by source name
};
MergedConfig merge_inventory(
    const std::shared_ptr<const config::Config>& base,
    const std::map<std::string, std::shared_ptr<const std::vector<DiscoveredHost>>>& hosts);

// Refreshes every source on one thread of its own (polls and scrapes never wait for a
// DC), keeps the last good list of a source whose DCs fail (stale-result policy) until a
// failed refresh finds it older than max_stale_age, and calls on_change when a source's
// list changed or was dropped. Metrics: winrm_exporter_inventory_*.
class LdapInventoryRunner {
 public:
  using CredentialLookup =
      std::function<std::shared_ptr<winrm::CredentialManager>(const config::CredentialProfile&)>;
  LdapInventoryRunner(CredentialLookup credentials, std::function<void()> on_change);
  ~LdapInventoryRunner();
  LdapInventoryRunner(const LdapInventoryRunner&) = delete;
  LdapInventoryRunner& operator=(const LdapInventoryRunner&) = delete;

  // Takes a (re)loaded configuration's sources. A source whose search settings are
  // unchanged keeps its list and schedule; a new or changed one is searched at once.
  void configure(const std::shared_ptr<const config::Config>& config);
  std::expected<void, std::string> start();
  void stop();

  // The current lists by source name (last good ones; absent before a first success).
  std::map<std::string, std::shared_ptr<const std::vector<DiscoveredHost>>> hosts() const;
  // After a merge: per-source target and duplicate counts for the metrics.
  void set_merge_stats(const std::map<std::string, MergeStats>& stats);
  void render(std::string& out) const;

 private:
  struct Source {
    config::LdapInventory settings;
    std::string fingerprint;
    std::shared_ptr<winrm::CredentialManager> credentials;
    std::shared_ptr<const std::vector<DiscoveredHost>> hosts;  // last good list
    std::chrono::steady_clock::time_point next_refresh{};
    bool up = false;
    std::chrono::steady_clock::time_point last_success{};  // for max_stale_age
    double last_success_unix = 0;
    double last_duration_seconds = 0;
    std::uint64_t refreshes = 0;
    std::uint64_t errors = 0;
    std::uint64_t stale_drops = 0;  // last good lists dropped for max_stale_age
    std::size_t targets = 0;
    std::size_t duplicates = 0;
    std::string last_url;
  };
  void run();
  // Searches one source outside the lock; true when its list changed.
  bool refresh(const std::string& name);

  CredentialLookup lookup_;
  std::function<void()> on_change_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Source> sources_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace exporter
