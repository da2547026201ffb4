// --web.config.file parsing (exporter-toolkit format) and the basic-auth / rate-limit gates.
#include <doctest/doctest.h>

#include <string>

#include "web_auth.h"
#include "web_config.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_web_config {

using namespace exporter;

namespace {

// Published bcrypt test vectors (Openwall crypt_blowfish, also in libxcrypt's test suite),
// so that the check is against hashes this code did not produce.
constexpr const char* kHashUU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
constexpr const char* kHashUUStar = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK";

std::string basic(const std::string& base64) { return "Basic " + base64; }

std::string error_of(const std::string& yaml) {
  try {
    parse_web_config(yaml, "/etc/web.yml");
  } catch (const WebConfigError& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("web config: the exporter-toolkit example parses, relative files resolve") {
  auto config = parse_web_config(
      "tls_server_config:\n"
      "  cert_file: server.crt\n"
      "  key_file: /abs/server.key\n"
      "  client_ca_file: ca.pem\n"
      "  min_version: TLS13\n"
      "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
      "  curve_preferences: [X25519, CurveP256]\n"
      "http_server_config:\n"
      "  http2: false\n"
      "  headers:\n"
      "    X-Frame-Options: deny\n"
      "    Strict-Transport-Security: max-age=31536000\n"
      "basic_auth_users:\n"
      "  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n"
      "rate_limit:\n"
      "  interval: 1s\n"
      "  burst: 20\n",
      "/etc/winrm/web.yml");
  REQUIRE(config.tls);
  CHECK(config.tls->cert_file == "/etc/winrm/server.crt");
  CHECK(config.tls->key_file == "/abs/server.key");
  CHECK(config.tls->client_ca_file == "/etc/winrm/ca.pem");
  // A client CA without client_auth_type: verify and require, as exporter-toolkit does.
  CHECK(config.tls->client_auth == ClientAuth::kRequireAndVerifyClientCert);
  CHECK(config.tls->min_version == 0x0304);
  CHECK(config.tls->curve_preferences.size() == 2);
  CHECK(config.headers.size() == 2);
  CHECK(config.basic_auth_users.at("alice").starts_with("$2y$10$"));
  CHECK(config.rate_limit_interval == std::chrono::seconds(1));
  CHECK(config.rate_limit_burst == 20);

  auto empty = parse_web_config("", "/x.yml");
  CHECK_FALSE(empty.tls);
  CHECK(empty.basic_auth_users.empty());
}

TEST_CASE("web config: errors name the file, the line and the field") {
  std::string error =
      error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  certfile: c\n");
  CHECK(error.starts_with("/etc/web.yml:4: tls_server_config.certfile: unknown key"));
  CHECK(error_of("basic_auth_user:\n  a: b\n").starts_with("/etc/web.yml:1: basic_auth_user:"));
  error = error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n");
  CHECK(error.starts_with("/etc/web.yml:4: tls_server_config.min_version"));
  CHECK(error_of("tls_server_config:\n  cert_file: a\n").find("key_file") != std::string::npos);
  CHECK(error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                 "  client_auth_type: RequireAndVerifyClientCert\n")
            .find("needs client_ca_file") != std::string::npos);
  CHECK(error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n"
                 "  max_version: TLS12\n")
            .starts_with("/etc/web.yml:5:"));
  CHECK(error_of("tls_server_config:\n  cert: '-----BEGIN'\n").find("not supported") !=
        std::string::npos);
  CHECK(error_of("http_server_config:\n  headers:\n    X-Powered-By: me\n")
            .starts_with("/etc/web.yml:3:"));
  CHECK(error_of("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
            .find("deny or sameorigin") != std::string::npos);
  CHECK(error_of("rate_limit:\n  interval: fast\n  burst: 1\n").starts_with("/etc/web.yml:2:"));
  CHECK(error_of("tls_server_config: [1]\n").find("expected a mapping") != std::string::npos);
  CHECK(error_of("a: [\n").find("yaml") != std::string::npos);
  CHECK_THROWS_AS(load_web_config("/nonexistent/web.yml"), WebConfigError);
}

TEST_CASE("web config: basic_auth_users take bcrypt hashes only, never echoed") {
  std::string error = error_of("basic_auth_users:\n  bob: hunter2\n");
  CHECK(error.starts_with("/etc/web.yml:2: basic_auth_users.bob: expected a bcrypt hash"));
  CHECK(error.find("hunter2") == std::string::npos);
  CHECK(
      error_of("basic_auth_users:\n  'a:b': " + std::string(kHashUU) + "\n").find("without ':'") !=
      std::string::npos);
  CHECK(error_of("basic_auth_users:\n  bob: " + std::string(kHashUU) + "\n").empty());
}

TEST_CASE("basic auth: bcrypt via crypt_r against published vectors, cached after success") {
  BasicAuthenticator auth({{"bob", kHashUU}, {"carol", kHashUUStar}});
  REQUIRE(auth.enabled());
  // base64("bob:U*U") and base64("carol:U*U*")
  CHECK(auth.check(basic("Ym9iOlUqVQ==")));
  CHECK(auth.check(basic("Y2Fyb2w6VSpVKg==")));
  CHECK(auth.bcrypt_runs() == 2);
  for (int i = 0; i < 5; ++i) CHECK(auth.check(basic("Ym9iOlUqVQ==")));
  CHECK(auth.bcrypt_runs() == 2);             // the cost is paid once per credential
  CHECK(auth.check("basic  Ym9iOlUqVQ== "));  // scheme case-insensitive, spaces tolerated

  CHECK_FALSE(auth.check(basic("Ym9iOlUqVSo=")));  // bob:U*U* (carol's password)
  CHECK_FALSE(auth.check(basic("Y2Fyb2w6VSpV")));  // carol:U*U (bob's password)
  CHECK_FALSE(auth.check(basic("ZXZlOlUqVQ==")));  // eve:U*U, no such user
  CHECK_FALSE(auth.check(basic("Ym9iVSpV")));      // no colon
  CHECK_FALSE(auth.check(basic("Ym9iOlUqVQ")));    // bad padding
  CHECK_FALSE(auth.check(basic("Ym9i!lUqVQ==")));  // not base64
  CHECK_FALSE(auth.check("Bearer Ym9iOlUqVQ=="));
  CHECK_FALSE(auth.check(""));
  // Failures are not cached: each one costs a bcrypt run (also for unknown users).
  int runs = auth.bcrypt_runs();
  CHECK_FALSE(auth.check(basic("ZXZlOlUqVQ==")));
  CHECK(auth.bcrypt_runs() == runs + 1);

  BasicAuthenticator none({});
  CHECK_FALSE(none.enabled());
}

TEST_CASE("basic auth: uncached checks beyond the bcrypt limit are refused as busy") {
  BasicAuthenticator none_at_once({{"bob", kHashUU}}, 0);
  CHECK(none_at_once.verify(basic("Ym9iOlUqVQ==")) == BasicAuthenticator::Result::kBusy);
  CHECK(none_at_once.verify(basic("ZXZlOlUqVQ==")) == BasicAuthenticator::Result::kBusy);
  CHECK(none_at_once.bcrypt_runs() == 0);
  // Malformed headers need no bcrypt: denied, not busy.
  CHECK(none_at_once.verify("Bearer x") == BasicAuthenticator::Result::kDenied);

  BasicAuthenticator one_at_once({{"bob", kHashUU}}, 1);
  CHECK(one_at_once.verify(basic("Ym9iOlUqVQ==")) == BasicAuthenticator::Result::kOk);
  CHECK(one_at_once.verify(basic("Ym9iOlUqVSo=")) == BasicAuthenticator::Result::kDenied);
  CHECK(one_at_once.bcrypt_runs() == 2);  // the slot is given back after each run
}

TEST_CASE("basic auth header decoding") {
  std::string user;
  std::string password;
  REQUIRE(decode_basic_authorization("Basic dTpwOnE=", user, password));  // u:p:q
  CHECK(user == "u");
  CHECK(password == "p:q");
  REQUIRE(decode_basic_authorization("Basic Og==", user, password));  // ":"
  CHECK(user.empty());
  CHECK_FALSE(decode_basic_authorization("Basic ", user, password));
  CHECK_FALSE(decode_basic_authorization("Basic =Og=", user, password));
}

TEST_CASE("rate limiter: a burst, then refusals") {
  RateLimiter limiter(std::chrono::hours(1), 3);
  REQUIRE(limiter.enabled());
  CHECK(limiter.allow());
  CHECK(limiter.allow());
  CHECK(limiter.allow());
  CHECK_FALSE(limiter.allow());
  RateLimiter off(std::chrono::milliseconds(0), 0);
  for (int i = 0; i < 100; ++i) CHECK(off.allow());
}

}  // namespace test_web_config
