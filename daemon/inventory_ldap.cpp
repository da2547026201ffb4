#include "inventory_ldap.h"

#include <ldap.h>
#include <sasl/sasl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/duration.h"
#include "common/strings.h"
#include "exposition.h"
#include "winrm/gss.h"

namespace exporter {

namespace {

using winrm::ErrorKind;

// Owners of libldap's handles.
struct LdapHandle {
  LDAP* ld = nullptr;
  ~LdapHandle() {
    if (ld) ldap_unbind_ext_s(ld, nullptr, nullptr);
  }
};
struct Message {
  LDAPMessage* msg = nullptr;
  ~Message() {
    if (msg) ldap_msgfree(msg);
  }
};
struct Controls {
  LDAPControl** list = nullptr;
  ~Controls() {
    if (list) ldap_controls_free(list);
  }
};

ErrorKind kind_of(int rc) {
  switch (rc) {
    case LDAP_TIMEOUT:
      return ErrorKind::kTimeout;
    case LDAP_INVALID_CREDENTIALS:
    case LDAP_INAPPROPRIATE_AUTH:
    case LDAP_STRONG_AUTH_REQUIRED:
    case LDAP_INSUFFICIENT_ACCESS:
    case LDAP_LOCAL_ERROR:  // SASL/GSSAPI failures surface as this
    case LDAP_AUTH_UNKNOWN:
      return ErrorKind::kAuth;
    case LDAP_CONNECT_ERROR:
      return ErrorKind::kTls;  // StartTLS and certificate failures
    case LDAP_SERVER_DOWN:
      return ErrorKind::kTransport;
    default:
      return ErrorKind::kParse;  // the DC answered with an LDAP error (filter, base DN, limits)
  }
}

// "<step>: <ldap error> (<diagnostic>)". The diagnostic is the server's or libldap's
// text; neither holds the bind password.
winrm::Error ldap_error(LDAP* ld, const std::string& url, std::string_view step, int rc) {
  std::string message = url + ": " + std::string(step) + ": " + ldap_err2string(rc);
  char* diagnostic = nullptr;
  if (ld && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS &&
      diagnostic) {
    if (*diagnostic) message += std::string(" (") + diagnostic + ")";
    ldap_memfree(diagnostic);
  }
  return winrm::Error(kind_of(rc), std::move(message));
}

struct GssBind {
  gss_cred_id_t cred;
  bool passed = false;
};

// SASL prompts: GSSAPI asks only for an authorization id (none: the ticket's identity).
// libldap accepts LDAP_OPT_X_SASL_GSS_CREDS only once the bind's SASL context exists,
// which is first the case here, before the plugin's first gss_init_sec_context.
int sasl_interact(LDAP* ld, unsigned, void* defaults, void* prompts) {
  auto* bind = static_cast<GssBind*>(defaults);
  if (!bind->passed &&
      ldap_set_option(ld, LDAP_OPT_X_SASL_GSS_CREDS, bind->cred) == LDAP_OPT_SUCCESS) {
    bind->passed = true;
  }
  for (auto* prompt = static_cast<sasl_interact_t*>(prompts); prompt->id != SASL_CB_LIST_END;
       ++prompt) {
    prompt->result = "";
    prompt->len = 0;
  }
  return LDAP_SUCCESS;
}

// A krb5 credential on the profile's in-process ticket cache, after the manager has made
// its ticket fresh (keytab or password, refreshed on its schedule).
winrm::Result<std::shared_ptr<winrm::gss::Credential>> krb5_credential(
    winrm::CredentialManager& manager) {
  if (auto fresh = manager.acquire(); !fresh) return std::unexpected(fresh.error());
  gss_key_value_element_desc element{"ccache", manager.ccache_name().c_str()};
  gss_key_value_set_desc store{1, &element};
  gss_OID_set_desc krb5_set{1, winrm::gss::krb5_mech()};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &krb5_set,
                                          GSS_C_INITIATE, &store, &cred, nullptr, nullptr);
  if (GSS_ERROR(major)) {
    return winrm::make_auth_error(
        winrm::gss::classify(major, minor),
        "gss_acquire_cred_from: " + winrm::gss::status_message(major, minor));
  }
  return std::make_shared<winrm::gss::Credential>(cred);
}

timeval to_timeval(config::Duration duration) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(duration.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return tv;
}

winrm::Result<void> connect_and_bind(LdapHandle& handle, const config::LdapInventory& source,
                                     const std::string& url,
                                     const std::shared_ptr<winrm::CredentialManager>& manager) {
  int rc = ldap_initialize(&handle.ld, url.c_str());
  if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(nullptr, url, "initialize", rc));
  LDAP* ld = handle.ld;
  const int version = LDAP_VERSION3;
  const timeval timeout = to_timeval(source.timeout);
  const int demand = LDAP_OPT_X_TLS_DEMAND;
  const int new_context = 0;
  ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
  ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);  // AD's referrals go to other domains
  ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &timeout);
  ldap_set_option(ld, LDAP_OPT_TIMEOUT, &timeout);
  // The SPN is ldap/<host of the URL>, never from reverse DNS.
  ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON);
  ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
  if (!source.tls_ca_file.empty()) {
    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, source.tls_ca_file.c_str());
  }
  // A TLS context of this handle's own, so the options above apply to it.
  ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &new_context);
  if (source.start_tls && url.starts_with("ldap://")) {
    rc = ldap_start_tls_s(ld, nullptr, nullptr);
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "StartTLS", rc));
  }
  if (source.bind == config::LdapBind::kSimple) {
    std::string password = source.bind_password.reveal();
    berval credential{password.size(), password.data()};
    rc = ldap_sasl_bind_s(ld, source.bind_dn.c_str(), LDAP_SASL_SIMPLE, &credential, nullptr,
                          nullptr, nullptr);
    std::fill(password.begin(), password.end(), '\0');
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "simple bind", rc));
    return {};
  }
  if (!manager) {
    return std::unexpected(winrm::Error(ErrorKind::kAuth, url + ": no credential manager"));
  }
  auto credential = krb5_credential(*manager);
  if (!credential) {
    winrm::Error error = credential.error();
    error.message = url + ": " + error.message;
    return std::unexpected(error);
  }
  GssBind bind{(*credential)->get()};
  rc = ldap_sasl_interactive_bind_s(ld, nullptr, "GSSAPI", nullptr, nullptr, LDAP_SASL_QUIET,
                                    sasl_interact, &bind);
  if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "SASL/GSSAPI bind", rc));
  // Bound without our credential would mean some default cache's identity: refuse it.
  if (!bind.passed) {
    return std::unexpected(winrm::Error(
        ErrorKind::kAuth, url + ": SASL/GSSAPI bind did not take the profile's credential"));
  }
  return {};
}

