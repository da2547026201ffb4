// End to end with NTLM (workgroup hosts): the winrm_exporter binary with `auth: ntlm`
// profiles polls winrm-sim, whose gss-ntlmssp acceptor checks the sim's `users:` accounts
// (negotiate.ntlm: true). No KDC and no NTLM_USER_FILE anywhere. HTTP 5985-style with
// message encryption required by the sim, HTTPS with CbtHardeningLevel=Strict (the
// exporter's NTLM channel bindings), a wrong password, and `query`.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "common/base64.h"
#include "e2e_util.h"
#include "promtool.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_ntlm_exporter {

using namespace e2e;

namespace {

// Distinctive, so any leak into logs or metrics is found by a plain search.
const std::string kGoodPassword = "Ntlm-e2e-Pa55-7f3c";
const std::string kWrongPassword = "Ntlm-e2e-Wr0ng-91ab";

const std::vector<std::string> kDefaultCollectors = {"cpu", "logical_disk", "memory", "net",
                                                     "os",  "service",      "system"};
// win01: HTTP with message encryption; win02: HTTPS.
const std::vector<std::string> kGoodTargets = {"win01.sim.test", "win02.sim.test"};

std::string sim_body() {
  // The NTLM hosts accept Negotiate only, so no Basic fallback can make them succeed.
  // basic01 accepts Basic only: its plaintext bodies on HTTP must be refused.
  return "keep_alive_timeout: 30s\n"
         "users:\n  - {username: monitor, password: " +
         kGoodPassword +
         "}\n"
         "negotiate: {ntlm: true, ntlm_domain: SIMHOST, require_encryption_on_http: true, "
         "cbt: strict}\n"
         "hosts:\n"
         "  - {name: win01.sim.test, auth: [negotiate]}\n"
         "  - {name: win02.sim.test, auth: [negotiate]}\n"
         "  - {name: bad01.sim.test, auth: [negotiate]}\n"
         "  - {name: basic01.sim.test, auth: [basic]}\n";
}

void write_secret(const fs::path& path, const std::string& text) {
  write_file(path, text + "\n");
  chmod(path.c_str(), 0600);
}

std::string exporter_yaml(const TempDir& dir, const Sim& sim) {
  const std::string https = std::to_string(sim.https_port);
  const std::string http = std::to_string(sim.http_port);
  const std::string target = "connect_address: 127.0.0.1, scheme: ";
  // No collectors key: the built-in default set.
  return "global:\n  interval: 2s\n  timeout: 1500ms\n  tls_ca_file: " + (dir / "ca.pem").string() +
         "\n  credential: workgroup\n"
         "credentials:\n"
         "  workgroup:\n    auth: ntlm\n    username: 'SIMHOST\\monitor'\n    password_file: " +
         (dir / "good.pass").string() +
         "\n"
         "  wrong:\n    auth: ntlm\n    username: 'SIMHOST\\monitor'\n    password_file: " +
         (dir / "wrong.pass").string() +
         "\n"
         "  plain:\n    auth: basic\n    username: monitor\n    password_file: " +
         (dir / "good.pass").string() +
         "\n"
         "targets:\n"
         "  - {name: win01.sim.test, " +
         target + "http, port: " + http +
         "}\n"
         "  - {name: win02.sim.test, " +
         target + "https, port: " + https +
         "}\n"
         "  - {name: bad01.sim.test, " +
         target + "http, port: " + http +
         ", credential: wrong}\n"
         "  - {name: basic01.sim.test, " +
         target + "http, port: " + http + ", credential: plain}\n";
}

std::optional<double> success(const std::string& metrics, const std::string& target,
                              const std::string& collector) {
  return sample_value(metrics, "winrm_exporter_collector_success{target=\"" + target +
                                   "\",collector=\"" + collector + "\"}");
}

bool all_polled(const std::string& metrics) {
  for (const auto& target : kGoodTargets) {
    for (const auto& collector : kDefaultCollectors) {
      if (success(metrics, target, collector) != 1.0) return false;
    }
  }
  return metrics.find("winrm_exporter_auth_errors_total{target=\"bad01.sim.test\"") !=
             std::string::npos &&
         success(metrics, "basic01.sim.test", "os").has_value();
}

std::string basic(const std::string& user, const std::string& password) {
  return "Basic " + common::base64_encode(user + ":" + password);
}

// A plaintext SOAP POST with Basic credentials to the sim's HTTP listener.
HttpResult plaintext_post(int port, const std::string& authorization) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers headers = {{"Host", "basic01.sim.test"}, {"Authorization", authorization}};
  auto result =
      client.Post("/wsman", headers, "<s:Envelope/>", "application/soap+xml;charset=UTF-8");
  HttpResult out;
  if (result) {
    out.status = result->status;
    out.body = result->body;
  }
  return out;
}

}  // namespace

