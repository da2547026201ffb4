// Certificate authentication (WinRM client certificate mapping): the client certificate
// goes in the TLS handshake (EndpointOptions::client_cert_file), and every request says
// so with the WS-Management mutual-auth profile URI as its Authorization header, as
// Windows expects (MS-WSMV; pywinrm's `certificate` transport sends the same).
#include "http_auth_util.h"
#include "winrm/auth.h"

namespace winrm {

namespace {

class CertificateAuth final : public Auth {
 public:
  Task<Result<HttpResponse>> send_async(Connection& conn, std::string soap_body,
                                        Deadline deadline) override {
    const auto& endpoint = conn.endpoint();
    if (endpoint.scheme != Scheme::kHttps) {
      co_return make_error(ErrorKind::kAuth, "certificate auth needs https");
    }
    if (endpoint.client_cert_file.empty() || endpoint.client_key_file.empty()) {
      Error error{ErrorKind::kAuth, "certificate auth without a client certificate and key"};
      error.auth_class = AuthErrorClass::kNoCredentials;
      co_return std::unexpected(std::move(error));
    }
    HttpRequest request;
    request.body = std::move(soap_body);
    request.headers.emplace_back("Authorization", kWsmanMutualAuthProfile);
    // Nothing after the answer needs GSS: a small one is parsed where it arrives.
    auto response = co_await send_request(conn, request, deadline, Resume::kInlineIfSmall);
    if (!response) co_return std::move(response);
    // 401: no user is mapped to the certificate; 403: no certificate, or one the service
    // does not trust (HTTP.sys 403.7 / 403.16).
    if (response->status == 401 || response->status == 403) {
      Error error{ErrorKind::kAuth,
                  "HTTP " + std::to_string(response->status) + ": client certificate rejected (" +
                      (response->status == 401 ? "not mapped to a user" : "missing or untrusted") +
                      "); server offers: " + offered_auth_schemes(*response),
                  response->status};
      error.auth_class = AuthErrorClass::kServerRejected;
      // A new TLS handshake (a renewed certificate on disk) before the next try.
      conn.close();
      co_return std::unexpected(std::move(error));
    }
    co_return std::move(response);
  }

  std::string name() const override { return "certificate"; }
};

}  // namespace

std::shared_ptr<Auth> make_certificate_auth() { return std::make_shared<CertificateAuth>(); }

}  // namespace winrm