std::optional<std::string> first_value(LDAP* ld, LDAPMessage* entry, const std::string& attr) {
  berval** values = ldap_get_values_len(ld, entry, attr.c_str());
  if (!values) return std::nullopt;
  std::optional<std::string> out;
  if (values[0]) out = std::string(values[0]->bv_val, values[0]->bv_len);
  ldap_value_free_len(values);
  return out;
}

winrm::Result<LdapSearchResult> search_one(const config::LdapInventory& source,
                                           const std::string& url,
                                           const std::shared_ptr<winrm::CredentialManager>& mgr) {
  LdapHandle handle;
  if (auto bound = connect_and_bind(handle, source, url, mgr); !bound) {
    return std::unexpected(bound.error());
  }
  LDAP* ld = handle.ld;
  std::vector<std::string> attr_names = {"dNSHostName"};
  for (const auto& [label, attr] : source.attribute_labels) attr_names.push_back(attr);
  std::vector<char*> attrs;
  for (auto& name : attr_names) attrs.push_back(name.data());
  attrs.push_back(nullptr);
  timeval timeout = to_timeval(source.timeout);

  LdapSearchResult result;
  result.url = url;
  std::map<std::string, DiscoveredHost> hosts;
  berval cookie{0, nullptr};
  // Bounded: a server that keeps returning cookies stops at max_hosts entries.
  const std::size_t max_pages = source.max_hosts / static_cast<std::size_t>(source.page_size) + 2;
  for (;;) {
    LDAPControl* page = nullptr;
    int rc = ldap_create_page_control(ld, source.page_size, &cookie, 1, &page);
    if (cookie.bv_val) ber_memfree(cookie.bv_val);
    cookie = {0, nullptr};
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "page control", rc));
    LDAPControl* server_controls[] = {page, nullptr};
    Message message;
    rc = ldap_search_ext_s(ld, source.base_dn.c_str(), LDAP_SCOPE_SUBTREE, source.filter.c_str(),
                           attrs.data(), 0, server_controls, nullptr, &timeout, LDAP_NO_LIMIT,
                           &message.msg);
    ldap_control_free(page);
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "search", rc));
    ++result.pages;
    for (LDAPMessage* entry = ldap_first_entry(ld, message.msg); entry;
         entry = ldap_next_entry(ld, entry)) {
      char* dn_raw = ldap_get_dn(ld, entry);
      std::string dn = dn_raw ? dn_raw : "";
      if (dn_raw) ldap_memfree(dn_raw);
      auto host = first_value(ld, entry, "dNSHostName");
      if (!host || host->empty()) {
        ++result.entries_without_host;
        continue;
      }
      DiscoveredHost discovered;
      discovered.host = common::to_lower(*host);
      discovered.dn = dn;
      for (const auto& [label, attr] : source.attribute_labels) {
        if (auto value = first_value(ld, entry, attr)) discovered.labels[label] = *value;
      }
      if (!source.ou_label.empty()) {
        if (auto path = ou_path(dn); path && !path->empty()) {
          discovered.labels[source.ou_label] = *path;
        }
      }
      hosts.emplace(discovered.host, std::move(discovered));  // two objects, one host: first
      if (hosts.size() > source.max_hosts) {
        return std::unexpected(winrm::Error(
            ErrorKind::kParse, url + ": more than max_hosts=" + std::to_string(source.max_hosts) +
                                   " computer objects match"));
      }
    }
    int code = LDAP_SUCCESS;
    Controls returned;
    rc = ldap_parse_result(ld, message.msg, &code, nullptr, nullptr, nullptr, &returned.list, 0);
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "search result", rc));
    if (code != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "search", code));
    LDAPControl* response = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, returned.list, nullptr);
    if (!response) break;  // the server answered everything in one go
    ber_int_t estimate = 0;
    rc = ldap_parse_pageresponse_control(ld, response, &estimate, &cookie);
    if (rc != LDAP_SUCCESS) return std::unexpected(ldap_error(ld, url, "page response", rc));
    if (cookie.bv_len == 0) break;
    if (static_cast<std::size_t>(result.pages) >= max_pages) {
      ber_memfree(cookie.bv_val);
      return std::unexpected(winrm::Error(
          ErrorKind::kParse,
          url + ": paged search did not end after " + std::to_string(result.pages) + " pages"));
    }
  }
  if (cookie.bv_val) ber_memfree(cookie.bv_val);
  result.hosts.reserve(hosts.size());
  for (auto& [name, host] : hosts) result.hosts.push_back(std::move(host));
  return result;
}

}  // namespace

