// End to end with Kerberos: the winrm_exporter binary polls winrm-sim (GSS acceptor,
// message encryption enforced on HTTP, CbtHardeningLevel=Strict on HTTPS) with a
// client keytab against a throwaway MIT KDC on loopback. No kinit anywhere.
// Issue 14: two more targets reach the same sim through a real tinyproxy (CONNECT for
// HTTPS, absolute-URI requests for HTTP) with their own principal, so the KDC log shows
// which service tickets those polls asked for: the Windows host's SPN, never the proxy's.
#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>

#include "../kerberos/kdc_fixture.h"
#include "e2e_util.h"
#include "promtool.h"
#include "tinyproxy.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_kerberos_exporter {

using namespace e2e;

namespace {

std::string sim_body(const krbtest::Kdc& kdc) {
  // Negotiate only: a Basic fallback cannot make these polls succeed.
  return "keep_alive_timeout: 30s\nnegotiate: {keytab: " + kdc.path("http.keytab") +
         ", require_encryption_on_http: true, cbt: strict}\nhosts:\n"
         "  - {name: localhost, auth: [negotiate]}\n"
         "  - {name: win01.sim.test, auth: [negotiate]}\n"
         "  - {name: win02.sim.test, auth: [negotiate]}\n"
         "  - {name: ghost01.sim.test, auth: [negotiate]}\n";
}

std::string exporter_yaml(const TempDir& dir, const krbtest::Kdc& kdc, const Sim& sim,
                          const Tinyproxy& proxy) {
  std::string https = std::to_string(sim.https_port);
  std::string http = std::to_string(sim.http_port);
  return "global:\n  interval: 2s\n  timeout: 1500ms\n  collectors: [os, cpu]\n"
         "  tls_ca_file: " +
         (dir / "ca.pem").string() +
         "\n  credential: domain\n"
         "credentials:\n"
         "  domain:\n    auth: kerberos\n    username: exporter\n    keytab: " +
         kdc.path("client.keytab") +
         "\n"
         "  deleted:\n    auth: kerberos\n    username: ghost\n    keytab: " +
         kdc.path("ghost.keytab") +
         "\n"
         // Only the proxied targets use this principal (see the KDC log checks).
         "  proxied:\n    auth: kerberos\n    username: renewer\n    keytab: " +
         kdc.path("renewer.keytab") +
         "\n"
         "targets:\n"
         // HTTPS with channel binding, SPN HTTP/localhost.
         "  - {name: localhost, connect_address: 127.0.0.1, scheme: https, port: " +
         https +
         "}\n"
         // HTTP 5985-style with message encryption, SPN HTTP/win01.sim.test.
         "  - {name: win01.sim.test, connect_address: 127.0.0.1, scheme: http, port: " +
         http +
         "}\n"
         // Only a WSMAN/ SPN exists for win02.
         "  - {name: win02.sim.test, connect_address: 127.0.0.1, scheme: http, port: " +
         http +
         ", spn_service: WSMAN}\n"
         // The client principal was deleted from the KDC.
         "  - {name: ghost01.sim.test, connect_address: 127.0.0.1, scheme: http, port: " +
         http +
         ", credential: deleted}\n"
         // Through the proxy at 127.0.0.1, which resolves and reaches `localhost` itself:
         // HTTPS in a CONNECT tunnel (SPN HTTP/localhost, channel binding of the sim's
         // certificate); HTTP as absolute-URI requests with message encryption, which
         // cannot work through tinyproxy (it closes the connection after each answer, and
         // the encrypted session is bound to one): a classified error that says so.
         "  - {name: proxied-https, host: localhost, credential: proxied, scheme: https, port: " +
         https + ", proxy: " + proxy.url() +
         "}\n"
         "  - {name: proxied-http, host: localhost, credential: proxied, scheme: http, port: " +
         http + ", proxy: " + proxy.url() + "}\n";
}

const std::vector<std::string> kGoodTargets = {"localhost", "win01.sim.test", "win02.sim.test",
                                               "proxied-https"};

// KDC log lines of service tickets issued to `client` (TGS_REQ ... ISSUE ... for <spn>).
std::vector<std::string> tgs_issued(const krbtest::Kdc& kdc, const std::string& client) {
  std::vector<std::string> spns;
  std::istringstream log(read_file(kdc.path("kdc.log")));
  const std::string needle = " " + client + "@KRBTEST.COM for ";
  std::string line;
  while (std::getline(log, line)) {
    const auto at = line.find(needle);
    if (line.find("TGS_REQ") == std::string::npos || at == std::string::npos) continue;
    const auto start = at + needle.size();
    const auto end = line.find_first_of(", ", start);
    spns.push_back((line.find(": ISSUE:") != std::string::npos ? "" : "REFUSED ") +
                   line.substr(start, end == std::string::npos ? end : end - start));
  }
  return spns;
}

bool all_polled(const std::string& metrics) {
  for (const auto& target : kGoodTargets) {
    for (const char* collector : {"os", "cpu"}) {
      auto value = sample_value(metrics, "winrm_exporter_collector_success{target=\"" + target +
                                             "\",collector=\"" + collector + "\"}");
      if (!value || *value != 1) return false;
    }
  }
  return metrics.find("winrm_exporter_auth_errors_total{target=\"ghost01.sim.test\"") !=
             std::string::npos &&
         metrics.find("winrm_exporter_auth_errors_total{target=\"proxied-http\"") !=
             std::string::npos;
}

}  // namespace

