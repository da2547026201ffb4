// Client certificate authentication and HTTP(S) proxies, end to end.
// Certificates: the winrm_exporter binary with `auth: certificate` profiles and pywinrm's
// `certificate` transport against winrm-sim verifying client certificates against a CA
// made here with the openssl CLI and mapping their UPN to a user; an unmapped and an
// untrusted certificate are refused (auth errors), a key that is not the certificate's is a
// tls error, an encrypted key opens with the passphrase of its key_password_file (missing
// or wrong: a config error), and certificate auth over plain HTTP is a config error.
// Proxies: real tinyproxy processes started here carry the traffic: HTTPS through CONNECT
// with NTLM and channel binding (CbtHardeningLevel=Strict, so the binding must be of the
// sim's certificate through the tunnel), HTTP as absolute-URI requests, a proxy that wants
// Basic auth (given, and wrong), a NO_PROXY bypass and a dead proxy. The proxies' logs
// prove which requests crossed them. https:// proxies: stunnel4 terminates TLS in front of
// those tinyproxies with a certificate from a CA of its own (the targets' proxy ca_file): an
// HTTPS target with NTLM and proxy Basic auth (CONNECT inside the TLS to the proxy), an HTTP
// target (absolute-URI requests inside it), and a front whose certificate is from another CA
// (a tls error naming the proxy).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>

#include "e2e_util.h"
#include "stunnel.h"
#include "tinyproxy.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_cert_proxy {

using namespace e2e;

namespace {

const std::vector<std::string> kCollectors = {"cpu", "os"};

// Under ASan+UBSan (the proxy case also with the slow unwinder on every malloc) on a loaded
// 2-core machine the first polls took over 1.5 s (the clean-clone run of 3f86f95: timeouts at
// 1.52-2.09 s): with the former 1.5 s timeout they failed, the targets entered back-off and
// the 30-40 s waits could run out. Nothing here waits for a timeout, so a long one costs nothing.
const std::string kPollTiming = "  interval: 10s\n  timeout: 8s\n";

// gss-ntlmssp's own leaks (tests/lsan.supp) show their module only with ASan's slow unwinder,
// which makes every malloc unwind: a sim start took 3-6 s with it against 1.5-2 s without.
// So only the processes this scope starts get it (the proxy case's NTLM sim and exporter);
// this process and the certificate case, which has no NTLM, keep the fast one.
struct SlowUnwinderForChildren {
  std::optional<std::string> saved;
  SlowUnwinderForChildren() {
    const char* current = std::getenv("ASAN_OPTIONS");
    if (current) saved = current;
    setenv("ASAN_OPTIONS", (saved.value_or("") + ":fast_unwind_on_malloc=0").c_str(), 1);
  }
  ~SlowUnwinderForChildren() {
    if (saved) {
      setenv("ASAN_OPTIONS", saved->c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
  }
};

void write_secret(const fs::path& path, const std::string& text) {
  write_file(path, text + "\n");
  chmod(path.c_str(), 0600);
}

// A CA (client_ca.pem) and, signed by `ca`, a client certificate `name`.pem/.key with a
// UPN subjectAltName and the clientAuth usage (what Windows' mapping requires).
void make_client_cert(const TempDir& dir, const std::string& ca, const std::string& name,
                      const std::string& upn) {
  const std::string d = dir.str();
  if (!fs::exists(dir / (ca + ".pem"))) {
    REQUIRE(run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=" + ca +
                      "' -keyout " + d + "/" + ca + ".key -out " + d + "/" + ca +
                      ".pem >/dev/null 2>&1") == 0);
  }
  write_file(dir / (name + ".cnf"),
             "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:" + upn +
                 "\nextendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  REQUIRE(run_shell("openssl req -newkey rsa:2048 -nodes -subj '/CN=" + upn + "' -keyout " + d +
                    "/" + name + ".key -out " + d + "/" + name + ".csr >/dev/null 2>&1") == 0);
  REQUIRE(run_shell("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca +
                    ".pem -CAkey " + d + "/" + ca + ".key -CAcreateserial -days 2 -sha256 " +
                    "-extfile " + d + "/" + name + ".cnf -out " + d + "/" + name +
                    ".pem >/dev/null 2>&1") == 0);
  chmod((dir / (name + ".key")).c_str(), 0600);
}

// A CA `ca`.pem/.key (made once) and, signed by it, a TLS server certificate `name`.pem/.key
// for the address 127.0.0.1 (a proxy's URL host). P-256 keys: RSA key generation takes
// seconds each on a loaded machine.
void make_server_cert(const TempDir& dir, const std::string& ca, const std::string& name) {
  const std::string d = dir.path().string();
  if (!fs::exists(dir / (ca + ".pem"))) {
    REQUIRE(run_shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                      "-days 2 -subj '/CN=" +
                      ca + "' -keyout " + d + "/" + ca + ".key -out " + d + "/" + ca +
                      ".pem >/dev/null 2>&1") == 0);
  }
  write_file(dir / (name + ".cnf"),
             "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
             "keyUsage=digitalSignature,keyEncipherment\n");
  REQUIRE(
      run_shell("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '/CN=" +
                name + "' -keyout " + d + "/" + name + ".key -out " + d + "/" + name +
                ".csr >/dev/null 2>&1") == 0);
  REQUIRE(run_shell("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/" + ca +
                    ".pem -CAkey " + d + "/" + ca + ".key -CAcreateserial -days 2 -sha256 " +
                    "-extfile " + d + "/" + name + ".cnf -out " + d + "/" + name +
                    ".pem >/dev/null 2>&1") == 0);
  chmod((dir / (name + ".key")).c_str(), 0600);
}

