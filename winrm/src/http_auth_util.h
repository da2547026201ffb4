// Helpers shared by the Auth implementations (Basic here, Negotiate in auth_negotiate.cpp).
#pragma once

#include <string>
#include <string_view>

#include "winrm/error.h"
#include "winrm/transport.h"

namespace winrm {

// "Negotiate, Kerberos, Basic": scheme names from WWW-Authenticate, never tokens.
std::string offered_auth_schemes(const HttpResponse& response);

// kAuth error for a final 401, naming the schemes the server offers.
Error unauthorized_error(const HttpResponse& response, std::string_view scheme);

}  // namespace winrm
