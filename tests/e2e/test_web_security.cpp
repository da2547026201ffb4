// End to end: the exporter's own listener with --web.config.file, checked with the
// curl CLI and a real Prometheus: TLS, basic auth (bcrypt), client certificates, minimum
// TLS version, certificate files replaced while running, the lifecycle flag, and slow
// clients that must not blind /metrics.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>

#include "e2e_util.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_web_security {

using namespace e2e;

namespace {

const char* kPrometheus = "/usr/bin/prometheus";
// Published bcrypt vector (Openwall crypt_blowfish): the password is "U*U".
constexpr const char* kHash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
constexpr const char* kPassword = "U*U";

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs openssl to make `name`.pem/.key in dir, signed by ca (ca.pem/ca.key in dir).
void make_cert(const TempDir& dir, const std::string& ca, const std::string& name,
               const std::string& extensions) {
  std::string d = dir.str() + "/";
  write_file(dir / (name + ".ext"), extensions + "\n");
  std::string command = "openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + d +
                        name + ".key -out " + d + name + ".csr 2>/dev/null && " +
                        "openssl x509 -req -in " + d + name + ".csr -CA " + d + ca +
                        ".pem -CAkey " + d + ca + ".key -CAcreateserial -days 2 -sha256 -extfile " +
                        d + name + ".ext -out " + d + name + ".pem 2>/dev/null";
  REQUIRE(run_shell(command) == 0);
}

void make_ca(const TempDir& dir, const std::string& name) {
  std::string d = dir.str() + "/";
  REQUIRE(run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=" + name +
                    " test CA' -keyout " + d + name + ".key -out " + d + name +
                    ".pem 2>/dev/null") == 0);
}

const std::string kServerExt =
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth";
const std::string kClientExt = "subjectAltName=DNS:prometheus.test\nextendedKeyUsage=clientAuth";

struct CurlResult {
  int exit_code = -1;  // curl's: 0 ok, 35 handshake, 56 receive failure, 60 verify, ...
  int http_code = 0;
  std::string body;
};

// curl CLI as a subprocess against https://localhost:port/path (or http:// with plain).
CurlResult curl(const TempDir& dir, int port, const std::string& path,
                const std::vector<std::string>& options, bool plain = false) {
  static int counter = 0;
  std::string out = (dir / ("curl" + std::to_string(++counter) + ".out")).string();
  std::string command = "curl -sS --max-time 10 -o " + out + " -w '%{http_code}' ";
  for (const auto& option : options) command += shell_quote(option) + " ";
  command += std::string(plain ? "http" : "https") + "://localhost:" + std::to_string(port) + path;
  command += " > " + out + ".code 2>" + out + ".err";
  CurlResult result;
  result.exit_code = run_shell(command);
  result.http_code = std::atoi(read_file(out + ".code").c_str());
  result.body = read_file(out);
  return result;
}

// The exporter with a web config; ready once /-/ready answers over TLS with credentials.
struct SecureExporter {
  std::unique_ptr<Process> process;
  int port = 0;

  SecureExporter(const TempDir& dir, const std::vector<std::string>& ready_curl_options,
                 std::vector<std::string> extra = {}) {
    write_file(dir / "exporter.yml", "targets: []\n");
    for (int attempt = 0; attempt < 3 && port == 0; ++attempt) {
      int candidate = free_port();
      std::vector<std::string> argv = {
          kExporterBinary, "--config.file=" + (dir / "exporter.yml").string(),
          "--web.config.file=" + (dir / "web.yml").string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(candidate)};
      argv.insert(argv.end(), extra.begin(), extra.end());
      process = std::make_unique<Process>(argv, dir / "exporter.out", dir / "exporter.err");
      bool ready = wait_until(
          [&] {
            return !process->running() ||
                   curl(dir, candidate, "/-/ready", ready_curl_options).http_code == 200;
          },
          10s);
      if (ready && process->running()) port = candidate;
    }
    REQUIRE_MESSAGE(port != 0, read_file(dir / "exporter.err"));
  }
};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

}  // namespace

