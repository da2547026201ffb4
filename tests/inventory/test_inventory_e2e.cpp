// End to end: winrm_exporter discovers its hosts in a slapd with AD-like computer objects
// and polls them on winrm-sim. Two sources: `paris` binds with SASL/GSSAPI using the same
// Kerberos profile (keytab, project's MIT KDC) that then polls its hosts, so the KDC log
// shows one AS request for both the LDAP bind and the polls; `corp` binds simply over
// LDAPS, searches the whole domain and finds paris's host again and a host that is also a
// static target (duplicates: each polled once, the static target's settings win).
// A directory change adds and removes polled hosts; a DC outage keeps the last list. The
// hosts are *.localhost names, which libcurl resolves to loopback without DNS (RFC 6761),
// so no connect_address is set.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>

#include "directory_fixture.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_inventory_e2e {

using namespace e2e;
using invtest::Computer;

namespace {

std::string target_up(const std::string& host) {
  return "winrm_exporter_target_up{target=\"" + host + "\"}";
}

// Both of the host's collectors (os, cpu) have succeeded: they are due half an interval apart
// (the scheduler's even stagger), so one may have polled while the other has not yet.
bool polled_ok(const std::string& metrics, const std::string& host) {
  for (const char* collector : {"os", "cpu"}) {
    if (sample_value(metrics, "winrm_exporter_collector_success{target=\"" + host +
                                  "\",collector=\"" + collector + "\"}") != 1.0)
      return false;
  }
  return true;
}

double source_metric(const std::string& metrics, const std::string& name,
                     const std::string& source) {
  return sample_value(metrics, "winrm_exporter_inventory_" + name + "{source=\"" + source + "\"}")
      .value_or(-1);
}

// Service tickets the KDC issued to exporter@ (the SPNs), from its log.
std::vector<std::string> tickets_of_exporter(const std::string& kdc_log) {
  std::vector<std::string> spns;
  std::istringstream log(kdc_log);
  const std::string needle = " exporter@KRBTEST.COM for ";
  for (std::string line; std::getline(log, line);) {
    const auto at = line.find(needle);
    if (line.find("TGS_REQ") == std::string::npos || line.find(": ISSUE:") == std::string::npos ||
        at == std::string::npos) {
      continue;
    }
    const auto start = at + needle.size();
    spns.push_back(line.substr(start, line.find_first_of(", ", start) - start));
  }
  return spns;
}

}  // namespace

