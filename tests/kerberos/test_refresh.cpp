// Unattended ticket refresh over two lifetimes (AS requests counted in the KDC log),
// then a KDC outage survived until the ticket expires and recovered after restart.
// Real MIT KDC, 16 s tickets, clockskew 5; about 60 s (two lifetimes: three or four refreshes
// at the half-life; a third lifetime added 16 s to both the default and ASan stages).
#include "kdc_fixture.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_refresh {

// Designated initializers for the option structs, defaults for the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace std::chrono_literals;
using std::chrono::system_clock;

TEST_CASE("polling across two ticket lifetimes and a KDC outage, no kinit") {
  constexpr int kLifetime = 16;
  krbtest::Kdc kdc(kLifetime);
  auto credentials = std::make_shared<winrm::CredentialManager>(
      winrm::CredentialOptions{.profile = "refresh",
                               .principal = "exporter",
                               .client_keytab = kdc.path("client.keytab"),
                               .min_backoff = 500ms,
                               .max_backoff = 2000ms});
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = winrm::make_negotiate_auth({.credentials = credentials}, stats);
  sim::NegotiateAcceptor server({.keytab = kdc.path("http.keytab")}, std::nullopt);
  krbtest::LoopbackConnection conn(server,
                                   krbtest::endpoint("win01.sim.test", winrm::Scheme::kHttp));
  // Every poll on a fresh connection: a full handshake, hence a credential acquisition.
  auto poll = [&]() {
    conn.close();
    return auth->send(conn, "<poll/>", krbtest::soon());
  };

  // Phase 1: two lifetimes and a bit.
  const auto start = system_clock::now();
  const auto phase1 = std::chrono::seconds(2 * kLifetime + 2);
  int polls = 0;
  while (system_clock::now() - start < phase1) {
    auto response = poll();
    REQUIRE_OK(response);
    REQUIRE(response->body == "<reply><poll/></reply>");
    ++polls;
    std::this_thread::sleep_for(250ms);
  }
  const double elapsed = std::chrono::duration<double>(system_clock::now() - start).count();
  const int as_requests = kdc.as_req_count();
  // A refresh at each half-life (whole-second ticket times: every 8..9 s).
  const int lowest = 1 + static_cast<int>(elapsed / (kLifetime / 2 + 1));
  const int highest = 1 + static_cast<int>(elapsed / (kLifetime / 2)) + 1;
  MESSAGE("phase 1: ", polls, " handshakes in ", elapsed, " s, ", as_requests,
          " AS requests (expected ", lowest, "..", highest, ")");
  CHECK(as_requests >= lowest);
  CHECK(as_requests <= highest);
  CHECK(static_cast<int>(credentials->stats().acquisitions) == as_requests);
  CHECK(stats->handshakes == static_cast<std::uint64_t>(polls));
  CHECK(polls > 4 * as_requests);  // many handshakes per AS request: no storm

  // Phase 2: right after a refresh, the KDC goes away.
  const auto acquired = credentials->stats().acquisitions.load();
  for (int i = 0; i < 60 && credentials->stats().acquisitions == acquired; ++i) {
    REQUIRE(poll().has_value());
    std::this_thread::sleep_for(250ms);
  }
  REQUIRE(credentials->stats().acquisitions == acquired + 1);
  const auto expiry = *credentials->ticket_expiry();
  kdc.stop();
  const auto outage = system_clock::now();
  std::optional<winrm::Error> failure;
  auto last_success = outage;
  while (system_clock::now() < expiry + 5s) {
    auto response = poll();
    if (!response) {
      failure = response.error();
      break;
    }
    last_success = system_clock::now();
    std::this_thread::sleep_for(250ms);
  }
  REQUIRE(failure.has_value());
  MESSAGE("KDC down: polls went on for ",
          std::chrono::duration<double>(last_success - outage).count(),
          " s until the ticket expired; then: ", failure->message);
  // Survived past the half-life (refresh failing) until about the expiry.
  CHECK(last_success > expiry - 3s);
  CHECK(winrm::auth_error_class(*failure) == winrm::AuthErrorClass::kKdcUnreachable);
  const auto unreachable = credentials->stats()
                               .failures[static_cast<int>(winrm::AuthErrorClass::kKdcUnreachable)]
                               .load();
  CHECK(unreachable >= 1);
  // Back-off: far fewer KDC attempts than polls.
  CHECK(unreachable < 12);

  // Phase 3: the KDC comes back; within the back-off the next poll recovers.
  kdc.start();
  bool recovered = false;
  for (int i = 0; i < 40 && !recovered; ++i) {
    recovered = poll().has_value();
    if (!recovered) std::this_thread::sleep_for(250ms);
  }
  CHECK(recovered);
  CHECK(credentials->stats().acquisitions == acquired + 2);
  CHECK(*credentials->ticket_expiry() > system_clock::now() + 5s);
  CHECK(conn.plaintext_bodies == 0);
}

}  // namespace test_refresh