TEST_CASE(
    "curl: TLS with basic auth; wrong password 401; TLS 1.2 refused under min_version TLS13") {
  TempDir dir;
  make_ca(dir, "ca");
  make_cert(dir, "ca", "server", kServerExt);
  write_file(dir / "web.yml",
             "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
             "  min_version: TLS13\n"
             "basic_auth_users:\n  prometheus: " +
                 std::string(kHash) + "\n");
  const std::vector<std::string> tls = {"--cacert", (dir / "ca.pem").string()};
  const std::vector<std::string> auth = with(tls, {"-u", std::string("prometheus:") + kPassword});
  SecureExporter exporter(dir, auth);

  CurlResult ok = curl(dir, exporter.port, "/metrics", auth);
  CHECK(ok.exit_code == 0);
  CHECK(ok.http_code == 200);
  CHECK(ok.body.find("winrm_exporter_build_info") != std::string::npos);
  CHECK(curl(dir, exporter.port, "/metrics", tls).http_code == 401);
  CHECK(curl(dir, exporter.port, "/metrics", with(tls, {"-u", "prometheus:wrong"})).http_code ==
        401);
  CHECK(curl(dir, exporter.port, "/metrics", with(tls, {"-u", "nobody:U*U"})).http_code == 401);
  CHECK(curl(dir, exporter.port, "/sd", tls).http_code == 401);  // /sd is behind auth too
  CHECK(curl(dir, exporter.port, "/sd", auth).http_code == 200);
  // Lifecycle off by default: 403 even with credentials.
  CHECK(curl(dir, exporter.port, "/-/reload", with(auth, {"-X", "POST"})).http_code == 403);

  // TLS 1.2 at most: refused in the handshake (curl exit 35), no HTTP status.
  CurlResult old = curl(dir, exporter.port, "/metrics", with(auth, {"--tls-max", "1.2"}));
  CHECK(old.exit_code == 35);
  CHECK(old.http_code == 0);
  // Plain HTTP to the TLS port gets no HTTP answer.
  CHECK(curl(dir, exporter.port, "/metrics", {}, true).http_code != 200);
  CHECK(exporter.process->stop() == 0);
}

TEST_CASE("curl: client certificate required and verified") {
  TempDir dir;
  make_ca(dir, "ca");
  make_ca(dir, "other");
  make_cert(dir, "ca", "server", kServerExt);
  make_cert(dir, "ca", "client", kClientExt);
  make_cert(dir, "other", "stranger", kClientExt);
  write_file(dir / "web.yml",
             "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
             "  client_auth_type: RequireAndVerifyClientCert\n"
             "  client_ca_file: ca.pem\n"
             "  client_allowed_sans: [prometheus.test]\n");
  const std::vector<std::string> tls = {"--cacert", (dir / "ca.pem").string()};
  const std::vector<std::string> client =
      with(tls, {"--cert", (dir / "client.pem").string(), "--key", (dir / "client.key").string()});
  SecureExporter exporter(dir, client, {"--web.enable-lifecycle"});

  CHECK(curl(dir, exporter.port, "/metrics", client).http_code == 200);
  // No certificate: the handshake fails (TLS 1.3 reports it on the first read: 56).
  CurlResult none = curl(dir, exporter.port, "/metrics", tls);
  CHECK(none.exit_code != 0);
  CHECK(none.http_code == 0);
  CurlResult stranger = curl(dir, exporter.port, "/metrics",
                             with(tls, {"--cert", (dir / "stranger.pem").string(), "--key",
                                        (dir / "stranger.key").string()}));
  CHECK(stranger.exit_code != 0);
  CHECK(stranger.http_code == 0);
  // With the lifecycle flag, a client with a certificate may reload.
  CHECK(curl(dir, exporter.port, "/-/reload", with(client, {"-X", "POST"})).http_code == 200);

  // A certificate from the right CA whose SAN is not in client_allowed_sans is refused.
  make_cert(dir, "ca", "intruder", "subjectAltName=DNS:intruder.test\nextendedKeyUsage=clientAuth");
  CurlResult intruder = curl(dir, exporter.port, "/metrics",
                             with(tls, {"--cert", (dir / "intruder.pem").string(), "--key",
                                        (dir / "intruder.key").string()}));
  CHECK(intruder.exit_code != 0);
  CHECK(intruder.http_code == 0);
  CHECK(exporter.process->stop() == 0);
}

