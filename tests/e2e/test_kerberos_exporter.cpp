// End to end with Kerberos: the winrm_exporter binary polls winrm-sim (GSS acceptor,
// message encryption enforced on HTTP, CbtHardeningLevel=Strict on HTTPS) with a
// client keytab against a throwaway MIT KDC on loopback. No kinit anywhere.
#include <doctest/doctest.h>

#include <ctime>

#include "../kerberos/kdc_fixture.h"
#include "e2e_util.h"
#include "promtool.h"

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

std::string exporter_yaml(const TempDir& dir, const krbtest::Kdc& kdc, const Sim& sim) {
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
         http + ", credential: deleted}\n";
}

const std::vector<std::string> kGoodTargets = {"localhost", "win01.sim.test", "win02.sim.test"};

bool all_polled(const std::string& metrics) {
  for (const auto& target : kGoodTargets) {
    for (const char* collector : {"os", "cpu"}) {
      auto value = sample_value(metrics, "winrm_exporter_collector_success{target=\"" + target +
                                             "\",collector=\"" + collector + "\"}");
      if (!value || *value != 1) return false;
    }
  }
  return metrics.find("winrm_exporter_auth_errors_total{target=\"ghost01.sim.test\"") !=
         std::string::npos;
}

}  // namespace

TEST_CASE("exporter with Kerberos (keytab, real KDC) against winrm-sim over HTTPS and HTTP") {
  krbtest::Kdc kdc(300);  // sets KRB5_CONFIG, which the child processes inherit
  TempDir dir;
  Sim sim(dir, sim_body(kdc));
  write_file(dir / "exporter.yml", exporter_yaml(dir, kdc, sim));
  Exporter exporter(dir, dir / "exporter.yml");

  auto [polled, metrics] = exporter.metrics_when(all_polled, 30s);
  std::string diagnostics = metrics.substr(0, 6000) + "\n--- exporter log:\n" +
                            read_file(exporter.stderr_path).substr(0, 4000);
  REQUIRE_MESSAGE(polled, diagnostics);

  for (const auto& target : kGoodTargets) {
    CAPTURE(target);
    CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"" + target + "\"}") == 1.0);
    CHECK(metrics.find("windows_cpu_time_total{target=\"" + target + "\"") != std::string::npos);
    auto handshakes =
        sample_value(metrics, "winrm_exporter_auth_handshakes_total{target=\"" + target + "\"}");
    REQUIRE(handshakes);
    CHECK(*handshakes >= 1);  // sessions really authenticated with Negotiate
  }

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
}