TEST_CASE("exporter with NTLM against winrm-sim: HTTP with encryption, HTTPS, wrong password") {
  // Only the sim's cred store may supply the accounts.
  unsetenv("NTLM_USER_FILE");
  TempDir dir;
  Sim sim(dir, sim_body());
  write_secret(dir / "good.pass", kGoodPassword);
  write_secret(dir / "wrong.pass", kWrongPassword);
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim));
  Exporter exporter(dir, dir / "exporter.yml");

  auto [polled, metrics] = exporter.metrics_when(all_polled, 30s);
  std::string diagnostics = metrics.substr(0, 6000) + "\n--- exporter log:\n" +
                            read_file(exporter.stderr_path).substr(0, 4000) + "\n--- sim log:\n" +
                            read_file(dir / "sim.err").substr(0, 2000);
  REQUIRE_MESSAGE(polled, diagnostics);

  // (a) HTTP with message encryption and (b) HTTPS: every default collector succeeded,
  // through NTLM handshakes.
  check_negotiated_targets(metrics, kGoodTargets);
  for (const auto& target : kGoodTargets) {
    CAPTURE(target);
    CHECK(metrics.find("winrm_exporter_auth_errors_total{target=\"" + target + "\"") ==
          std::string::npos);
  }
  // NTLM has no tickets.
  CHECK(metrics.find("winrm_exporter_kerberos_ticket_expiry_timestamp_seconds{profile="
                     "\"workgroup\"}") == std::string::npos);

  // The same HTTP listener refuses plaintext: the Basic target on HTTP never succeeds, and
  // a plaintext POST with valid Basic credentials passes authentication (a wrong password
  // gets the 401) but its body is refused with Windows' empty HTTP 500.
  for (const auto& collector : kDefaultCollectors) {
    CAPTURE(collector);
    CHECK(success(metrics, "basic01.sim.test", collector) == 0.0);
  }
  auto refused = plaintext_post(sim.http_port, basic("monitor", kGoodPassword));
  CHECK(refused.status == 500);
  CHECK(refused.body.empty());
  CHECK(plaintext_post(sim.http_port, basic("monitor", kWrongPassword)).status == 401);

  // (c) Wrong password: the server rejects the NTLM AUTHENTICATE message.
  for (const auto& collector : kDefaultCollectors) {
    CAPTURE(collector);
    CHECK(success(metrics, "bad01.sim.test", collector) == 0.0);
  }
  auto rejected = sample_value(
      metrics,
      "winrm_exporter_auth_errors_total{target=\"bad01.sim.test\",class=\"server_rejected\"}");
  REQUIRE_MESSAGE(rejected, diagnostics);
  CHECK(*rejected >= 1);
  CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"bad01.sim.test\"}") == 0.0);

  auto check = promtool_check_metrics(metrics);
  CHECK_MESSAGE(check.status == 0, check.output);

  // `query` with the NTLM profile over HTTP (message encryption) returns rows.
  Process query({kExporterBinary, "query", "--config.file=" + (dir / "exporter.yml").string(),
                 "--target=win01.sim.test", "SELECT Name, State FROM Win32_Service"},
                dir / "query.out", dir / "query.err");
  REQUIRE(wait_until([&] { return !query.running(); }, 20s));
  CHECK_MESSAGE(query.stop() == 0, read_file(dir / "query.err"));
  const std::string rows = read_file(dir / "query.out");
  CHECK(count_of(rows, "\n") > 3);
  CHECK(rows.find("{\"Name\":\"WinRM\",\"State\":\"") != std::string::npos);

  // And with the wrong password: an auth error, exit 1.
  Process wrong_query({kExporterBinary, "query", "--config.file=" + (dir / "exporter.yml").string(),
                       "--target=bad01.sim.test", "SELECT Name FROM Win32_Service"},
                      dir / "wrong_query.out", dir / "wrong_query.err");
  REQUIRE(wait_until([&] { return !wrong_query.running(); }, 20s));
  CHECK(wrong_query.stop() == 1);
  CHECK(read_file(dir / "wrong_query.err").find("kind=auth") != std::string::npos);

  // No password anywhere: exporter logs, /metrics, query output, the sim's log.
  metrics = exporter.metrics();
  for (const std::string& password : {kGoodPassword, kWrongPassword}) {
    CAPTURE(password);
    CHECK(metrics.find(password) == std::string::npos);
    for (const char* file : {"exporter.err", "exporter.out", "query.out", "query.err",
                             "wrong_query.out", "wrong_query.err", "sim.err", "sim.out"}) {
      CAPTURE(file);
      CHECK(read_file(dir / file).find(password) == std::string::npos);
    }
  }
}

}  // namespace test_ntlm_exporter