std::optional<double> up(const std::string& metrics, const std::string& target) {
  return sample_value(metrics, "winrm_exporter_target_up{target=\"" + target + "\"}");
}

bool polled(const std::string& metrics, const std::string& target) {
  for (const auto& collector : kCollectors) {
    if (sample_value(metrics, "winrm_exporter_collector_success{target=\"" + target +
                                  "\",collector=\"" + collector + "\"}") != 1.0) {
      return false;
    }
  }
  return true;
}

std::optional<double> errors_of(const std::string& metrics, const std::string& target,
                                const std::string& kind) {
  return sample_value(metrics, "winrm_exporter_collector_errors_total{target=\"" + target +
                                   "\",collector=\"os\",kind=\"" + kind + "\"}");
}

std::string diagnostics(const TempDir& dir, const std::string& metrics, const Exporter& exporter) {
  return metrics.substr(0, 5000) + "\n--- exporter log:\n" +
         read_file(exporter.stderr_path).substr(0, 5000) + "\n--- sim log:\n" +
         read_file(dir / "sim.err").substr(0, 2000);
}

}  // namespace

TEST_CASE("certificate auth: exporter and pywinrm against winrm-sim's certificate mapping") {
  TempDir dir;
  make_client_cert(dir, "client_ca", "monitor", "monitor@sim.test");
  make_client_cert(dir, "client_ca", "stranger", "stranger@sim.test");  // trusted, unmapped
  make_client_cert(dir, "rogue_ca", "rogue", "monitor@sim.test");       // mapped UPN, untrusted
  const std::string d = dir.str();
  // The sim's https listener carries client_ca here; info logs the certificate mapping.
  const Sim sim(dir,
                "client_certificates:\n"
                "  - {subject: monitor@sim.test, user: monitor}\n"
                "hosts:\n"
                "  - {name: basiconly.sim.test, auth: [basic]}\n",
                "sim", ", client_ca: " + d + "/client_ca.pem", "info");
  const int https_port = sim.https_port;
  const int http_port = sim.http_port;
  REQUIRE(https_port > 0);

  // monitor's key again, encrypted (PKCS#8, AES-256) with a passphrase from a file.
  const std::string passphrase = "Key-e2e-Passphrase-71b3";
  write_file(dir / "key.pass", passphrase + "\n");
  chmod((dir / "key.pass").c_str(), 0600);
  write_file(dir / "wrong_key.pass", "not-the-passphrase\n");
  chmod((dir / "wrong_key.pass").c_str(), 0600);
  REQUIRE(run_shell("openssl pkey -in " + d + "/monitor.key -aes256 -passout file:" + d +
                    "/key.pass -out " + d + "/monitor_enc.key") == 0);
  chmod((dir / "monitor_enc.key").c_str(), 0600);
  REQUIRE(read_file(dir / "monitor_enc.key").find("BEGIN ENCRYPTED PRIVATE KEY") !=
          std::string::npos);
  auto encrypted_profile = [&](const std::string& pass_file) {
    return "  encrypted:\n    auth: certificate\n    cert_file: " + d +
           "/monitor.pem\n    key_file: " + d + "/monitor_enc.key\n" +
           (pass_file.empty() ? "" : "    key_password_file: " + d + "/" + pass_file + "\n");
  };
  auto profile = [&](const std::string& name, const std::string& cert) {
    return "  " + name + ":\n    auth: certificate\n    cert_file: " + d + "/" + cert +
           ".pem\n    key_file: " + d + "/" + cert + ".key\n";
  };
  const std::string target = "connect_address: 127.0.0.1, port: " + std::to_string(https_port);
  // A generous per-poll timeout (kPollTiming): every check here is met by the first round of
  // polls, and none waits for a timeout (refusals and dead proxies fail at once).
  write_file(dir / "exporter.yml",
             "global:\n" + kPollTiming + "  tls_ca_file: " + d +
                 "/ca.pem\n  collectors: [cpu, os]\n"
                 "credentials:\n" +
                 profile("good", "monitor") + profile("unmapped", "stranger") +
                 profile("untrusted", "rogue") +
                 // monitor's certificate with another key: the TLS layer refuses the pair.
                 "  mismatched:\n    auth: certificate\n    cert_file: " + d +
                 "/monitor.pem\n    key_file: " + d + "/stranger.key\n" +
                 encrypted_profile("key.pass") +
                 "targets:\n"
                 "  - {name: cert05.sim.test, credential: encrypted, " +
                 target +
                 "}\n"
                 "  - {name: cert01.sim.test, credential: good, " +
                 target +
                 "}\n"
                 "  - {name: cert02.sim.test, credential: unmapped, " +
                 target +
                 "}\n"
                 "  - {name: cert03.sim.test, credential: untrusted, " +
                 target +
                 "}\n"
                 "  - {name: basiconly.sim.test, credential: good, " +
                 target +
                 "}\n"
                 "  - {name: cert04.sim.test, credential: mismatched, " +
                 target + "}\n");
  Exporter exporter(dir, dir / "exporter.yml");
  const std::string rejected = "winrm_exporter_auth_errors_total{target=\"";
  auto [done, metrics] = exporter.metrics_when(
      [&](const std::string& m) {
        return polled(m, "cert01.sim.test") && polled(m, "cert05.sim.test") &&
               m.find(rejected + "cert02.sim.test\",class=\"server_rejected\"}") !=
                   std::string::npos &&
               m.find(rejected + "cert03.sim.test\",class=\"server_rejected\"}") !=
                   std::string::npos &&
               m.find(rejected + "basiconly.sim.test\",class=\"server_rejected\"}") !=
                   std::string::npos &&
               errors_of(m, "cert04.sim.test", "tls").value_or(0) >= 1 &&
               // The auth counter moves inside the poll, the poll's error kind at its end: on a
               // loaded machine (ASan) one scrape can fall between the two.
               errors_of(m, "cert02.sim.test", "auth").value_or(0) >= 1 &&
               errors_of(m, "cert03.sim.test", "auth").value_or(0) >= 1 &&
               errors_of(m, "basiconly.sim.test", "auth").value_or(0) >= 1;
      },
      30s);
  const std::string why = diagnostics(dir, metrics, exporter);
  REQUIRE_MESSAGE(done, why);
  CHECK(up(metrics, "cert01.sim.test") == 1.0);
  CHECK(up(metrics, "cert05.sim.test") == 1.0);  // the encrypted key, opened with its passphrase
  CHECK(metrics.find("windows_cpu_time_total{target=\"cert01.sim.test\"") != std::string::npos);
  for (const std::string t : {"cert02.sim.test", "cert03.sim.test", "basiconly.sim.test"}) {
    CAPTURE(t);
    CHECK(up(metrics, t) == 0.0);
    CHECK(errors_of(metrics, t, "auth").value_or(0) >= 1);
  }
  const std::string log = read_file(exporter.stderr_path);
  // 401 for the trusted but unmapped certificate, 403 for the untrusted one (HTTP.sys).
  CHECK_MESSAGE(
      log.find("HTTP 401: client certificate rejected (not mapped to a user)") != std::string::npos,
      log);
  CHECK_MESSAGE(
      log.find("HTTP 403: client certificate rejected (missing or untrusted)") != std::string::npos,
      log);
  // The key's bytes appear nowhere (only its path may).
  const std::string key = read_file(dir / "monitor.key");
  const std::string key_line = key.substr(key.find('\n') + 1, 40);
  CHECK(log.find(key_line) == std::string::npos);
  CHECK(metrics.find(key_line) == std::string::npos);
  CHECK(log.find(passphrase) == std::string::npos);
  CHECK(metrics.find(passphrase) == std::string::npos);

  {  // pywinrm's certificate transport against the same sim
    write_file(dir / "pywinrm_cert.py", R"PY(
import sys
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError
port, d = sys.argv[1], sys.argv[2]
xml = open(d + "/enumerate.xml").read()
def proto(cert):
    return winrm.Protocol("https://localhost:%s/wsman" % port, transport="certificate",
                          cert_pem="%s/%s.pem" % (d, cert), cert_key_pem="%s/%s.key" % (d, cert),
                          server_cert_validation="validate", ca_trust_path=d + "/ca.pem")
body = proto("monitor").send_message(xml)
body = body.decode() if isinstance(body, bytes) else body
print("GOOD", "EnumerateResponse" in body and "NumberOfCores" in body)
for cert in ("stranger", "rogue"):
    try:
        proto(cert).send_message(xml)
        print("BAD", cert, "accepted")
    except (InvalidCredentialsError, WinRMTransportError) as e:
        print("REFUSED", cert, getattr(e, "code", 401), type(e).__name__)
)PY");
    write_file(dir / "enumerate.xml",
               "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
               "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
               "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
               "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header>"
               "<a:To>https://localhost/wsman</a:To><w:ResourceURI s:mustUnderstand=\"true\">"
               "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*</w:ResourceURI>"
               "<a:ReplyTo><a:Address s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/"
               "2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action "
               "s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/09/enumeration/"
               "Enumerate</a:Action><w:MaxEnvelopeSize s:mustUnderstand=\"true\">153600"
               "</w:MaxEnvelopeSize><a:MessageID>uuid:6C2B0C5E-1A52-4C0B-9C2A-3F1E8F9A0B11"
               "</a:MessageID><w:OperationTimeout>PT60.000S</w:OperationTimeout></s:Header>"
               "<s:Body><n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000"
               "</w:MaxElements><w:Filter Dialect=\"http://schemas.microsoft.com/wbem/wsman/1/"
               "WQL\">SELECT Name, NumberOfCores FROM Win32_Processor</w:Filter></n:Enumerate>"
               "</s:Body></s:Envelope>");
    const int rc =
        run_shell("timeout 60 /usr/bin/python3 " + d + "/pywinrm_cert.py " +
                  std::to_string(https_port) + " " + d + " > " + d + "/pywinrm.out 2>&1");
    const std::string out = read_file(dir / "pywinrm.out");
    CHECK_MESSAGE(rc == 0, out);
    CHECK_MESSAGE(out.find("GOOD True") != std::string::npos, out);
    CHECK_MESSAGE(out.find("REFUSED stranger 401") != std::string::npos, out);
    CHECK_MESSAGE(out.find("REFUSED rogue 403") != std::string::npos, out);
    CHECK_MESSAGE(out.find("BAD") == std::string::npos, out);
  }

  {  // an encrypted key needs its passphrase file, and the right passphrase, at load
    auto check = [&](const std::string& pass_file) {
      write_file(dir / "enc.yml", "credentials:\n" + encrypted_profile(pass_file) +
                                      "targets:\n  - {name: cert05.sim.test, credential: "
                                      "encrypted, port: " +
                                      std::to_string(https_port) + "}\n");
      const int rc = run_shell(kExporterBinary + " --config.file=" + d +
                               "/enc.yml --config.check > " + d + "/enc.out 2>&1");
      return std::make_pair(rc, read_file(dir / "enc.out"));
    };
    auto [rc, out] = check("key.pass");
    CHECK_MESSAGE(rc == 0, out);
    CHECK(out.find(passphrase) == std::string::npos);
    std::tie(rc, out) = check("");
    CHECK(rc != 0);
    CHECK_MESSAGE(
        out.find("monitor_enc.key' is encrypted: set key_password_file") != std::string::npos, out);
    std::tie(rc, out) = check("wrong_key.pass");
    CHECK(rc != 0);
    CHECK_MESSAGE(out.find("wrong_key.pass' does not decrypt key") != std::string::npos, out);
    CHECK(out.find("not-the-passphrase") == std::string::npos);
  }

  {  // certificate auth over plain http is a config error
    write_file(dir / "http.yml", "credentials:\n" + profile("good", "monitor") +
                                     "targets:\n  - {name: cert01.sim.test, credential: good, "
                                     "scheme: http, port: " +
                                     std::to_string(http_port) + "}\n");
    const int rc = run_shell(kExporterBinary + " --config.file=" + d +
                             "/http.yml --config.check > " + d + "/check.out 2>&1");
    const std::string out = read_file(dir / "check.out");
    CHECK_MESSAGE(rc != 0, out);
    CHECK_MESSAGE(
        out.find("uses auth: certificate, which needs scheme: https") != std::string::npos, out);
  }
}