std::optional<std::string> ou_path(const std::string& dn) {
  LDAPDN parsed = nullptr;
  if (ldap_str2dn(dn.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS) return std::nullopt;
  std::vector<std::string> ous;
  for (int i = 0; parsed && parsed[i]; ++i) {
    LDAPAVA* ava = parsed[i][0];  // multi-valued RDNs are not OUs
    if (!ava) continue;
    std::string_view attr(ava->la_attr.bv_val, ava->la_attr.bv_len);
    if (common::iequals(attr, "ou")) {
      ous.emplace_back(ava->la_value.bv_val, ava->la_value.bv_len);
    }
  }
  ldap_dnfree(parsed);
  std::string path;
  for (auto it = ous.rbegin(); it != ous.rend(); ++it) {
    if (!path.empty()) path += '/';
    path += *it;
  }
  return path;
}

winrm::Result<LdapSearchResult> search_ldap(
    const config::LdapInventory& source,
    const std::shared_ptr<winrm::CredentialManager>& credentials) {
  std::string errors;
  winrm::Error last;
  for (const auto& url : source.urls) {
    auto result = search_one(source, url, credentials);
    if (result) return result;
    last = result.error();
    if (!errors.empty()) errors += "; ";
    errors += last.message;
  }
  last.message = std::move(errors);  // every DC's failure, in order
  return std::unexpected(last);
}

MergedConfig merge_inventory(
    const std::shared_ptr<const config::Config>& base,
    const std::map<std::string, std::shared_ptr<const std::vector<DiscoveredHost>>>& hosts) {
  MergedConfig merged;
  if (base->inventory_ldap.empty()) {
    merged.config = base;
    return merged;
  }
  auto config = std::make_shared<config::Config>(*base);
  std::set<std::string> taken;
  for (const auto& target : config->targets) {
    taken.insert(common::to_lower(target.name));
    taken.insert(common::to_lower(target.host));
  }
  for (const auto& source : config->inventory_ldap) {
    MergeStats& stats = merged.stats[source.name];
    auto it = hosts.find(source.name);
    if (it == hosts.end() || !it->second) continue;
    for (const auto& host : *it->second) {
      if (!taken.insert(host.host).second) {
        ++stats.duplicates;
        if (stats.duplicate_names.size() < 5) stats.duplicate_names.push_back(host.host);
        continue;
      }
      config::Target target = source.defaults;
      target.name = host.host;
      target.host = host.host;
      // Labels set in the source's defaults (or globally) win over directory attributes.
      for (const auto& [label, value] : host.labels) target.labels.emplace(label, value);
      target.source = "inventory_ldap " + source.name + ": " + host.dn;
      config->targets.push_back(std::move(target));
      ++stats.targets;
    }
  }
  merged.config = std::move(config);
  return merged;
}

// --- LdapInventoryRunner -----------------------------------------------------------

namespace {

// Everything a search depends on: a change starts the source afresh.
std::string fingerprint_of(const config::LdapInventory& s) {
  std::string out = s.name + '\n';
  for (const auto& url : s.urls) out += url + ' ';
  out += '\n' + std::to_string(static_cast<int>(s.bind)) + '\n' + s.credential + '\n' + s.bind_dn +
         '\n' + s.bind_password_file + '\n' + (s.start_tls ? "1" : "0") + '\n' + s.tls_ca_file +
         '\n' + s.base_dn + '\n' + s.filter + '\n' + std::to_string(s.page_size) + '\n' +
         std::to_string(s.max_hosts) + '\n' + std::to_string(s.refresh_interval.count()) + '\n' +
         std::to_string(s.timeout.count()) + '\n' + s.ou_label + '\n';
  for (const auto& [label, attr] : s.attribute_labels) out += label + '=' + attr + ' ';
  return out;
}

}  // namespace

LdapInventoryRunner::LdapInventoryRunner(CredentialLookup credentials,
                                         std::function<void()> on_change)
    : lookup_(std::move(credentials)), on_change_(std::move(on_change)) {}

LdapInventoryRunner::~LdapInventoryRunner() { stop(); }

void LdapInventoryRunner::configure(const std::shared_ptr<const config::Config>& config) {
  std::map<std::string, Source> sources;
  for (const auto& settings : config->inventory_ldap) {
    Source source;
    source.settings = settings;
    source.fingerprint = fingerprint_of(settings);
    if (settings.bind == config::LdapBind::kGssapi) {
      auto profile = config->credentials.find(settings.credential);
      if (profile != config->credentials.end()) source.credentials = lookup_(profile->second);
    }
    sources.emplace(settings.name, std::move(source));
  }
  std::lock_guard lock(mutex_);
  for (auto& [name, source] : sources) {
    auto old = sources_.find(name);
    if (old == sources_.end() || old->second.fingerprint != source.fingerprint) continue;
    // Unchanged search: keep its list, schedule and counters; take the new per-host
    // defaults (collectors, labels...) and credential manager.
    Source& kept = old->second;
    source.hosts = std::move(kept.hosts);
    source.next_refresh = kept.next_refresh;
    source.up = kept.up;
    source.last_success = kept.last_success;
    source.last_success_unix = kept.last_success_unix;
    source.last_duration_seconds = kept.last_duration_seconds;
    source.refreshes = kept.refreshes;
    source.errors = kept.errors;
    source.stale_drops = kept.stale_drops;
    source.last_url = std::move(kept.last_url);
  }
  sources_ = std::move(sources);
  wake_.notify_all();
}

std::expected<void, std::string> LdapInventoryRunner::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return {};
  stopping_ = false;
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& error) {
    return std::unexpected(std::string("cannot start the inventory thread: ") + error.what());
  }
  return {};
}

