// Per-profile Kerberos credentials: tickets from a client keytab, a password or an
// existing cache, kept in the profile's own MEMORY: cache and refreshed by our own
// policy (see credentials.h); GSS credentials handed out per handshake.
#include "winrm/credentials.h"

#include <krb5/krb5.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "winrm/gss.h"

namespace winrm {

namespace {

// Owns a krb5_context for one refresh (contexts are confined to one thread).
struct Krb5 {
  krb5_context ctx = nullptr;
  ~Krb5() {
    if (ctx != nullptr) krb5_free_context(ctx);
  }
  std::string message(krb5_error_code code) const {
    const char* text = krb5_get_error_message(ctx, code);
    std::string out = text != nullptr ? text : "unknown krb5 error";
    krb5_free_error_message(ctx, text);
    return out;
  }
  std::unexpected<Error> fail(krb5_error_code code, std::string_view what) const {
    return make_auth_error(gss::classify_krb5(code), std::string(what) + ": " + message(code));
  }
};

template <typename T, auto Free>
struct Krb5Owned {
  krb5_context ctx;
  T value{};
  ~Krb5Owned() {
    if (value) Free(ctx, value);
  }
};
using PrincipalOwned = Krb5Owned<krb5_principal, krb5_free_principal>;
using KeytabOwned = Krb5Owned<krb5_keytab, krb5_kt_close>;
using CcacheOwned = Krb5Owned<krb5_ccache, krb5_cc_close>;

struct CredsOwned {
  krb5_context ctx;
  krb5_creds creds{};
  bool filled = false;
  ~CredsOwned() {
    if (filled) krb5_free_cred_contents(ctx, &creds);
  }
};

std::string keytab_name(const std::string& keytab) {
  return keytab.find(':') == std::string::npos || keytab.starts_with("/") ? "FILE:" + keytab
                                                                          : keytab;
}

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::shared_ptr<std::mutex> mutex_for_principal(const std::string& key) {
  static std::map<std::string, std::weak_ptr<std::mutex>> registry;
  std::lock_guard lock(registry_mutex());
  auto& weak = registry[key];
  if (auto existing = weak.lock()) return existing;
  auto created = std::make_shared<std::mutex>();
  weak = created;
  return created;
}

std::chrono::system_clock::time_point from_krb5(krb5_timestamp t) {
  // krb5_timestamp is a signed 32-bit count that wraps in 2038; MIT treats it unsigned.
  return std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<std::uint32_t>(t)));
}

// Stores creds as the only content of the MEMORY cache `name`, atomically (a handshake
// running meanwhile sees the old or the new ticket, never an empty cache).
Result<void> replace_cache(const Krb5& k, const std::string& name, krb5_principal client,
                           krb5_creds* creds, krb5_ccache copy_from = nullptr) {
  CcacheOwned tmp{k.ctx};
  if (auto code = krb5_cc_new_unique(k.ctx, "MEMORY", nullptr, &tmp.value)) {
    return k.fail(code, "creating a temporary cache");
  }
  if (auto code = krb5_cc_initialize(k.ctx, tmp.value, client)) {
    return k.fail(code, "initializing a cache");
  }
  if (creds != nullptr) {
    if (auto code = krb5_cc_store_cred(k.ctx, tmp.value, creds)) {
      return k.fail(code, "storing the ticket");
    }
  }
  if (copy_from != nullptr) {
    if (auto code = krb5_cc_copy_creds(k.ctx, copy_from, tmp.value)) {
      return k.fail(code, "copying the cache");
    }
  }
  CcacheOwned dst{k.ctx};
  if (auto code = krb5_cc_resolve(k.ctx, name.c_str(), &dst.value)) {
    return k.fail(code, "resolving the profile cache");
  }
  if (auto code = krb5_cc_move(k.ctx, tmp.value, dst.value)) {
    return k.fail(code, "replacing the profile cache");
  }
  tmp.value = nullptr;  // krb5_cc_move destroyed it
  return {};
}

struct TgtTimes {
  std::chrono::system_clock::time_point start, end, renew_till;
};

