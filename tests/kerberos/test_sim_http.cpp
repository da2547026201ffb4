// Negotiate over real HTTP(S) through winrm::Session against winrm-sim (GSS acceptor,
// message encryption enforced on HTTP, CbtHardeningLevel=Strict on HTTPS), real KDC.
#include "kdc_fixture.h"
#include "testsupport/sim_process.h"
#include "winrm/session.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_sim_http {

// Designated initializers for the option structs, defaults for the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using winrm::AuthErrorClass;
using winrm::Scheme;

namespace {

struct Env {
  krbtest::Kdc kdc{300};
  simtest::TempDir dir;
  std::unique_ptr<simtest::SimProcess> sim;
  std::shared_ptr<winrm::CredentialManager> credentials;
  Env() {
    simtest::gen_certs(dir.path());
    sim = std::make_unique<simtest::SimProcess>(
        dir.path(),
        "https: {address: 127.0.0.1, port: 0, cert: {dir}/server.pem, key: {dir}/server.key}\n"
        "http: {address: 127.0.0.1, port: 0}\n"
        "negotiate: {keytab: " +
            kdc.path("http.keytab") + ", require_encryption_on_http: true, cbt: strict}\n");
    credentials = std::make_shared<winrm::CredentialManager>(
        winrm::CredentialOptions{.profile = "sim-http",
                                 .principal = "exporter",
                                 .client_keytab = kdc.path("client.keytab")});
  }
};

Env& env() {
  static Env instance;
  return instance;
}

winrm::SessionOptions session_options(const std::string& host, Scheme scheme) {
  winrm::SessionOptions options;
  options.endpoint.host = host;
  options.endpoint.connect_address = "127.0.0.1";
  options.endpoint.scheme = scheme;
  options.endpoint.port = env().sim->port(scheme == Scheme::kHttps ? "https" : "http");
  options.endpoint.ca_file = (env().dir.path() / "ca.pem").string();
  return options;
}

struct Run {
  winrm::Result<std::vector<winrm::Row>> rows;
  std::shared_ptr<winrm::NegotiateStats> stats;
  std::shared_ptr<winrm::TransportCounters> counters;
};

Run query(const std::string& host, Scheme scheme, winrm::NegotiateOptions options = {},
          int times = 1) {
  options.credentials = env().credentials;
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto counters = std::make_shared<winrm::TransportCounters>();
  winrm::Session session(session_options(host, scheme), winrm::make_negotiate_auth(options, stats),
                         counters);
  winrm::Result<std::vector<winrm::Row>> rows;
  for (int i = 0; i < times; ++i) {
    rows = session.enumerate("root/cimv2", "SELECT Name, NumberOfCores FROM Win32_Processor",
                             krbtest::soon());
    if (!rows) break;
  }
  return {std::move(rows), stats, counters};
}

}  // namespace

TEST_CASE("HTTPS Negotiate with channel binding against CBT-strict winrm-sim") {
  auto run = query("localhost", Scheme::kHttps, {}, 3);
  REQUIRE_OK(run.rows);
  CHECK_FALSE(run.rows->empty());
  CHECK(run.stats->handshakes >= 1);
  CHECK(run.stats->handshakes <= 3);
  CHECK(run.stats->encrypted_messages == 0);  // HTTPS: TLS protects the body
}

TEST_CASE("HTTPS without channel binding is refused by CBT-strict winrm-sim") {
  auto run =
      query("localhost", Scheme::kHttps, {.channel_binding = winrm::ChannelBindingPolicy::kNever});
  REQUIRE_FALSE(run.rows.has_value());
  CHECK(run.rows.error().kind == winrm::ErrorKind::kAuth);
  CHECK(winrm::auth_error_class(run.rows.error()) == AuthErrorClass::kServerRejected);
}

TEST_CASE("HTTP 5985 with message encryption; plaintext would be refused") {
  auto run = query("win01.sim.test", Scheme::kHttp, {}, 3);
  REQUIRE_OK(run.rows);
  CHECK_FALSE(run.rows->empty());
  // Every SOAP request went encrypted (one empty-body handshake POST per connection).
  CHECK(run.stats->encrypted_messages >= 3);
  CHECK(run.stats->encrypted_messages ==
        run.counters->requests.load() - run.stats->handshakes.load());

  // The same client told not to encrypt: the sim answers 500 like Windows
  // (AllowUnencrypted=false), so the success above cannot have been plaintext.
  auto plain =
      query("win01.sim.test", Scheme::kHttp, {.encryption = winrm::EncryptionPolicy::kNever});
  REQUIRE_FALSE(plain.rows.has_value());
  CHECK(plain.rows.error().http_status == 500);
}

TEST_CASE("a second host with a different SPN (WSMAN) in the same process") {
  auto first = query("win01.sim.test", Scheme::kHttp);
  REQUIRE_OK(first.rows);
  auto second = query("win02.sim.test", Scheme::kHttp, {.spn_service = "WSMAN"});
  REQUIRE_OK(second.rows);
  CHECK_FALSE(second.rows->empty());
  // win02 has no HTTP/ SPN in the KDC: the default service fails, classified.
  auto wrong = query("win02.sim.test", Scheme::kHttp);
  REQUIRE_FALSE(wrong.rows.has_value());
  CHECK(winrm::auth_error_class(wrong.rows.error()) == AuthErrorClass::kPrincipalUnknown);
}

}  // namespace test_sim_http
