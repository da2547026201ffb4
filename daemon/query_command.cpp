#include "query_command.h"

#include <fstream>
#include <ostream>
#include <sstream>

#include "app.h"
#include "auth_factory.h"
#include "config/config.h"
#include "json_lines.h"
#include "log.h"
#include "winrm/session.h"

namespace exporter {

namespace {

void print_error(std::ostream& err, const winrm::Error& error) {
  err << "error: kind=" << winrm::to_string(error.kind);
  if (error.http_status) err << " http_status=" << error.http_status;
  if (error.fault) {
    const auto& fault = *error.fault;
    err << " fault_class=" << winrm::to_string(winrm::classify(fault))
        << " wsman_code=" << fault.wsman_code;
    if (!fault.subcode.empty()) err << " subcode=" << fault.subcode;
  }
  err << " message=" << logfmt_quote(error.describe()) << "\n";
}

}  // namespace

int run_query(const QueryFlags& flags, std::ostream& out, std::ostream& err) {
  winrm::SessionOptions options;
  std::shared_ptr<winrm::Auth> auth;
  if (!flags.target.empty()) {
    config::Config config;
    try {
      config = config::load(flags.config_file);
    } catch (const std::exception& error) {
      err << "error: kind=config message=" << logfmt_quote(error.what()) << "\n";
      return 1;
    }
    const config::Target* target = nullptr;
    for (const auto& candidate : config.targets) {
      if (candidate.name == flags.target) target = &candidate;
    }
    if (!target) {
      err << "error: kind=config message=" << logfmt_quote("unknown target " + flags.target)
          << "\n";
      return 1;
    }
    auto profile = config.credentials.find(target->credential);
    if (profile == config.credentials.end()) {
      err << "error: kind=config message="
          << logfmt_quote("unknown credential profile " + target->credential) << "\n";
      return 1;
    }
    auto made = make_auth(profile->second, *target);
    if (!made) {
      print_error(err, made.error());
      return 1;
    }
    auth = *made;
    options = session_options_for(config, *target);
  } else {
    std::ifstream file(flags.password_file);
    std::string password;
    if (!file || !std::getline(file, password)) {
      err << "error: kind=config message="
          << logfmt_quote("cannot read password file " + flags.password_file) << "\n";
      return 1;
    }
    while (!password.empty() && (password.back() == '\r' || password.back() == '\n')) {
      password.pop_back();
    }
    bool http = flags.scheme == "http";
    auth = winrm::make_basic_auth(flags.user, password, http);
    options.endpoint.host = flags.host;
    options.endpoint.connect_address = flags.connect_address;
    options.endpoint.port = flags.port;
    options.endpoint.scheme = http ? winrm::Scheme::kHttp : winrm::Scheme::kHttps;
    options.endpoint.ca_file = flags.ca_file;
    options.endpoint.insecure_skip_verify = flags.insecure_skip_verify;
  }
  if (flags.max_envelope_size > 0) {
    options.max_envelope_size = static_cast<std::uint32_t>(flags.max_envelope_size);
  }
  if (flags.max_elements > 0) options.max_elements = static_cast<std::uint32_t>(flags.max_elements);
  if (!flags.locale.empty()) options.locale = flags.locale;
  options.verify_relates_to = flags.verify_relates_to;
  if (options.endpoint.insecure_skip_verify) {
    err << "warning: TLS certificate verification is disabled\n";
  }
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(options, auth, counters);
  auto deadline = winrm::Clock::now() + std::chrono::duration_cast<winrm::Clock::duration>(
                                            std::chrono::duration<double>(flags.timeout_seconds));
  auto rows = session.enumerate(flags.wmi_namespace, flags.wql, deadline);
  if (!rows) {
    print_error(err, rows.error());
    return 1;
  }
  std::string buffer;
  for (const auto& row : *rows) {
    buffer += row_to_json(row);
    buffer += '\n';
  }
  out << buffer << std::flush;
  return 0;
}

}  // namespace exporter
