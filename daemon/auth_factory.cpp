#include "auth_factory.h"

namespace exporter {

winrm::Result<std::shared_ptr<winrm::Auth>> make_auth(const config::CredentialProfile& profile,
                                                      const config::Target& target) {
  switch (profile.method) {
    case config::AuthMethod::kBasic:
      // Plain HTTP + Basic is only possible when the user configured scheme: http.
      return winrm::make_basic_auth(profile.username, profile.password.reveal(),
                                    target.scheme == config::Scheme::kHttp);
    case config::AuthMethod::kKerberos:
      return winrm::make_error(winrm::ErrorKind::kAuth,
                               "credential profile " + profile.name +
                                   ": kerberos authentication is not available in this build");
    case config::AuthMethod::kNtlm:
      return winrm::make_error(winrm::ErrorKind::kAuth,
                               "credential profile " + profile.name +
                                   ": ntlm authentication is not available in this build");
  }
  return winrm::make_error(winrm::ErrorKind::kAuth, "unknown authentication method");
}

}  // namespace exporter
