// Basic and no-op authentication. The Authorization header is built once and never
// logged or put into error text.
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "http_auth_util.h"
#include "winrm/auth.h"

namespace winrm {

Result<HttpResponse> Auth::send(Connection& conn, const std::string& soap_body, Deadline deadline) {
  return run_sync(send_async(conn, soap_body, deadline));
}

Task<Result<HttpResponse>> Auth::send_async(Connection& conn, std::string soap_body,
                                            Deadline deadline) {
  co_await leave_io_thread();  // send() blocks until the I/O thread answers
  co_return send(conn, soap_body, deadline);
}

std::string offered_auth_schemes(const HttpResponse& response) {
  std::string schemes;
  for (const auto& value : response.header_values("WWW-Authenticate")) {
    // Only the scheme name: the rest may be a challenge token.
    const std::string scheme = value.substr(0, value.find(' '));
    if (scheme.empty()) continue;
    if (!schemes.empty()) schemes += ", ";
    schemes += scheme;
  }
  return schemes.empty() ? "none" : schemes;
}

Error unauthorized_error(const HttpResponse& response, std::string_view scheme) {
  return Error{ErrorKind::kAuth,
               "HTTP 401: " + std::string(scheme) +
                   " credentials rejected; server offers: " + offered_auth_schemes(response),
               response.status, std::nullopt};
}

namespace {

class HeaderAuth final : public Auth {
 public:
  HeaderAuth(std::string name, std::string authorization, bool allow_http)
      : name_(std::move(name)), authorization_(std::move(authorization)), allow_http_(allow_http) {}
  // The header holds the password, merely encoded: not left in freed memory.
  ~HeaderAuth() override { OPENSSL_cleanse(authorization_.data(), authorization_.size()); }

  Task<Result<HttpResponse>> send_async(Connection& conn, std::string soap_body,
                                        Deadline deadline) override {
    if (!authorization_.empty() && !allow_http_ && conn.endpoint().scheme == Scheme::kHttp) {
      co_return make_error(ErrorKind::kAuth, "basic auth over http refused");
    }
    HttpRequest request;
    request.body = std::move(soap_body);
    if (!authorization_.empty()) request.headers.emplace_back("Authorization", authorization_);
    // Nothing after the answer needs GSS: a small one is parsed where it arrives.
    auto response = co_await send_request(conn, request, deadline, Resume::kInlineIfSmall);
    if (!response) co_return std::move(response);
    if (response->status == 401) co_return std::unexpected(unauthorized_error(*response, name_));
    co_return std::move(response);
  }

  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::string authorization_;  // secret: never logged
  bool allow_http_;
};

}  // namespace

std::shared_ptr<Auth> make_basic_auth(std::string username, std::string password, bool allow_http) {
  std::string credentials = username + ":" + password;
  auto auth = std::make_shared<HeaderAuth>("basic", "Basic " + common::base64_encode(credentials),
                                           allow_http);
  OPENSSL_cleanse(credentials.data(), credentials.size());
  OPENSSL_cleanse(password.data(), password.size());
  return auth;
}

std::shared_ptr<Auth> make_no_auth() { return std::make_shared<HeaderAuth>("none", "", true); }

}  // namespace winrm
