// Builds the winrm::Auth for a target from its credential profile.
#pragma once

#include <memory>

#include "config/config.h"
#include "winrm/auth.h"
#include "winrm/error.h"

namespace exporter {

// Basic today. Kerberos and NTLM return a kAuth error until winrm gains them (the
// Kerberos work plugs its factory in here).
winrm::Result<std::shared_ptr<winrm::Auth>> make_auth(const config::CredentialProfile& profile,
                                                      const config::Target& target);

}  // namespace exporter
