// CredentialManager against a real MIT KDC: keytab acquisition, error classes, cache
// renewal. (Refresh over several lifetimes and KDC outages: test_refresh.cpp.)
#include "kdc_fixture.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_credentials {

// Designated initializers for the option structs, defaults for the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using winrm::AuthErrorClass;
using winrm::CredentialManager;
using winrm::CredentialOptions;

namespace {

krbtest::Kdc& kdc() {
  static krbtest::Kdc instance(16);
  return instance;
}

std::optional<AuthErrorClass> class_of(CredentialManager& manager) {
  auto cred = manager.acquire();
  REQUIRE_FALSE(cred.has_value());
  CHECK(cred.error().kind == winrm::ErrorKind::kAuth);
  return winrm::auth_error_class(cred.error());
}

}  // namespace

TEST_CASE("keytab acquisition fills the profile's MEMORY cache once") {
  auto& k = kdc();
  const int before = k.as_req_count();
  CredentialManager manager(CredentialOptions{
      .profile = "keytab-test", .principal = "exporter", .client_keytab = k.path("client.keytab")});
  CHECK(manager.ccache_name() == "MEMORY:winrm-exporter-keytab-test");
  CHECK_FALSE(manager.ticket_expiry().has_value());
  auto cred = manager.acquire();
  REQUIRE_OK(cred);
  auto expiry = manager.ticket_expiry();
  REQUIRE(expiry.has_value());
  const auto now = std::chrono::system_clock::now();
  CHECK(*expiry > now + std::chrono::seconds(5));
  CHECK(*expiry <= now + std::chrono::seconds(17));
  CHECK(manager.stats().ticket_expiry_unix == std::chrono::system_clock::to_time_t(*expiry));
  // Further handshakes within the first half-life reuse the ticket: no AS request.
  for (int i = 0; i < 5; ++i) REQUIRE(manager.acquire().has_value());
  CHECK(k.as_req_count() - before == 1);
  CHECK(manager.stats().acquisitions == 1);
  CHECK(manager.stats().handshake_credentials == 6);
}

TEST_CASE("keytab without a principal uses its first entry") {
  CredentialManager manager(
      CredentialOptions{.profile = "first-entry", .client_keytab = kdc().path("client.keytab")});
  auto cred = manager.acquire();
  REQUIRE_OK(cred);
}

TEST_CASE("wrong keytab (stale key) is credentials_invalid") {
  CredentialManager manager(CredentialOptions{
      .profile = "wrong", .principal = "exporter", .client_keytab = kdc().path("wrong.keytab")});
  CHECK(class_of(manager) == AuthErrorClass::kCredentialsInvalid);
  CHECK(manager.stats().failures[static_cast<int>(AuthErrorClass::kCredentialsInvalid)] == 1);
  CHECK_FALSE(manager.ticket_expiry().has_value());
}

TEST_CASE("unknown principal is principal_unknown") {
  CredentialManager manager(CredentialOptions{
      .profile = "ghost", .principal = "ghost", .client_keytab = kdc().path("ghost.keytab")});
  CHECK(class_of(manager) == AuthErrorClass::kPrincipalUnknown);
}

TEST_CASE("missing keytab and missing sources are no_credentials") {
  CredentialManager missing(CredentialOptions{
      .profile = "missing", .principal = "exporter", .client_keytab = kdc().path("nope.keytab")});
  CHECK(class_of(missing) == AuthErrorClass::kNoCredentials);
  CredentialManager nothing(CredentialOptions{.profile = "nothing", .principal = "exporter"});
  CHECK(class_of(nothing) == AuthErrorClass::kNoCredentials);
}

TEST_CASE("failures back off: no KDC contact until the back-off elapsed") {
  auto& k = kdc();
  CredentialManager manager(CredentialOptions{.profile = "backoff",
                                              .principal = "exporter",
                                              .client_keytab = k.path("wrong.keytab"),
                                              .min_backoff = std::chrono::milliseconds(60000)});
  CHECK(class_of(manager) == AuthErrorClass::kCredentialsInvalid);
  for (int i = 0; i < 5; ++i) CHECK(class_of(manager) == AuthErrorClass::kCredentialsInvalid);
  // One attempt only; the others returned the remembered error.
  CHECK(manager.stats().failures[static_cast<int>(AuthErrorClass::kCredentialsInvalid)] == 1);
}

TEST_CASE("error text never contains the password") {
  const std::string secret = "Sup3r-Secret-Passw0rd";
  CredentialManager manager(
      CredentialOptions{.profile = "password", .principal = "exporter", .password = secret});
  auto cred = manager.acquire();
  REQUIRE_FALSE(cred.has_value());
  CHECK(winrm::auth_error_class(cred.error()) == AuthErrorClass::kCredentialsInvalid);
  CHECK(cred.error().message.find(secret) == std::string::npos);
}

TEST_CASE("an existing renewable cache is copied, then renewed (kinit -R) when due") {
  auto& k = kdc();
  const std::string cache = "FILE:" + k.path("external.ccache");
  // A cache managed elsewhere (here: kinit with a renewable ticket).
  REQUIRE(krbtest::run("KRB5CCNAME=" + cache + " kinit -r 10m -k -t " + k.path("renewer.keytab") +
                       " renewer") == 0);
  CredentialManager manager(
      CredentialOptions{.profile = "cache", .ccache = cache, .refresh_fraction = 0.1});
  auto cred = manager.acquire();
  REQUIRE_OK(cred);
  const auto first_expiry = manager.ticket_expiry();
  REQUIRE(first_expiry.has_value());
  CHECK(manager.stats().renewals == 0);
  // 10% of the 16 s lifetime later the ticket is renewed from the cache, no keytab.
  std::this_thread::sleep_for(std::chrono::milliseconds(2700));
  cred = manager.acquire();
  REQUIRE_OK(cred);
  CHECK(manager.stats().renewals == 1);
  CHECK(*manager.ticket_expiry() > *first_expiry);
  CHECK(k.as_req_count("renewer") == 1);  // kinit's only
}

}  // namespace test_credentials
