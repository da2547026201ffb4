// The --config.check summary. Secrets appear only as Secret::str() masks.
#include <sstream>

#include "config/config.h"

namespace config {
namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

std::string format_labels(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    out += (out.empty() ? "" : ",") + key + "=\"" + value + "\"";
  }
  return "{" + out + "}";
}

std::string format_winrm(const WinrmOptions& w) {
  return "max_envelope_size=" + std::to_string(w.max_envelope_size) +
         " max_elements=" + std::to_string(w.max_elements) +
         " operation_timeout=" + format_duration(w.operation_timeout) + " locale=" + w.locale;
}

std::string format_limits(const PollLimits& l, const WinrmOptions& w) {
  const std::string response =
      l.max_response_bytes == PollLimits::kAuto
          ? "auto(" + std::to_string(effective_max_response_bytes(l, w)) + ")"
          : std::to_string(l.max_response_bytes);
  return "max_response_bytes=" + response + " max_poll_bytes=" + std::to_string(l.max_poll_bytes) +
         " max_rows_per_poll=" + std::to_string(l.max_rows_per_poll) +
         " max_properties_per_instance=" + std::to_string(l.max_properties_per_instance) +
         " max_series_per_collector=" + std::to_string(l.max_series_per_collector);
}

}  // namespace

std::string describe(const Config& config) {
  std::ostringstream out;
  const Defaults& d = config.defaults;
  out << "config: " << config.path << "\n"
      << "global: interval=" << format_duration(d.interval)
      << " timeout=" << format_duration(d.timeout) << " concurrency=" << d.concurrency
      << " per_target_concurrency=" << d.per_target_concurrency
      << " slow_poll_after=" << format_duration(d.slow_poll_after)
      << " max_slow_polls_per_target=" << d.max_slow_polls_per_target
      << " max_slow_polls=" << d.max_slow_polls
      << " stale_after_intervals=" << d.stale_after_intervals
      << " query_refresh=" << (d.query_refresh ? "true" : "false")
      << " scheme=" << to_string(d.scheme) << " port=" << d.port
      << " tls_ca_file=" << (d.tls_ca_file.empty() ? "(system)" : d.tls_ca_file)
      << " tls_insecure_skip_verify=" << (d.tls_insecure_skip_verify ? "true" : "false") << "\n"
      << "  winrm: " << format_winrm(d.winrm) << "\n"
      << "  limits: " << format_limits(d.limits, d.winrm) << "\n"
      << "  default collectors: " << join_names(d.collectors) << "\n";
  if (!d.credential.empty()) out << "  default credential: " << d.credential << "\n";
  if (!d.proxy.url.empty()) {
    out << "  proxy: " << d.proxy.url;
    if (!d.proxy.ca_file.empty()) out << " proxy_ca_file=" << d.proxy.ca_file;
    out << "\n";
  }
  if (!d.no_proxy.empty()) out << "  no_proxy: " << d.no_proxy << "\n";
  if (!d.labels.empty()) out << "  labels: " << format_labels(d.labels) << "\n";

  out << "credentials (" << config.credentials.size() << "):\n";
  for (const auto& [name, p] : config.credentials) {
    out << "  " << name << ": auth=" << to_string(p.method);
    if (!p.username.empty()) out << " username=" << p.username;
    if (!p.password.empty()) {
      out << (p.method == AuthMethod::kCertificate ? " key_password=" : " password=")
          << p.password.str();
      if (!p.password_file.empty()) out << " (from file " << p.password_file << ")";
      if (!p.password_env.empty()) out << " (from env " << p.password_env << ")";
    }
    if (!p.keytab.empty()) out << " keytab=" << p.keytab;
    if (!p.ccache.empty()) out << " ccache=" << p.ccache;
    if (!p.realm.empty()) out << " realm=" << p.realm;
    if (!p.cert_file.empty()) out << " cert_file=" << p.cert_file << " key_file=" << p.key_file;
    if (p.method == AuthMethod::kKerberos || p.method == AuthMethod::kNtlm) {
      out << " spn_service=" << p.spn_service;
    }
    out << "\n";
  }

  std::vector<std::string> collector_names;
  for (const auto& [name, _] : config.collectors) collector_names.push_back(name);
  out << "collectors available (" << collector_names.size() << "): " << join_names(collector_names)
      << "\n";

  out << "targets (" << config.targets.size() << "):\n";
  for (const auto& t : config.targets) {
    out << "  " << t.name << ": " << to_string(t.scheme) << "://" << t.host << ":" << t.port;
    if (!t.connect_address.empty()) out << " connect=" << t.connect_address;
    out << " credential=" << t.credential << " interval=" << format_duration(t.interval)
        << " timeout=" << format_duration(t.timeout) << " collectors=" << join_names(t.collectors);
    if (!t.labels.empty()) out << " labels=" << format_labels(t.labels);
    if (!t.spn_host.empty()) out << " spn_host=" << t.spn_host;
    if (!t.spn_service.empty()) out << " spn_service=" << t.spn_service;
    if (t.tls_insecure_skip_verify) out << " tls_insecure_skip_verify=true";
    if (!t.proxy.url.empty()) {
      out << " proxy=" << t.proxy.url;
      if (!t.proxy.ca_file.empty()) out << " proxy_ca_file=" << t.proxy.ca_file;
      if (!t.proxy.username.empty()) {
        out << " proxy_username=" << t.proxy.username
            << " proxy_password=" << t.proxy.password.str() << " (from file "
            << t.proxy.password_file << ")";
      }
    }
    out << " [" << t.source << "]\n";
    // Only where a target differs from the global values, to keep the summary short.
    if (!(t.winrm == d.winrm)) out << "    winrm: " << format_winrm(t.winrm) << "\n";
    if (!(t.limits == d.limits) || !(t.winrm == d.winrm)) {
      out << "    limits: " << format_limits(t.limits, t.winrm) << "\n";
    }
  }
  if (!config.inventory_ldap.empty()) {
    out << "inventory_ldap (" << config.inventory_ldap.size() << "):\n";
    for (const auto& s : config.inventory_ldap) {
      out << "  " << s.name << ": urls=" << join_names(s.urls) << " base_dn=" << s.base_dn;
      if (s.bind == LdapBind::kGssapi) {
        out << " bind=gssapi credential=" << s.credential;
      } else {
        out << " bind=simple bind_dn=" << s.bind_dn << " password=" << s.bind_password.str()
            << " (from file " << s.bind_password_file << ")";
      }
      out << " filter=" << s.filter << " refresh_interval=" << format_duration(s.refresh_interval)
          << " max_stale_age="
          << (s.max_stale_age == Duration::zero() ? "never" : format_duration(s.max_stale_age))
          << " targets: credential=" << s.defaults.credential
          << " collectors=" << join_names(s.defaults.collectors) << " [" << s.source << "]\n";
    }
  }
  return out.str();
}

}  // namespace config