// Times of the TGT in a cache (the first krbtgt/... entry).
std::optional<TgtTimes> tgt_times(const Krb5& k, krb5_ccache cache) {
  krb5_cc_cursor cursor;
  if (krb5_cc_start_seq_get(k.ctx, cache, &cursor) != 0) return std::nullopt;
  std::optional<TgtTimes> found;
  krb5_creds creds;
  while (!found && krb5_cc_next_cred(k.ctx, cache, &cursor, &creds) == 0) {
    const krb5_principal server = creds.server;
    if (server != nullptr && server->length == 2 && server->data[0].length == 6 &&
        std::memcmp(server->data[0].data, "krbtgt", 6) == 0) {
      krb5_timestamp start = creds.times.starttime ? creds.times.starttime : creds.times.authtime;
      found = TgtTimes{from_krb5(start), from_krb5(creds.times.endtime),
                       from_krb5(creds.times.renew_till)};
    }
    krb5_free_cred_contents(k.ctx, &creds);
  }
  krb5_cc_end_seq_get(k.ctx, cache, &cursor);
  return found;
}

}  // namespace

CredentialManager::CredentialManager(CredentialOptions options)
    : options_(std::move(options)),
      ccache_name_("MEMORY:winrm-exporter-" + options_.profile),
      stats_(std::make_shared<CredentialStats>()) {
  std::string principal_key = options_.principal;
  if (principal_key.empty()) principal_key = "keytab:" + options_.client_keytab + options_.ccache;
  principal_mutex_ = mutex_for_principal(principal_key);
}

CredentialManager::~CredentialManager() = default;

std::optional<std::chrono::system_clock::time_point> CredentialManager::ticket_expiry() const {
  std::lock_guard lock(state_mutex_);
  if (ticket_end_ == std::chrono::system_clock::time_point{}) return std::nullopt;
  return ticket_end_;
}