TEST_CASE("exporter polls winrm-sim hosts discovered in LDAP; changes and outages") {
  const Computer win01{"WIN01", "win01.localhost",     "Windows Server 2022 Datacenter",
                       4096,    "ou=Servers,ou=Paris", "Paris"};
  const Computer win02{"WIN02", "win02.localhost",    "Windows Server 2019 Standard",
                       4096,    "ou=Servers,ou=Lyon", ""};
  const Computer win03{"WIN03", "win03.localhost",    "Windows Server 2025 Standard",
                       4096,    "ou=Servers,ou=Lyon", ""};
  const Computer win04{"WIN04", "win04.localhost",    "Windows Server 2022 Standard",
                       4096,    "ou=Servers,ou=Lyon", ""};
  const Computer disabled{"OLD01", "old01.localhost",    "Windows Server 2012 R2",
                          4098,    "ou=Servers,ou=Lyon", ""};
  // Tickets live 10 minutes, longer than the test: one AS request if one cache serves all.
  invtest::Directory directory({win01, win02, win04, disabled}, true, 600);

  TempDir dir;
  REQUIRE(run_shell(std::string("sh ") + WINRM_TEST_SCRIPTS + "/gen-certs.sh " + dir.str() +
                    " win01.localhost win02.localhost win03.localhost win04.localhost "
                    "old01.localhost "
                    ">/dev/null 2>&1") == 0);
  write_file(dir / "monitor.pass", "sim-password\n");
  write_file(dir / "reader.pw", "readerpw\n");
  chmod((dir / "reader.pw").c_str(), 0600);
  chmod((dir / "monitor.pass").c_str(), 0600);
  // win01 (found by the GSSAPI source) accepts Kerberos only: a Basic poll cannot succeed.
  directory.add_services({"HTTP/win01.localhost"}, (dir / "sim.keytab").string());
  Sim sim(dir,
          "keep_alive_timeout: 30s\nusers:\n  - {username: monitor, password: sim-password}\n"
          "negotiate: {keytab: " +
              (dir / "sim.keytab").string() +
              "}\n"
              "hosts:\n  - {name: win01.localhost, auth: [negotiate]}\n"
              "  - {name: win02.localhost}\n"
              "  - {name: win03.localhost}\n  - {name: win04.localhost}\n"
              "  - {name: old01.localhost}\n");
  write_file(dir / "exporter.yml",
             "global:\n  interval: 2s\n  timeout: 1500ms\n  port: " +
                 std::to_string(sim.https_port) + "\n  tls_ca_file: " + (dir / "ca.pem").string() +
                 "\n  credential: sim\n"
                 "credentials:\n  sim: {auth: basic, username: monitor, password_file: " +
                 (dir / "monitor.pass").string() +
                 "}\n"
                 "  domain: {auth: kerberos, username: exporter, keytab: " +
                 directory.kdc_file("client.keytab") +
                 "}\n"
                 // Also in the directory (corp finds it): polled once, as this target.
                 "targets:\n  - {name: win04.localhost, labels: {owner: static}}\n"
                 "inventory_ldap:\n"
                 // The SPN of this DC is ldap/localhost, the host of its URL.
                 "  - name: paris\n"
                 "    urls: [" +
                 directory.ldap_url() +
                 "]\n"
                 "    bind: gssapi\n"
                 "    credential: domain\n"
                 "    base_dn: ou=Paris,dc=corp,dc=example\n"
                 "    refresh_interval: 2s\n"
                 "    defaults: {credential: domain, collectors: [os, cpu], labels: {env: lab}}\n"
                 "  - name: corp\n"
                 "    urls: [" +
                 directory.ldaps_url() +
                 "]\n"
                 "    bind: simple\n"
                 "    bind_dn: cn=reader,dc=corp,dc=example\n"
                 "    bind_password_file: " +
                 (dir / "reader.pw").string() + "\n    tls_ca_file: " + directory.ca_file() +
                 "\n    base_dn: dc=corp,dc=example\n"
                 "    refresh_interval: 2s\n"
                 "    defaults: {collectors: [os, cpu], labels: {env: lab}}\n");
  Exporter exporter(dir, dir / "exporter.yml");

  auto first = exporter.metrics_when(
      [&](const std::string& m) {
        return polled_ok(m, "win01.localhost") && polled_ok(m, "win02.localhost") &&
               polled_ok(m, "win04.localhost");
      },
      40s);
  REQUIRE_MESSAGE(first.ok, (first.body.substr(0, 4000) + read_file(exporter.stderr_path)));
  // Discovered targets carry the directory's labels and the source's defaults.
  CHECK(first.body.find("windows_os_info{target=\"win01.localhost\",ad_os=\"Windows Server 2022 "
                        "Datacenter\",ad_ou=\"Paris/Servers\",ad_site=\"Paris\",env=\"lab\"") !=
        std::string::npos);
  CHECK(first.body.find("target=\"old01.localhost\"") == std::string::npos);  // disabled
  for (const char* source : {"paris", "corp"}) {
    CAPTURE(source);
    CHECK(source_metric(first.body, "up", source) == 1);
    CHECK(source_metric(first.body, "targets", source) == 1);
  }
  // corp also found win01, already paris's, and win04, a static target: both skipped and
  // counted, each polled once; win04 as the static target (its labels, none from AD).
  CHECK(source_metric(first.body, "hosts", "corp") == 3);
  CHECK(source_metric(first.body, "duplicates", "corp") == 2);
  CHECK(source_metric(first.body, "duplicates", "paris") == 0);
  CHECK(count_of(first.body, "winrm_exporter_target_up{target=\"win01.localhost\"}") == 1);
  CHECK(count_of(first.body, "winrm_exporter_target_up{target=\"win04.localhost\"}") == 1);
  CHECK(first.body.find("windows_os_info{target=\"win04.localhost\",owner=\"static\"") !=
        std::string::npos);
  CHECK(first.body.find("windows_os_info{target=\"win04.localhost\",ad_") == std::string::npos);
  // win01 was polled with Kerberos (its sim host takes nothing else) ...
  check_negotiated_targets(first.body, {"win01.localhost"});
  // ... by the same identity and ticket cache as the LDAP bind: slapd saw a GSSAPI bind,
  // exporter@ got service tickets for the DC and the Windows host, from one AS request.
  CHECK(directory.slapd_log().find("mech=GSSAPI") != std::string::npos);
  const auto tickets = tickets_of_exporter(directory.kdc_log());
  CAPTURE(directory.kdc_log());
  CHECK(std::count(tickets.begin(), tickets.end(), "ldap/localhost@KRBTEST.COM") >= 1);
  CHECK(std::count(tickets.begin(), tickets.end(), "HTTP/win01.localhost@KRBTEST.COM") >= 1);
  auto sd = get(exporter.port, "/sd");
  CHECK(sd.body.find("win02.localhost") != std::string::npos);

  // The directory changes: win03 joins, win02 leaves.
  directory.add(win03);
  directory.remove(win02);
  auto changed = exporter.metrics_when(
      [&](const std::string& m) {
        return polled_ok(m, "win03.localhost") &&
               m.find(target_up("win02.localhost")) == std::string::npos;
      },
      30s);
  REQUIRE_MESSAGE(changed.ok, changed.body.substr(0, 4000));
  CHECK(get(exporter.port, "/sd").body.find("win02.localhost") == std::string::npos);
  CHECK(get(exporter.port, "/probe?target=win02.localhost").status == 404);

  // DC outage: the last list stays polled, the source reports down.
  directory.stop();
  auto outage = exporter.metrics_when(
      [&](const std::string& m) {
        return source_metric(m, "up", "corp") == 0.0 && source_metric(m, "up", "paris") == 0.0;
      },
      30s);
  REQUIRE_MESSAGE(outage.ok, outage.body.substr(0, 4000));
  CHECK(source_metric(outage.body, "targets", "corp") == 1);   // win03
  CHECK(source_metric(outage.body, "targets", "paris") == 1);  // win01
  CHECK(sample_value(outage.body,
                     "winrm_exporter_inventory_refresh_errors_total{source=\"corp\"}") >= 1);
  CHECK(polled_ok(outage.body, "win01.localhost"));
  CHECK(polled_ok(outage.body, "win03.localhost"));
  // The bind password never reaches the log.
  CHECK(read_file(exporter.stderr_path).find("readerpw") == std::string::npos);
  // Every LDAP bind and every poll of the run came from one AS request (one ticket cache).
  CHECK(run_shell(std::string(WINRM_TEST_SCRIPTS) + "/kdc.sh as-req-count " +
                  directory.kdc_file("") + " exporter | grep -qx 1") == 0);
}

}  // namespace test_inventory_e2e