void LdapInventoryRunner::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LdapInventoryRunner::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    // The longest overdue source first: a source whose search outlasts its
    // refresh_interval (dead DCs, each up to `timeout`) is due again at once, and taking
    // the first due by name would starve the sources after it.
    std::optional<std::string> due;
    auto due_since = now;
    auto next = now + std::chrono::hours(1);
    for (const auto& [name, source] : sources_) {
      if (source.next_refresh <= now && (!due || source.next_refresh < due_since)) {
        due = name;
        due_since = source.next_refresh;
      }
      next = std::min(next, source.next_refresh);
    }
    if (!due) {
      wake_.wait_until(lock, next);
      continue;
    }
    lock.unlock();
    const bool changed = refresh(*due);
    // The merge and apply run on this thread too, never on a poll or scrape thread.
    if (changed && on_change_) on_change_();
    lock.lock();
  }
}

bool LdapInventoryRunner::refresh(const std::string& name) {
  config::LdapInventory settings;
  std::shared_ptr<winrm::CredentialManager> credentials;
  std::string fingerprint;
  {
    std::lock_guard lock(mutex_);
    auto it = sources_.find(name);
    if (it == sources_.end()) return false;
    settings = it->second.settings;
    credentials = it->second.credentials;
    fingerprint = it->second.fingerprint;
    // Scheduled before the search: a slow DC does not make it run back to back.
    it->second.next_refresh = std::chrono::steady_clock::now() + settings.refresh_interval;
  }
  const auto started = std::chrono::steady_clock::now();
  auto result = search_ldap(settings, credentials);
  const double duration =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::lock_guard lock(mutex_);
  auto it = sources_.find(name);
  // Reconfigured while searching: that result belongs to the old settings.
  if (it == sources_.end() || it->second.fingerprint != fingerprint) return false;
  Source& source = it->second;
  ++source.refreshes;
  source.last_duration_seconds = duration;
  if (!result) {
    ++source.errors;
    // Stale-result policy: the last good list stays in force, up to max_stale_age (the
    // reloaded value: settings may be newer than the list).
    const auto limit = source.settings.max_stale_age;
    const auto age = std::chrono::steady_clock::now() - source.last_success;
    if (source.hosts && limit > config::Duration::zero() && age >= limit) {
      spdlog::warn(
          "inventory_ldap source={} refresh failed kind={} error={}; the last good list of {} "
          "hosts is {:.0f}s old (max_stale_age {:.0f}s): dropped, its targets are no longer "
          "polled until a refresh succeeds",
          name, winrm::to_string(result.error().kind), result.error().message, source.hosts->size(),
          std::chrono::duration<double>(age).count(), std::chrono::duration<double>(limit).count());
      source.up = false;
      source.hosts.reset();
      ++source.stale_drops;
      return true;
    }
    auto level = source.up || source.refreshes == 1 ? spdlog::level::warn : spdlog::level::debug;
    source.up = false;
    spdlog::log(level,
                "inventory_ldap source={} refresh failed kind={} duration={:.3f}s error={} "
                "(keeping the last good list of {} hosts)",
                name, winrm::to_string(result.error().kind), duration, result.error().message,
                source.hosts ? source.hosts->size() : 0);
    return false;
  }
  if (!source.up && source.refreshes > 1) {
    spdlog::info("inventory_ldap source={} refresh recovered url={}", name, result->url);
  }
  source.up = true;
  source.last_success = std::chrono::steady_clock::now();
  source.last_success_unix = common::unix_seconds_now();
  source.last_url = result->url;
  if (result->entries_without_host > 0) {
    spdlog::debug("inventory_ldap source={} {} computer objects without dNSHostName skipped", name,
                  result->entries_without_host);
  }
  auto hosts = std::make_shared<const std::vector<DiscoveredHost>>(std::move(result->hosts));
  bool changed = !source.hosts || source.hosts->size() != hosts->size() ||
                 !std::equal(hosts->begin(), hosts->end(), source.hosts->begin(),
                             [](const DiscoveredHost& a, const DiscoveredHost& b) {
                               return a.host == b.host && a.dn == b.dn && a.labels == b.labels;
                             });
  spdlog::log(changed ? spdlog::level::info : spdlog::level::debug,
              "inventory_ldap source={} url={} hosts={} pages={} duration={:.3f}s changed={}", name,
              result->url, hosts->size(), result->pages, duration, changed);
  source.hosts = std::move(hosts);
  return changed;
}