Result<void> CredentialManager::refresh_locked(std::chrono::system_clock::time_point now) {
  Krb5 k;
  if (krb5_init_context(&k.ctx) != 0) {
    return make_auth_error(AuthErrorClass::kOther, "krb5_init_context failed (krb5.conf?)");
  }

  PrincipalOwned client{k.ctx};
  if (!options_.principal.empty()) {
    std::string name = options_.principal;
    if (name.find('@') == std::string::npos && !options_.realm.empty())
      name += "@" + options_.realm;
    if (auto code = krb5_parse_name(k.ctx, name.c_str(), &client.value)) {
      return k.fail(code, "parsing principal");
    }
  }

  CredsOwned creds{k.ctx};
  bool renewed = false;
  if (!options_.client_keytab.empty()) {
    const std::string kt_name = keytab_name(options_.client_keytab);
    if (kt_name.starts_with("FILE:") && !std::filesystem::exists(kt_name.substr(5))) {
      return make_auth_error(AuthErrorClass::kNoCredentials,
                             "client keytab not found: " + kt_name.substr(5));
    }
    KeytabOwned keytab{k.ctx};
    if (auto code = krb5_kt_resolve(k.ctx, kt_name.c_str(), &keytab.value)) {
      return k.fail(code, "opening client keytab");
    }
    if (!client.value) {  // the keytab's first principal
      krb5_kt_cursor cursor;
      krb5_keytab_entry entry;
      if (auto code = krb5_kt_start_seq_get(k.ctx, keytab.value, &cursor)) {
        return k.fail(code, "reading client keytab");
      }
      auto code = krb5_kt_next_entry(k.ctx, keytab.value, &entry, &cursor);
      if (code == 0) {
        krb5_copy_principal(k.ctx, entry.principal, &client.value);
        krb5_free_keytab_entry_contents(k.ctx, &entry);
      }
      krb5_kt_end_seq_get(k.ctx, keytab.value, &cursor);
      if (code != 0) return k.fail(code, "client keytab is empty");
    }
    krb5_get_init_creds_opt* opt = nullptr;
    krb5_get_init_creds_opt_alloc(k.ctx, &opt);
    auto code = krb5_get_init_creds_keytab(k.ctx, &creds.creds, client.value, keytab.value, 0,
                                           nullptr, opt);
    krb5_get_init_creds_opt_free(k.ctx, opt);
    if (code != 0) return k.fail(code, "getting a ticket with the client keytab");
    creds.filled = true;
  } else if (!options_.password.empty()) {
    if (!client.value) {
      return make_auth_error(AuthErrorClass::kNoCredentials, "a password needs a principal");
    }
    krb5_get_init_creds_opt* opt = nullptr;
    krb5_get_init_creds_opt_alloc(k.ctx, &opt);
    auto code =
        krb5_get_init_creds_password(k.ctx, &creds.creds, client.value, options_.password.c_str(),
                                     nullptr, nullptr, 0, nullptr, opt);
    krb5_get_init_creds_opt_free(k.ctx, opt);
    // The KDC's error text never echoes the password; ours doesn't either.
    if (code != 0) return k.fail(code, "getting a ticket with the password");
    creds.filled = true;
  } else if (!options_.ccache.empty()) {
    CcacheOwned external{k.ctx};
    if (auto code = krb5_cc_resolve(k.ctx, options_.ccache.c_str(), &external.value)) {
      return k.fail(code, "opening credential cache");
    }
    PrincipalOwned cache_client{k.ctx};
    if (auto code = krb5_cc_get_principal(k.ctx, external.value, &cache_client.value)) {
      return k.fail(code, "reading credential cache " + options_.ccache);
    }
    const auto ext = tgt_times(k, external.value);
    if (!ext) {
      return make_auth_error(AuthErrorClass::kNoCredentials,
                             "no ticket-granting ticket in " + options_.ccache);
    }
    if (ext->end > ticket_end_ && ext->end > now) {
      // Someone else (sssd, k5start) refreshed it: take a copy.
      if (auto r = replace_cache(k, ccache_name_, cache_client.value, nullptr, external.value);
          !r) {
        return r;
      }
      std::lock_guard lock(state_mutex_);
      ticket_start_ = ext->start;
      ticket_end_ = ext->end;
      stats_->acquisitions++;
      stats_->ticket_expiry_unix = std::chrono::system_clock::to_time_t(ticket_end_);
      return {};
    }
    // Renew what we hold (or the external ticket) like `kinit -R`.
    CcacheOwned ours{k.ctx};
    krb5_ccache source = external.value;
    if (ticket_end_ > now && krb5_cc_resolve(k.ctx, ccache_name_.c_str(), &ours.value) == 0) {
      source = ours.value;
    }
    const auto held = tgt_times(k, source);
    if (!held || held->renew_till <= now) {
      return make_auth_error(AuthErrorClass::kNoCredentials,
                             "ticket in " + options_.ccache + " is not renewable (any more)");
    }
    auto code = krb5_get_renewed_creds(k.ctx, &creds.creds, cache_client.value, source, nullptr);
    if (code != 0) return k.fail(code, "renewing the ticket");
    creds.filled = true;
    std::swap(client.value, cache_client.value);
    renewed = true;
  } else {
    return make_auth_error(AuthErrorClass::kNoCredentials,
                           "profile " + options_.profile + " has no keytab, password or cache");
  }

  if (auto r = replace_cache(k, ccache_name_, client.value, &creds.creds); !r) return r;
  std::lock_guard lock(state_mutex_);
  krb5_timestamp start =
      creds.creds.times.starttime ? creds.creds.times.starttime : creds.creds.times.authtime;
  ticket_start_ = from_krb5(start);
  ticket_end_ = from_krb5(creds.creds.times.endtime);
  stats_->acquisitions++;
  if (renewed) stats_->renewals++;
  stats_->ticket_expiry_unix = std::chrono::system_clock::to_time_t(ticket_end_);
  return {};
}