TEST_CASE("exporter with Kerberos (keytab, real KDC) against winrm-sim over HTTPS and HTTP") {
  krbtest::Kdc kdc(300);  // sets KRB5_CONFIG, which the child processes inherit
  for (const char* name : {"http_proxy", "https_proxy", "HTTPS_PROXY", "NO_PROXY", "no_proxy"}) {
    unsetenv(name);  // only the configuration decides
  }
  TempDir dir;
  Sim sim(dir, sim_body(kdc));
  Tinyproxy proxy(dir, "proxy");
  write_file(dir / "exporter.yml", exporter_yaml(dir, kdc, sim, proxy));
  // Debug logging: the secret checks below then cover every message the exporter has.
  Exporter exporter(dir, dir / "exporter.yml", {"--log.level=debug"});

  auto [polled, metrics] = exporter.metrics_when(all_polled, 30s);
  std::string diagnostics = metrics.substr(0, 6000) + "\n--- exporter log:\n" +
                            read_file(exporter.stderr_path).substr(0, 4000) + "\n--- proxy:\n" +
                            proxy.requests().substr(0, 2000) + "\n--- sim:\n" +
                            read_file(dir / "sim.err").substr(0, 2000);
  REQUIRE_MESSAGE(polled, diagnostics);

  check_negotiated_targets(metrics, kGoodTargets);  // sessions really authenticated

  // The ticket expiry gauge: present for the working profile, in the future.
  auto expiry = sample_value(
      metrics, "winrm_exporter_kerberos_ticket_expiry_timestamp_seconds{profile=\"domain\"}");
  REQUIRE(expiry);
  CHECK(*expiry > static_cast<double>(std::time(nullptr)));
  CHECK(*expiry < static_cast<double>(std::time(nullptr)) + 3600);
  // One keytab, one ticket: all targets and sessions share the profile's cache.
  auto acquisitions = sample_value(
      metrics, "winrm_exporter_kerberos_ticket_acquisitions_total{profile=\"domain\"}");
  REQUIRE(acquisitions);
  CHECK(*acquisitions >= 1);
  CHECK(*acquisitions <= 2);
  CHECK(kdc.as_req_count("exporter") == static_cast<int>(*acquisitions));

  // The deleted principal: no ticket, a classified failure on the profile and the target.
  CHECK(metrics.find(
            "winrm_exporter_kerberos_ticket_expiry_timestamp_seconds{profile=\"deleted\"}") ==
        std::string::npos);
  auto profile_failures = sample_value(metrics,
                                       "winrm_exporter_kerberos_ticket_failures_total{profile="
                                       "\"deleted\",class=\"principal_unknown\"}");
  REQUIRE(profile_failures);
  CHECK(*profile_failures >= 1);
  auto target_errors = sample_value(
      metrics,
      "winrm_exporter_auth_errors_total{target=\"ghost01.sim.test\",class=\"principal_unknown\"}");
  REQUIRE(target_errors);
  CHECK(*target_errors >= 1);
  CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"ghost01.sim.test\"}") == 0.0);

  auto check = promtool_check_metrics(metrics);
  CHECK_MESSAGE(check.status == 0, check.output);

  // Failures are logged with their class.
  std::string log = read_file(exporter.stderr_path);
  CHECK(log.find("principal_unknown") != std::string::npos);  // classified in the log too

  // Through the proxy. Service tickets of the proxied targets' principal: only the Windows
  // host's SPN, HTTP/localhost; the proxy (127.0.0.1) never became an SPN, and none was
  // refused. HTTPS's success under CbtHardeningLevel=Strict means the token carried the
  // binding of the sim's own certificate, seen through the tunnel.
  const auto proxied_tickets = tgs_issued(kdc, "renewer");
  CHECK_MESSAGE(!proxied_tickets.empty(), read_file(kdc.path("kdc.log")));
  for (const auto& spn : proxied_tickets) CHECK(spn == "HTTP/localhost@KRBTEST.COM");
  CHECK(read_file(kdc.path("kdc.log")).find("HTTP/127.0.0.1") == std::string::npos);
  // HTTP through tinyproxy: the handshake succeeds, the encrypted request then goes out
  // on a new connection (the proxy closed the old one), which the host does not know.
  CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"proxied-http\"}") == 0.0);
  CHECK(sample_value(metrics,
                     "winrm_exporter_auth_errors_total{target=\"proxied-http\","
                     "class=\"server_rejected\"}")
            .value_or(0) >= 1);
  CHECK_MESSAGE(log.find("target=proxied-http collector=os kind=auth") != std::string::npos, log);
  CHECK(log.find("the connection closed between the handshake and the request each time") !=
        std::string::npos);
  CHECK(log.find("this proxy does not keep the client's connection paired with one server "
                 "connection: use HTTPS through it") != std::string::npos);
  // What crossed tinyproxy: a CONNECT tunnel to the host for HTTPS, absolute-URI POSTs
  // (no tunnel) for HTTP; the direct targets (connect_address 127.0.0.1) never did.
  const std::string proxy_log = proxy.requests();
  const std::string https_port = std::to_string(sim.https_port);
  const std::string http_port = std::to_string(sim.http_port);
  CHECK_MESSAGE(count_of(proxy_log, "CONNECT localhost:" + https_port) >= 1, proxy_log);
  CHECK_MESSAGE(count_of(proxy_log, "POST http://localhost:" + http_port + "/wsman") >= 2,
                proxy_log);
  CHECK(count_of(proxy_log, "CONNECT localhost:" + http_port) == 0);
  CHECK(count_of(proxy_log, "win01.sim.test") == 0);
  // No token or header value in the debug log: SPNEGO/Kerberos tokens are base64 DER
  // starting "YII" (an [APPLICATION 0] of 256+ bytes) or "oY" (a NegTokenResp).
  for (const char* secret : {"Negotiate Y", "Negotiate o", "Kerberos Y", "Authorization"}) {
    CAPTURE(secret);
    CHECK(log.find(secret) == std::string::npos);
    CHECK(read_file(dir / "exporter.out").find(secret) == std::string::npos);
  }
}

}  // namespace test_kerberos_exporter
