// NTLM through GSSAPI (Debian's gss-ntlmssp) in the Negotiate scheme: handshake and
// message encryption on HTTP, against the simulator's acceptor in process.
#include "kdc_fixture.h"

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

std::shared_ptr<winrm::Auth> ntlm(const std::string& password,
                                  std::shared_ptr<winrm::NegotiateStats> stats = nullptr) {
  auto credentials = std::make_shared<winrm::CredentialManager>(
      winrm::CredentialOptions{.profile = "ntlm",
                               .mech = winrm::NegotiateMech::kNtlm,
                               .principal = "TESTDOM\\monitor",
                               .password = password});
  return winrm::make_negotiate_auth(
      {.credentials = credentials, .mechanism = winrm::NegotiateMech::kNtlm}, stats);
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