Result<std::shared_ptr<gss::Credential>> CredentialManager::acquire() {
  std::lock_guard principal_lock(*principal_mutex_);
  if (options_.mech == NegotiateMech::kNtlm) return acquire_ntlm();

  const auto now = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point start, end;
  {
    std::lock_guard lock(state_mutex_);
    start = ticket_start_;
    end = ticket_end_;
  }
  const bool usable = end > now + std::chrono::seconds(1);
  const auto lifetime = end - start;
  const auto refresh_at = start + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                      lifetime * options_.refresh_fraction);
  const bool due = !usable || now >= refresh_at;
  if (due && now >= next_attempt_) {
    if (auto r = refresh_locked(now); !r) {
      const auto error_class = auth_error_class(r.error()).value_or(AuthErrorClass::kOther);
      stats_->failures[static_cast<int>(error_class)]++;
      backoff_ = backoff_.count() == 0 ? options_.min_backoff
                                       : std::min(options_.max_backoff, backoff_ * 2);
      next_attempt_ = now + backoff_;
      last_error_ = r.error();
    } else {
      backoff_ = std::chrono::milliseconds(0);
      next_attempt_ = {};
      last_error_.reset();
    }
  }
  {
    std::lock_guard lock(state_mutex_);
    end = ticket_end_;
  }
  if (end <= now + std::chrono::seconds(1)) {
    if (last_error_) return std::unexpected(*last_error_);
    return make_auth_error(AuthErrorClass::kNoCredentials, "no valid ticket");
  }
  return acquire_krb5_locked();
}

Result<std::shared_ptr<gss::Credential>> CredentialManager::acquire_krb5_locked() {
  gss_key_value_element_desc element{"ccache", ccache_name_.c_str()};
  gss_key_value_set_desc store{1, &element};
  gss_OID_set_desc spnego_set{1, gss::spnego_mech()};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &spnego_set,
                                          GSS_C_INITIATE, &store, &cred, nullptr, nullptr);
  stats_->handshake_credentials++;
  if (GSS_ERROR(major)) {
    const auto error_class = gss::classify(major, minor);
    stats_->failures[static_cast<int>(error_class)]++;
    return make_auth_error(error_class,
                           "gss_acquire_cred_from: " + gss::status_message(major, minor));
  }
  auto owned = std::make_shared<gss::Credential>(cred);
  gss_OID_set_desc krb5_only{1, gss::krb5_mech()};
  major = gss_set_neg_mechs(&minor, cred, &krb5_only);
  if (GSS_ERROR(major)) {
    return make_auth_error(AuthErrorClass::kOther,
                           "gss_set_neg_mechs: " + gss::status_message(major, minor));
  }
  return owned;
}

Result<std::shared_ptr<gss::Credential>> CredentialManager::acquire_ntlm() {
  if (options_.principal.empty() || options_.password.empty()) {
    stats_->failures[static_cast<int>(AuthErrorClass::kNoCredentials)]++;
    return make_auth_error(AuthErrorClass::kNoCredentials, "NTLM needs a username and a password");
  }
  gss_buffer_desc name_buffer{options_.principal.size(), options_.principal.data()};
  gss_name_t name = GSS_C_NO_NAME;
  OM_uint32 minor = 0;
  OM_uint32 major = gss_import_name(&minor, &name_buffer, GSS_C_NT_USER_NAME, &name);
  if (GSS_ERROR(major)) {
    return make_auth_error(AuthErrorClass::kNoCredentials,
                           "bad NTLM user name: " + gss::status_message(major, minor));
  }
  gss_buffer_desc password{options_.password.size(), options_.password.data()};
  gss_OID_set_desc ntlm_set{1, gss::ntlmssp_mech()};
  gss_cred_id_t ntlm_cred = GSS_C_NO_CREDENTIAL;
  major = gss_acquire_cred_with_password(&minor, name, &password, GSS_C_INDEFINITE, &ntlm_set,
                                         GSS_C_INITIATE, &ntlm_cred, nullptr, nullptr);
  OM_uint32 ignored = 0;
  gss_release_name(&ignored, &name);
  stats_->handshake_credentials++;
  if (GSS_ERROR(major)) {
    stats_->failures[static_cast<int>(AuthErrorClass::kNoCredentials)]++;
    return make_auth_error(
        AuthErrorClass::kNoCredentials,
        "NTLM credentials (gss-ntlmssp installed?): " + gss::status_message(major, minor));
  }
  return std::make_shared<gss::Credential>(ntlm_cred);
}

}  // namespace winrm