TEST_CASE("curl: certificate files replaced while running: the new certificate is served") {
  TempDir dir;
  make_ca(dir, "ca");
  make_ca(dir, "ca2");
  make_cert(dir, "ca", "server", kServerExt);
  make_cert(dir, "ca2", "server2", kServerExt);
  write_file(dir / "web.yml",
             "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
  const std::vector<std::string> old_ca = {"--cacert", (dir / "ca.pem").string()};
  const std::vector<std::string> new_ca = {"--cacert", (dir / "ca2.pem").string()};
  SecureExporter exporter(dir, old_ca);
  CHECK(curl(dir, exporter.port, "/metrics", old_ca).http_code == 200);
  CHECK(curl(dir, exporter.port, "/metrics", new_ca).exit_code == 60);  // not trusted yet

  // As cert-manager or certbot do: new files renamed over the old ones, no signal.
  fs::copy_file(dir / "server2.key", dir / "server.key.new");
  fs::copy_file(dir / "server2.pem", dir / "server.pem.new");
  fs::rename(dir / "server.key.new", dir / "server.key");
  fs::rename(dir / "server.pem.new", dir / "server.pem");
  bool served = wait_until(
      [&] { return curl(dir, exporter.port, "/metrics", new_ca).http_code == 200; }, 15s);
  CHECK_MESSAGE(served, read_file(dir / "exporter.err"));
  CHECK(curl(dir, exporter.port, "/metrics", old_ca).exit_code == 60);

  // A broken replacement keeps the working certificate in service.
  write_file(dir / "server.pem", "not a certificate\n");
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(1100ms);  // past the provider's once-a-second check
    CHECK(curl(dir, exporter.port, "/metrics", new_ca).http_code == 200);
  }
  CHECK(read_file(dir / "exporter.err").find("keeping the previous ones") != std::string::npos);
  CHECK(exporter.process->stop() == 0);
}

TEST_CASE("Prometheus scrapes /metrics over TLS with basic auth and a client certificate") {
  REQUIRE(fs::exists(kPrometheus));
  TempDir dir;
  make_ca(dir, "ca");
  make_cert(dir, "ca", "server", kServerExt);
  make_cert(dir, "ca", "client", kClientExt);
  write_file(dir / "web.yml",
             "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n"
             "  client_ca_file: ca.pem\n"
             "basic_auth_users:\n  prometheus: " +
                 std::string(kHash) + "\n");
  const std::vector<std::string> client = {
      "--cacert", (dir / "ca.pem").string(),     "--cert", (dir / "client.pem").string(),
      "--key",    (dir / "client.key").string(), "-u",     std::string("prometheus:") + kPassword};
  SecureExporter exporter(dir, client);

  write_file(dir / "password", kPassword);
  std::string target = "localhost:" + std::to_string(exporter.port);
  std::string scrape_configs =
      "scrape_configs:\n"
      "  - job_name: exporter\n"
      "    scheme: https\n"
      "    tls_config: {ca_file: " +
      (dir / "ca.pem").string() + ", cert_file: " + (dir / "client.pem").string() +
      ", key_file: " + (dir / "client.key").string() + "}\n" +
      "    basic_auth: {username: prometheus, password_file: " + (dir / "password").string() +
      "}\n    static_configs: [{targets: ['" + target + "']}]\n" +
      "  - job_name: wrong_password\n"
      "    scheme: https\n"
      "    tls_config: {ca_file: " +
      (dir / "ca.pem").string() + ", cert_file: " + (dir / "client.pem").string() +
      ", key_file: " + (dir / "client.key").string() + "}\n" +
      "    basic_auth: {username: prometheus, password: wrong}\n"
      "    static_configs: [{targets: ['" +
      target + "']}]\n";
  write_file(
      dir / "prometheus.yml",
      "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n" +
          scrape_configs);
  std::unique_ptr<Process> prometheus;
  int prometheus_port = 0;
  for (int attempt = 0; attempt < 3 && prometheus_port == 0; ++attempt) {
    int candidate = free_port();
    prometheus = std::make_unique<Process>(
        std::vector<std::string>{kPrometheus, "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(candidate),
                                 "--log.level=warn"},
        dir / "prometheus.out", dir / "prometheus.err");
    if (wait_until(
            [&] { return !prometheus->running() || get(candidate, "/-/ready").status == 200; },
            30s) &&
        prometheus->running()) {
      prometheus_port = candidate;
    }
  }
  REQUIRE_MESSAGE(prometheus_port != 0, read_file(dir / "prometheus.err"));
  std::string build_info;
  bool scraped = wait_until(
      [&] {
        build_info = get(prometheus_port, "/api/v1/query?query=winrm_exporter_build_info").body;
        return build_info.find("\"job\":\"exporter\"") != std::string::npos;
      },
      30s);
  CHECK_MESSAGE(scraped, build_info << "\n" << read_file(dir / "prometheus.err"));
  // The job with the wrong password is down, with the 401 as its error.
  std::string targets;
  bool refused = wait_until(
      [&] {
        targets = get(prometheus_port, "/api/v1/targets?state=active").body;
        return targets.find("401") != std::string::npos;
      },
      30s);
  CHECK_MESSAGE(refused, targets);
  CHECK(get(prometheus_port, "/api/v1/query?query=up%7Bjob%3D%22wrong_password%22%7D")
            .body.find("\"0\"]") != std::string::npos);
  CHECK(prometheus->stop() == 0);
  CHECK(exporter.process->stop() == 0);
}