TEST_CASE(
    "proxies: CONNECT with NTLM and CBT, absolute-URI HTTP, proxy auth, NO_PROXY, dead, "
    "https:// proxies through stunnel4") {
  const SlowUnwinderForChildren slow_unwinder;
  unsetenv("NTLM_USER_FILE");
  for (const char* name : {"http_proxy", "https_proxy", "HTTPS_PROXY", "NO_PROXY", "no_proxy"}) {
    unsetenv(name);  // only the configuration decides
  }
  TempDir dir;
  const std::string password = "Proxy-e2e-Pa55-c41d";
  const std::string proxy_password = "Tiny-e2e-Secret-8e2a";
  // CbtHardeningLevel=Strict: an NTLM token without the binding of the sim's certificate
  // is refused, so a handshake through the tunnel proves the binding is end to end.
  Sim sim(dir,
          "keep_alive_timeout: 30s\n"
          "users:\n  - {username: monitor, password: " +
              password +
              "}\n"
              "negotiate: {ntlm: true, ntlm_domain: SIMHOST, require_encryption_on_http: false, "
              "cbt: strict}\n");
  Tinyproxy open_proxy(dir, "open");
  Tinyproxy auth_proxy(dir, "auth", "BasicAuth winrm " + proxy_password + "\n");
  const int dead_port = free_port();  // nothing listens there
  make_server_cert(dir, "proxy_ca", "proxy_front");
  make_server_cert(dir, "rogue_ca", "rogue_front");
  const std::string pd = dir.path().string() + "/";
  Stunnel front(dir, "stunnel",
                {{"auth", pd + "proxy_front.pem", pd + "proxy_front.key", auth_proxy.port},
                 {"open", pd + "proxy_front.pem", pd + "proxy_front.key", open_proxy.port},
                 {"rogue", pd + "rogue_front.pem", pd + "rogue_front.key", open_proxy.port}});

  const std::string d = dir.str();
  write_secret(dir / "good.pass", password);
  write_secret(dir / "proxy.pass", proxy_password);
  write_secret(dir / "wrong_proxy.pass", "not-the-proxy-password");
  const std::string https = ", port: " + std::to_string(sim.https_port);
  const std::string http = ", scheme: http, port: " + std::to_string(sim.http_port);
  // Every target's host is "localhost" (the name the proxy resolves; the certificate covers
  // it) but the bypassed one, which is the address 127.0.0.1 listed in no_proxy.
  write_file(
      dir / "exporter.yml",
      "global:\n" + kPollTiming + "  tls_ca_file: " + d +
          "/ca.pem\n  collectors: [cpu, os]\n  credential: workgroup\n"
          "  proxy: " +
          open_proxy.url() +
          "\n  no_proxy: [127.0.0.1, .bypass.test]\n"
          "credentials:\n"
          "  workgroup:\n    auth: ntlm\n    username: 'SIMHOST\\monitor'\n    password_file: " +
          d +
          "/good.pass\n  plain:\n    auth: basic\n    username: monitor\n    password_file: " + d +
          "/good.pass\n"
          "targets:\n"
          "  - {name: connect-ntlm, host: localhost" +
          https +
          "}\n"
          "  - {name: absolute-http, host: localhost, credential: plain" +
          http +
          "}\n"
          "  - {name: bypassed, host: 127.0.0.1" +
          https +
          "}\n"
          "  - {name: proxy-auth, host: localhost" +
          https + ", proxy: {url: " + auth_proxy.url() + ", username: winrm, password_file: " + d +
          "/proxy.pass}}\n"
          "  - {name: proxy-auth-wrong, host: localhost" +
          https + ", proxy: {url: " + auth_proxy.url() + ", username: winrm, password_file: " + d +
          "/wrong_proxy.pass}}\n"
          "  - {name: dead-proxy, host: localhost" +
          https + ", proxy: http://127.0.0.1:" + std::to_string(dead_port) +
          "}\n"
          "  - {name: direct, host: localhost" +
          https +
          ", proxy: none}\n"
          // TLS to the proxy, verified against proxy_ca (the sim's certificate: ca.pem).
          "  - {name: tls-proxy-ntlm, host: localhost" +
          https + ", proxy: {url: '" + front.url(0) + "', username: winrm, password_file: " + d +
          "/proxy.pass, ca_file: " + d +
          "/proxy_ca.pem}}\n"
          "  - {name: tls-proxy-http, host: localhost, credential: plain" +
          http + ", proxy: {url: '" + front.url(1) + "', ca_file: " + d +
          "/proxy_ca.pem}}\n"
          "  - {name: tls-proxy-rogue, host: localhost" +
          https + ", proxy: {url: '" + front.url(2) + "', ca_file: " + d + "/proxy_ca.pem}}\n");
  Exporter exporter(dir, dir / "exporter.yml");
  const std::vector<std::string> good = {"connect-ntlm",  "absolute-http", "bypassed",
                                         "proxy-auth",    "direct",        "tls-proxy-ntlm",
                                         "tls-proxy-http"};
  auto [done, metrics] = exporter.metrics_when(
      [&](const std::string& m) {
        for (const auto& t : good) {
          if (!polled(m, t)) return false;
        }
        return errors_of(m, "proxy-auth-wrong", "transport").value_or(0) >= 1 &&
               errors_of(m, "dead-proxy", "transport").value_or(0) >= 1 &&
               errors_of(m, "tls-proxy-rogue", "tls").value_or(0) >= 1;
      },
      40s);
  const std::string why = diagnostics(dir, metrics, exporter) + "\n--- open proxy:\n" +
                          open_proxy.requests().substr(0, 3000) + "\n--- auth proxy:\n" +
                          auth_proxy.requests().substr(0, 3000) + "\n--- stunnel:\n" +
                          front.messages().substr(0, 3000);
  REQUIRE_MESSAGE(done, why);
  for (const auto& t : good) {
    CAPTURE(t);
    CHECK(up(metrics, t) == 1.0);
  }
  CHECK(up(metrics, "proxy-auth-wrong") == 0.0);
  CHECK(up(metrics, "dead-proxy") == 0.0);
  CHECK(up(metrics, "tls-proxy-rogue") == 0.0);
  // NTLM through the tunnel: no auth errors anywhere.
  CHECK(metrics.find("winrm_exporter_auth_errors_total{") == std::string::npos);

  // What crossed each proxy: tinyproxy logs every request line it handled.
  const std::string https_port = std::to_string(sim.https_port);
  const std::string http_port = std::to_string(sim.http_port);
  const std::string open_log = open_proxy.requests();
  const std::string auth_log = auth_proxy.requests();
  // connect-ntlm (and nothing else on the open proxy's HTTPS side): CONNECT tunnels.
  CHECK_MESSAGE(count_of(open_log, "CONNECT localhost:" + https_port) >= 1, open_log);
  // absolute-http: absolute-URI POSTs, not a tunnel.
  CHECK_MESSAGE(count_of(open_log, "POST http://localhost:" + http_port + "/wsman") >= 2, open_log);
  CHECK(count_of(open_log, "CONNECT localhost:" + http_port) == 0);
  // bypassed (no_proxy 127.0.0.1) and direct (proxy: none) never reached a proxy.
  CHECK_MESSAGE(count_of(open_log, "127.0.0.1:" + https_port) == 0, open_log);
  CHECK(count_of(auth_log, "127.0.0.1:" + https_port) == 0);
  // proxy-auth: tunnels through the proxy that wants Basic auth, after its check.
  CHECK_MESSAGE(count_of(auth_log, "CONNECT localhost:" + https_port) >= 1, auth_log);
  const std::string log = read_file(exporter.stderr_path);
  // tinyproxy refuses a wrong Basic password with 401 where RFC 9110 says 407.
  CHECK_MESSAGE(log.find("proxy refused the CONNECT tunnel: HTTP 40") != std::string::npos, log);
  CHECK_MESSAGE(log.find("(proxy authentication failed)") != std::string::npos, log);
  CHECK_MESSAGE(log.find("proxy unreachable") != std::string::npos, log);
  // https:// proxies: only tls-proxy-ntlm uses the front's "auth" service and only
  // tls-proxy-http its "open" one, so their connections there prove the TLS path was taken
  // (and both polled: the proxy's certificate verified against proxy_ca.pem).
  const std::string front_log = front.messages();
  CHECK_MESSAGE(front_log.find("Service [auth] accepted connection") != std::string::npos,
                front_log);
  CHECK_MESSAGE(front_log.find("Service [open] accepted connection") != std::string::npos,
                front_log);
  // A front whose certificate is from another CA: a tls error naming the proxy.
  CHECK_MESSAGE(log.find("TLS to the proxy: certificate verification failed") != std::string::npos,
                log);
  CHECK_MESSAGE(log.find("through proxy " + front.url(2)) != std::string::npos, log);
  // Neither password reaches logs or metrics.
  for (const auto& secret : {password, proxy_password}) {
    CHECK(log.find(secret) == std::string::npos);
    CHECK(metrics.find(secret) == std::string::npos);
    CHECK(read_file(dir / "exporter.out").find(secret) == std::string::npos);
  }
}

}  // namespace test_cert_proxy