std::map<std::string, std::shared_ptr<const std::vector<DiscoveredHost>>>
LdapInventoryRunner::hosts() const {
  std::map<std::string, std::shared_ptr<const std::vector<DiscoveredHost>>> out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, source] : sources_) {
    if (source.hosts) out.emplace(name, source.hosts);
  }
  return out;
}

void LdapInventoryRunner::set_merge_stats(const std::map<std::string, MergeStats>& stats) {
  std::lock_guard lock(mutex_);
  for (auto& [name, source] : sources_) {
    auto it = stats.find(name);
    const std::size_t duplicates = it == stats.end() ? 0 : it->second.duplicates;
    if (duplicates > 0 && duplicates != source.duplicates) {
      std::string names;
      for (const auto& host : it->second.duplicate_names)
        names += (names.empty() ? "" : ",") + host;
      spdlog::warn(
          "inventory_ldap source={} {} hosts already defined (static targets or an earlier "
          "source) are not polled twice: {}{}",
          name, duplicates, names, duplicates > it->second.duplicate_names.size() ? ",..." : "");
    }
    source.duplicates = duplicates;
    source.targets = it == stats.end() ? 0 : it->second.targets;
  }
}

void LdapInventoryRunner::render(std::string& out) const {
  struct Row {
    std::string labels;
    const Source* source;
  };
  std::lock_guard lock(mutex_);
  if (sources_.empty()) return;
  std::vector<Row> rows;
  for (const auto& [name, source] : sources_) {
    rows.push_back({render_label_pairs({{"source", name}}), &source});
  }
  using collectors::MetricType;
  auto family = [&](std::string_view metric, std::string_view help, MetricType type, auto value) {
    FamilyWriter writer(out, metric, help, type);
    for (const auto& row : rows) writer.sample(row.labels, static_cast<double>(value(*row.source)));
  };
  family("winrm_exporter_inventory_up",
         "1 when the last LDAP refresh of the source succeeded (0: its last good list is kept).",
         MetricType::kGauge, [](const Source& s) { return s.up ? 1 : 0; });
  family("winrm_exporter_inventory_last_success_timestamp_seconds",
         "Unix time of the source's last successful LDAP refresh (0: none yet).",
         MetricType::kGauge, [](const Source& s) { return s.last_success_unix; });
  family("winrm_exporter_inventory_refresh_duration_seconds",
         "Duration of the source's last LDAP refresh, successful or not.", MetricType::kGauge,
         [](const Source& s) { return s.last_duration_seconds; });
  family("winrm_exporter_inventory_refreshes_total", "LDAP refreshes of the source.",
         MetricType::kCounter, [](const Source& s) { return s.refreshes; });
  family("winrm_exporter_inventory_refresh_errors_total",
         "LDAP refreshes of the source that failed on every URL.", MetricType::kCounter,
         [](const Source& s) { return s.errors; });
  family("winrm_exporter_inventory_stale_drops_total",
         "Times the source's last good list was dropped: a refresh failed when its last "
         "success was older than max_stale_age.",
         MetricType::kCounter, [](const Source& s) { return s.stale_drops; });
  family("winrm_exporter_inventory_hosts", "Hosts in the source's current (last good) list.",
         MetricType::kGauge, [](const Source& s) { return s.hosts ? s.hosts->size() : 0; });
  family("winrm_exporter_inventory_targets",
         "Targets the source contributes (its hosts minus duplicates).", MetricType::kGauge,
         [](const Source& s) { return s.targets; });
  family("winrm_exporter_inventory_duplicates",
         "Hosts of the source skipped because a static target or an earlier source has them.",
         MetricType::kGauge, [](const Source& s) { return s.duplicates; });
}

}  // namespace exporter