namespace {

// A TCP connection to 127.0.0.1:port from source address `from` (any 127/8 address works on
// Linux loopback), so that tests can be several clients for the per-client cap.
int connect_from(const std::string& from, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in source{};
  source.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &source.sin_addr);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) == 0);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&server), sizeof server) == 0);
  return fd;
}

// Whether the server has answered or closed this connection (readable now).
bool answered_or_closed(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

TEST_CASE("slow clients: 100 connections trickling header bytes do not blind /metrics") {
  TempDir dir;
  write_file(dir / "exporter.yml", "targets: []\n");
  Exporter exporter(dir, dir / "exporter.yml", {"--web.max-connections-per-client=20"});

  // 100 slowloris clients from 10 addresses (10 each, under the per-client cap of 20).
  std::vector<int> slow;
  for (int i = 0; i < 100; ++i) {
    int fd = connect_from("127.0.0." + std::to_string(2 + i / 10), exporter.port);
    const std::string start = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    REQUIRE(::send(fd, start.data(), start.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(start.size()));
    slow.push_back(fd);
  }
  // One more header byte every 2 s on each, until the server closes them (bounded).
  std::atomic<bool> done{false};
  std::thread trickler([&] {
    for (int round = 0; round < 30 && !done; ++round) {
      for (int fd : slow) (void)::send(fd, "X", 1, MSG_NOSIGNAL);
      for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(100ms);
    }
  });

  // Scrapes complete while all 100 are connected (each with the helper's 10 s limit; the
  // cpp-httplib listener with 8 threads timed out here).
  for (int i = 0; i < 5; ++i) {
    HttpResult scrape = get(exporter.port, "/metrics");
    CHECK(scrape.status == 200);
    CHECK(scrape.body.find("winrm_exporter_build_info") != std::string::npos);
  }
  int closed_early = 0;
  for (int fd : slow) closed_early += answered_or_closed(fd) ? 1 : 0;
  CHECK(closed_early == 0);  // they really held their connections during the scrapes

  // The total request deadline (10 s from the first byte) ends each of them, trickle or not.
  bool all_closed = wait_until(
      [&] {
        return std::all_of(slow.begin(), slow.end(), [](int fd) { return answered_or_closed(fd); });
      },
      30s);
  CHECK(all_closed);
  char buffer[64] = {};
  ssize_t n = ::recv(slow.front(), buffer, sizeof buffer - 1, 0);
  CHECK(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0).starts_with("HTTP/1.1 408"));
  done = true;
  trickler.join();
  for (int fd : slow) ::close(fd);

  // The per-client cap: the 21st..30th connection from one address are refused, while
  // another address still scrapes.
  std::vector<int> greedy;
  for (int i = 0; i < 30; ++i) greedy.push_back(connect_from("127.0.0.50", exporter.port));
  int refused = 0;
  wait_until(
      [&] {
        refused = static_cast<int>(std::count_if(greedy.begin(), greedy.end(), answered_or_closed));
        return refused >= 10;
      },
      5s);
  CHECK(refused == 10);
  CHECK(get(exporter.port, "/metrics").status == 200);
  for (int fd : greedy) ::close(fd);
  CHECK(exporter.process->stop() == 0);
}

}  // namespace test_web_security
