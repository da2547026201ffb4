#include "auth_factory.h"

#include "exposition.h"

namespace exporter {

namespace {

bool is_negotiate(config::AuthMethod method) {
  return method == config::AuthMethod::kKerberos || method == config::AuthMethod::kNtlm;
}

winrm::NegotiateMech mech_of(config::AuthMethod method) {
  return method == config::AuthMethod::kNtlm ? winrm::NegotiateMech::kNtlm
                                             : winrm::NegotiateMech::kKerberos;
}

winrm::NegotiateOptions negotiate_options(const config::CredentialProfile& profile,
                                          const config::Target& target,
                                          std::shared_ptr<winrm::CredentialManager> manager) {
  winrm::NegotiateOptions options;
  options.credentials = std::move(manager);
  options.mechanism = mech_of(profile.method);
  options.spn_service = spn_service_for(profile, target);
  // Empty: the endpoint's host (target.host, else its name), never reverse DNS.
  options.spn_host = target.spn_host;
  return options;
}

}  // namespace

std::string credential_fingerprint(const config::CredentialProfile& profile) {
  return std::to_string(static_cast<int>(profile.method)) + '\n' + profile.username + '\n' +
         profile.keytab + '\n' + profile.ccache + '\n' + profile.realm + '\n';
}

void TargetAuthStats::count_error(const winrm::Error& error) {
  if (error.kind != winrm::ErrorKind::kAuth) return;
  auto error_class = winrm::auth_error_class(error).value_or(winrm::AuthErrorClass::kOther);
  ++errors[static_cast<std::size_t>(error_class)];
}

winrm::CredentialOptions credential_options(const config::CredentialProfile& profile) {
  winrm::CredentialOptions options;
  options.profile = profile.name;
  options.mech = mech_of(profile.method);
  options.principal = profile.username;
  options.realm = profile.realm;
  options.client_keytab = profile.keytab;
  options.password = profile.password.reveal();
  options.ccache = profile.ccache;
  return options;
}

std::string spn_service_for(const config::CredentialProfile& profile,
                            const config::Target& target) {
  if (!target.spn_service.empty()) return target.spn_service;
  return profile.spn_service.empty() ? "HTTP" : profile.spn_service;
}

std::shared_ptr<winrm::CredentialManager> AuthFactory::manager_for(
    const config::CredentialProfile& profile) {
  std::string fingerprint = credential_fingerprint(profile);
  std::lock_guard lock(mutex_);
  auto& entry = managers_[profile.name];
  if (!entry.manager || entry.fingerprint != fingerprint || !(entry.password == profile.password)) {
    // A changed profile starts afresh; sessions built on the old manager keep it alive
    // until they are replaced.
    entry.manager = std::make_shared<winrm::CredentialManager>(credential_options(profile));
    entry.fingerprint = std::move(fingerprint);
    entry.password = profile.password;
  }
  return entry.manager;
}

winrm::Result<std::shared_ptr<winrm::Auth>> AuthFactory::basic_for(
    const config::CredentialProfile& profile, const config::Target& target) {
  const bool allow_http = target.scheme == config::Scheme::kHttp;
  std::lock_guard lock(mutex_);
  auto& entry = basics_[profile.name + '\n' + (allow_http ? '1' : '0')];
  if (!entry.auth || entry.username != profile.username || !(entry.password == profile.password)) {
    auto auth = make_auth(profile, target);
    if (!auth) return auth;
    entry = BasicEntry{profile.username, profile.password, std::move(*auth)};
  }
  return entry.auth;
}

std::shared_ptr<AuthFactory::State> AuthFactory::save() const {
  std::lock_guard lock(mutex_);
  return std::make_shared<State>(State{managers_, basics_});
}

void AuthFactory::restore(std::shared_ptr<State> state) {
  std::lock_guard lock(mutex_);
  managers_ = std::move(state->managers);
  basics_ = std::move(state->basics);
}

winrm::Result<AuthMaker> AuthFactory::make(const config::CredentialProfile& profile,
                                           const config::Target& target,
                                           std::shared_ptr<winrm::NegotiateStats> stats) {
  if (profile.method == config::AuthMethod::kCertificate) {
    auto auth = make_auth(profile, target);  // stateless: one per target is enough
    if (!auth) return std::unexpected(auth.error());
    return AuthMaker([shared = *auth] { return shared; });
  }
  if (!is_negotiate(profile.method)) {
    auto auth = basic_for(profile, target);
    if (!auth) return std::unexpected(auth.error());
    return AuthMaker([shared = *auth] { return shared; });
  }
  auto options = negotiate_options(profile, target, manager_for(profile));
  return AuthMaker([options, stats] { return winrm::make_negotiate_auth(options, stats); });
}

std::shared_ptr<winrm::CredentialManager> AuthFactory::manager(const std::string& profile) const {
  std::lock_guard lock(mutex_);
  auto it = managers_.find(profile);
  return it == managers_.end() ? nullptr : it->second.manager;
}

void AuthFactory::retain(const std::map<std::string, config::CredentialProfile>& profiles) {
  std::lock_guard lock(mutex_);
  for (auto it = managers_.begin(); it != managers_.end();) {
    auto profile = profiles.find(it->first);
    bool keep = profile != profiles.end() && is_negotiate(profile->second.method);
    it = keep ? std::next(it) : managers_.erase(it);
  }
  for (auto it = basics_.begin(); it != basics_.end();) {
    auto profile = profiles.find(it->first.substr(0, it->first.find('\n')));
    bool keep = profile != profiles.end() && profile->second.method == config::AuthMethod::kBasic;
    it = keep ? std::next(it) : basics_.erase(it);
  }
}

void AuthFactory::render(std::string& out) const {
  std::vector<std::pair<std::string, std::shared_ptr<const winrm::CredentialStats>>> profiles;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, entry] : managers_) {
      profiles.emplace_back(name, entry.manager->shared_stats());
    }
  }
  if (profiles.empty()) return;
  using collectors::MetricType;
  {
    FamilyWriter family(out, "winrm_exporter_kerberos_ticket_expiry_timestamp_seconds",
                        "Unix time the profile's current Kerberos ticket expires (absent until "
                        "the first ticket; never for NTLM).",
                        MetricType::kGauge);
    for (const auto& [name, stats] : profiles) {
      auto expiry = stats->ticket_expiry_unix.load();
      if (expiry > 0) {
        family.sample(render_label_pairs({{"profile", name}}), static_cast<double>(expiry));
      }
    }
  }
  auto per_profile = [&](std::string_view metric, std::string_view help, auto value) {
    FamilyWriter family(out, metric, help, MetricType::kCounter);
    for (const auto& [name, stats] : profiles) {
      family.sample(render_label_pairs({{"profile", name}}), static_cast<double>(value(*stats)));
    }
  };
  per_profile("winrm_exporter_kerberos_ticket_acquisitions_total",
              "Kerberos tickets obtained from the KDC (initial requests and renewals).",
              [](const winrm::CredentialStats& s) { return s.acquisitions.load(); });
  per_profile("winrm_exporter_kerberos_ticket_renewals_total",
              "Kerberos ticket renewals (credential cache profiles).",
              [](const winrm::CredentialStats& s) { return s.renewals.load(); });
  per_profile("winrm_exporter_kerberos_credential_acquisitions_total",
              "GSS credentials handed out for handshakes.",
              [](const winrm::CredentialStats& s) { return s.handshake_credentials.load(); });
  {
    FamilyWriter family(out, "winrm_exporter_kerberos_ticket_failures_total",
                        "Failed ticket or credential acquisitions by error class.",
                        MetricType::kCounter);
    for (const auto& [name, stats] : profiles) {
      for (int i = 0; i < winrm::kAuthErrorClassCount; ++i) {
        auto error_class = static_cast<winrm::AuthErrorClass>(i);
        family.sample(render_label_pairs({{"profile", name},
                                          {"class", std::string(winrm::to_string(error_class))}}),
                      static_cast<double>(stats->failures[static_cast<std::size_t>(i)].load()));
      }
    }
  }
}

winrm::Result<std::shared_ptr<winrm::Auth>> make_auth(const config::CredentialProfile& profile,
                                                      const config::Target& target) {
  switch (profile.method) {
    case config::AuthMethod::kBasic:
      // Plain HTTP + Basic is only possible when the user configured scheme: http.
      return winrm::make_basic_auth(profile.username, profile.password.reveal(),
                                    target.scheme == config::Scheme::kHttp);
    case config::AuthMethod::kCertificate:
      // The certificate and key travel in EndpointOptions (endpoint_for).
      if (target.scheme != config::Scheme::kHttps) {
        return winrm::make_error(winrm::ErrorKind::kAuth, "certificate auth needs https");
      }
      return winrm::make_certificate_auth();
    case config::AuthMethod::kKerberos:
    case config::AuthMethod::kNtlm: {
      auto manager = std::make_shared<winrm::CredentialManager>(credential_options(profile));
      return winrm::make_negotiate_auth(negotiate_options(profile, target, std::move(manager)));
    }
  }
  return winrm::make_error(winrm::ErrorKind::kAuth, "unknown authentication method");
}

}  // namespace exporter
