// NTLM through GSSAPI (Debian's gss-ntlmssp) in the Negotiate scheme: handshake and
// message encryption on HTTP, against the simulator's acceptor in process.
#include "kdc_fixture.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_ntlm {

// Designated initializers for the option structs, defaults for the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

struct NtlmEnv {
  krbtest::Kdc kdc{300};  // the acceptor also loads a keytab; NTLM itself needs no KDC
  std::string users;
  NtlmEnv() {
    users = kdc.path("ntlm-users");
    std::ofstream(users) << "TESTDOM:monitor:s3cret-ntlm\n";
    // gss-ntlmssp's acceptor reads local accounts from this file (test process only).
    setenv("NTLM_USER_FILE", users.c_str(), 1);
  }
};

NtlmEnv& env() {
  static NtlmEnv instance;
  return instance;
}

std::shared_ptr<winrm::Auth> ntlm(
    const std::string& password, std::shared_ptr<winrm::NegotiateStats> stats = nullptr,
    const std::string& principal = "TESTDOM\\monitor",
    winrm::ChannelBindingPolicy channel_binding = winrm::ChannelBindingPolicy::kAuto) {
  auto credentials = std::make_shared<winrm::CredentialManager>(
      winrm::CredentialOptions{.profile = "ntlm",
                               .mech = winrm::NegotiateMech::kNtlm,
                               .principal = principal,
                               .password = password});
  return winrm::make_negotiate_auth({.credentials = credentials,
                                     .mechanism = winrm::NegotiateMech::kNtlm,
                                     .channel_binding = channel_binding},
                                    stats);
}

// NTLM-only acceptor (no keytab) with accounts from the settings (winrm-sim's
// negotiate.ntlm). NTLM_USER_FILE (set for the other cases) only knows TESTDOM\monitor,
// so a success here can only come from the settings' accounts.
sim::NegotiateSettings local_accounts(sim::CbtMode cbt = sim::CbtMode::kNone) {
  return {.cbt = cbt,
          .ntlm = true,
          .ntlm_domain = "SIMHOST",
          .ntlm_users = {{"operator", "local-pw-1"}, {"auditor", "local-pw-2"}}};
}

}  // namespace

TEST_CASE("NTLM over HTTP: three legs, then sealed messages both ways") {
  auto& e = env();
  sim::NegotiateAcceptor server({.keytab = e.kdc.path("http.keytab"), .cbt = sim::CbtMode::kNone},
                                std::nullopt);
  krbtest::LoopbackConnection conn(server,
                                   krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttp));
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = ntlm("s3cret-ntlm", stats);
  CHECK(auth->name() == "ntlm");
  for (int i = 0; i < 3; ++i) {
    auto response = auth->send(conn, "<soap>" + std::to_string(i) + "</soap>", krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->body == "<reply><soap>" + std::to_string(i) + "</soap></reply>");
  }
  CHECK(stats->handshakes == 1);
  CHECK(conn.plaintext_bodies == 0);
  CHECK(conn.encrypted_bodies == 3);
  CHECK(server.counters().encrypted_requests == 3);
}

TEST_CASE("NTLM with a wrong password is rejected by the server") {
  auto& e = env();
  sim::NegotiateAcceptor server({.keytab = e.kdc.path("http.keytab"), .cbt = sim::CbtMode::kNone},
                                std::nullopt);
  krbtest::LoopbackConnection conn(server,
                                   krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttp));
  const std::string wrong = "not-the-password";
  auto response = ntlm(wrong)->send(conn, "<soap/>", krbtest::soon());
  REQUIRE_FALSE(response.has_value());
  CHECK(winrm::auth_error_class(response.error()) == winrm::AuthErrorClass::kServerRejected);
  CHECK(response.error().message.find(wrong) == std::string::npos);
  CHECK(conn.encrypted_bodies == 0);
}

TEST_CASE("NTLM local accounts from the settings: DOMAIN\\user, .\\user and bare user") {
  env();  // NTLM_USER_FILE points elsewhere: it must not be what is used
  sim::NegotiateAcceptor server(local_accounts(), std::nullopt);
  for (const std::string principal : {"SIMHOST\\operator", ".\\operator", "operator"}) {
    CAPTURE(principal);
    krbtest::LoopbackConnection conn(server,
                                     krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttp));
    auto response = ntlm("local-pw-1", nullptr, principal)->send(conn, "<a/>", krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->body == "<reply><a/></reply>");
    CHECK(conn.encrypted_bodies == 1);
  }
  auto refused = [&](const std::string& principal, const std::string& password) {
    krbtest::LoopbackConnection conn(server,
                                     krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttp));
    auto response = ntlm(password, nullptr, principal)->send(conn, "<a/>", krbtest::soon());
    return !response.has_value() &&
           winrm::auth_error_class(response.error()) == winrm::AuthErrorClass::kServerRejected;
  };
  CHECK(refused("SIMHOST\\operator", "local-pw-2"));   // another account's password
  CHECK(refused("OTHERDOM\\operator", "local-pw-1"));  // not this host's domain
  CHECK(refused("TESTDOM\\monitor", "s3cret-ntlm"));   // only in NTLM_USER_FILE
  CHECK(refused("SIMHOST\\nobody", "local-pw-1"));
}

TEST_CASE("NTLM over HTTPS with CbtHardeningLevel=Strict needs matching channel bindings") {
  env();
  const std::string end_point = "tls-server-end-point:" + std::string(32, 'x');
  sim::NegotiateAcceptor server(local_accounts(sim::CbtMode::kStrict), end_point);
  auto https = krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttps);
  {
    krbtest::LoopbackConnection conn(server, https, end_point);
    REQUIRE_OK(
        ntlm("local-pw-2", nullptr, "SIMHOST\\auditor")->send(conn, "<a/>", krbtest::soon()));
  }
  {  // a different certificate (TLS interception)
    krbtest::LoopbackConnection conn(server, https, "tls-server-end-point:" + std::string(32, 'y'));
    CHECK_FALSE(
        ntlm("local-pw-2", nullptr, "SIMHOST\\auditor")->send(conn, "<a/>", krbtest::soon()));
  }
  {  // no bindings at all
    krbtest::LoopbackConnection conn(server, https, end_point);
    auto unbound =
        ntlm("local-pw-2", nullptr, "SIMHOST\\auditor", winrm::ChannelBindingPolicy::kNever);
    CHECK_FALSE(unbound->send(conn, "<a/>", krbtest::soon()));
  }
}

TEST_CASE("the NTLM user file format refuses what it cannot hold") {
  CHECK(sim::ntlm_user_file_text({{"a", "p"}}, "DOM") == "DOM:a:p\n.:a:p\n");
  CHECK_THROWS(sim::ntlm_user_file_text({{"a", "p:q"}}, "DOM"));
  CHECK_THROWS(sim::ntlm_user_file_text({{"a", "p\nDOM:b:c"}}, "DOM"));
  CHECK_THROWS(sim::ntlm_user_file_text({{"a:b", "p"}}, "DOM"));
  try {
    sim::ntlm_user_file_text({{"a", "secret:pw"}}, "DOM");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("secret") == std::string::npos);
  }
}

}  // namespace test_ntlm
