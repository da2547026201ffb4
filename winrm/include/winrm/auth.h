// Authentication seam. An Auth owns how a SOAP body crosses one connection: Basic adds
// a header; Negotiate/NTLM run a handshake per TCP connection and may wrap the body
// (message encryption on HTTP). Callers (Session) never see the difference.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "winrm/error.h"
#include "winrm/task.h"
#include "winrm/transport.h"

namespace winrm {

class Auth {
 public:
  virtual ~Auth() = default;
  // Sends one SOAP request on conn and returns the (decrypted) response. Must handle
  // the connection's id changing (a reconnect) by re-authenticating. The default runs
  // send_async to completion on the calling thread.
  virtual Result<HttpResponse> send(Connection& conn, const std::string& soap_body,
                                    Deadline deadline);
  // The same as a coroutine: suspended (no thread) while a request is in flight, resumed on
  // the awaiting chain's executor. The default calls send() there (a blocking step); an
  // Auth overrides at least one of the two.
  virtual Task<Result<HttpResponse>> send_async(Connection& conn, std::string soap_body,
                                                Deadline deadline);
  // "basic", "kerberos", "ntlm", "certificate": for metrics and logs.
  virtual std::string name() const = 0;
};

// Basic auth: only over HTTPS unless allow_http (Windows refuses it on HTTP unless
// AllowUnencrypted=true, which nobody should set).
std::shared_ptr<Auth> make_basic_auth(std::string username, std::string password,
                                      bool allow_http = false);

// The Authorization value of WS-Management certificate authentication over HTTPS.
inline constexpr const char* kWsmanMutualAuthProfile =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

// Client certificate authentication: the certificate and key are the connection's
// (EndpointOptions::client_cert_file/client_key_file); HTTPS only. 401/403 answers are
// kAuth errors of class kServerRejected.
std::shared_ptr<Auth> make_certificate_auth();

// No Authorization header at all (tests, troubleshooting).
std::shared_ptr<Auth> make_no_auth();

}  // namespace winrm
