// `auth: certificate` profiles and `proxy:` / `no_proxy:` settings.
#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "config/config.h"
#include "temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_cert_proxy {

namespace {

const config::Target& find_target(const config::Config& c, const std::string& name) {
  for (const auto& t : c.targets) {
    if (t.name == name) return t;
  }
  FAIL("no target " << name);
  throw std::logic_error("unreachable");
}

std::string certificate_profile(TempDir& dir) {
  const std::string cert = dir.write("client.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::string key = dir.write("client.key", "-----BEGIN PRIVATE KEY-----\n");
  return "  cert:\n    auth: certificate\n    cert_file: " + cert + "\n    key_file: " + key + "\n";
}

}  // namespace

TEST_CASE("auth: certificate takes cert_file and key_file, https only") {
  ::unsetenv("NO_PROXY");
  ::unsetenv("no_proxy");
  TempDir dir;
  const std::string profile = certificate_profile(dir);
  const auto c = config::load(dir.write(
      "ok.yml", "credentials:\n" + profile + "targets:\n  - {name: web01, credential: cert}\n"));
  const auto& p = c.credentials.at("cert");
  CHECK(p.method == config::AuthMethod::kCertificate);
  CHECK(p.cert_file == dir.str() + "/client.pem");
  CHECK(p.key_file == dir.str() + "/client.key");
  CHECK(p.username.empty());
  CHECK(std::string(config::to_string(p.method)) == "certificate");
  CHECK(config::describe(c).find("auth=certificate cert_file=" + dir.str() + "/client.pem") !=
        std::string::npos);

  auto error = load_error(
      dir.write("http.yml", "credentials:\n" + profile +
                                "targets:\n  - {name: web01, credential: cert, scheme: http}\n"));
  CHECK(error.find("http.yml:") != std::string::npos);
  CHECK(error.find("needs scheme: https") != std::string::npos);

  error = load_error(dir.write("nokey.yml",
                               "credentials:\n  cert:\n    auth: certificate\n"
                               "    cert_file: " +
                                   dir.str() + "/client.pem\n"));
  CHECK(error.find("needs cert_file and key_file") != std::string::npos);

  error = load_error(dir.write("missing.yml",
                               "credentials:\n  cert:\n    auth: certificate\n"
                               "    cert_file: " +
                                   dir.str() +
                                   "/client.pem\n"
                                   "    key_file: " +
                                   dir.str() + "/gone.key\n"));
  CHECK(error.find("cannot read") != std::string::npos);
  CHECK(error.find("gone.key") != std::string::npos);

  error = load_error(dir.write("user.yml", "credentials:\n" + profile + "    username: x\n"));
  CHECK(error.find("not used with auth: certificate") != std::string::npos);

  error = load_error(dir.write("basic.yml",
                               "credentials:\n  b:\n    auth: basic\n"
                               "    username: u\n    password_env: HOME\n"
                               "    cert_file: " +
                                   dir.str() + "/client.pem\n"));
  CHECK(error.find("only valid with auth: certificate") != std::string::npos);

  {  // A key other users can read loads, with a warning (like a password file).
    auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(20);
    spdlog::default_logger()->sinks().push_back(log);
    const std::string open_key = dir.write("open.key", "-----BEGIN PRIVATE KEY-----\n", 0644);
    config::load(dir.write("open.yml",
                           "credentials:\n  cert:\n    auth: certificate\n"
                           "    cert_file: " +
                               dir.str() + "/client.pem\n    key_file: " + open_key + "\n"));
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), log), sinks.end());
    std::string lines;
    for (const auto& line : log->last_formatted()) lines += line;
    CHECK_MESSAGE(lines.find("private key '" + open_key +
                             "' is readable by every user; chmod o-r it") != std::string::npos,
                  lines);
  }

  // A passphrase for a key that is not encrypted (the e2e test covers encrypted ones).
  const std::string pass = dir.write("key.pass", "passphrase\n");
  error = load_error(dir.write(
      "plainkey.yml", "credentials:\n" + profile + "    key_password_file: " + pass + "\n"));
  CHECK(error.find("key_file is not encrypted") != std::string::npos);
  error = load_error(dir.write("basickey.yml",
                               "credentials:\n  b:\n    auth: basic\n"
                               "    username: u\n    password_env: HOME\n"
                               "    key_password_file: " +
                                   pass + "\n"));
  CHECK(error.find("only valid with auth: certificate") != std::string::npos);
}

TEST_CASE("proxy: global, inventory-free target override, none, auth file, no_proxy") {
  ::unsetenv("NO_PROXY");
  ::unsetenv("no_proxy");
  TempDir dir;
  const std::string pass = dir.write("proxy.pass", "proxy-Secret-1\n");
  const auto c = config::load(
      dir.write("p.yml",
                "global:\n  proxy: http://proxy.example:3128/\n"
                "  no_proxy: [.corp.example, 10.0.0.0/8]\n"
                "credentials:\n  b:\n    auth: basic\n    username: u\n    password_env: HOME\n"
                "targets:\n"
                "  - {name: a, credential: b}\n"
                "  - {name: b, credential: b, proxy: none}\n"
                "  - {name: c, credential: b, proxy: {url: 'http://[fd00::1]:8080', "
                "username: winrm, password_file: " +
                    pass + "}}\n"));
  CHECK(c.defaults.proxy.url == "http://proxy.example:3128");
  CHECK(c.defaults.no_proxy == ".corp.example,10.0.0.0/8");
  CHECK(find_target(c, "a").proxy.url == "http://proxy.example:3128");
  CHECK(find_target(c, "a").no_proxy == ".corp.example,10.0.0.0/8");
  CHECK(find_target(c, "b").proxy.url.empty());
  const auto& with_auth = find_target(c, "c").proxy;
  CHECK(with_auth.url == "http://[fd00::1]:8080");
  CHECK(with_auth.username == "winrm");
  CHECK(with_auth.password.reveal() == "proxy-Secret-1");
  const std::string summary = config::describe(c);
  CHECK(summary.find("proxy-Secret-1") == std::string::npos);
  CHECK(summary.find("proxy_password=<secret>") != std::string::npos);

  // An inventory file's defaults sit between global and the target (CONFIG.md "Proxies").
  dir.write("branch.yml",
            "defaults: {credential: b, proxy: 'http://branch-proxy.example:8080'}\n"
            "targets:\n  - {host: i1.example}\n  - {host: i2.example, proxy: none}\n");
  const auto inventory = config::load(
      dir.write("inv.yml",
                "global:\n  proxy: http://proxy.example:3128\n"
                "credentials:\n  b:\n    auth: basic\n    username: u\n    password_env: HOME\n"
                "inventory_files: [branch.yml]\n"));
  CHECK(find_target(inventory, "i1.example").proxy.url == "http://branch-proxy.example:8080");
  CHECK(find_target(inventory, "i2.example").proxy.url.empty());

  ::setenv("NO_PROXY", "from-env.example", 1);
  const auto env = config::load(
      dir.write("env.yml",
                "credentials:\n  b:\n    auth: basic\n    username: u\n    password_env: HOME\n"
                "targets:\n  - {name: a, credential: b}\n"));
  CHECK(find_target(env, "a").no_proxy == "from-env.example");
  ::unsetenv("NO_PROXY");

  const std::string creds =
      "credentials:\n  b:\n    auth: basic\n    username: u\n    password_env: HOME\n"
      "targets:\n  - {name: a, credential: b}\n";
  auto error =
      load_error(dir.write("userinfo.yml", "global:\n  proxy: http://u:hunter2@p:3128\n" + creds));
  CHECK(error.find("no credentials in the proxy URL") != std::string::npos);
  CHECK(error.find("hunter2") == std::string::npos);
  error = load_error(dir.write("noport.yml", "global:\n  proxy: http://p.example\n" + creds));
  CHECK(error.find("with the port") != std::string::npos);
  error = load_error(dir.write("socks.yml", "global:\n  proxy: socks5://p.example:1080\n" + creds));
  CHECK(error.find("proxy must be http://host:port, https://host:port or none") !=
        std::string::npos);
  // https://: TLS to the proxy, with its own CA file (checked at load, errors at file:line).
  const std::string ca = dir.write("proxy-ca.pem", "not parsed at load\n");
  const auto tls = config::load(
      dir.write("tls.yml", "global:\n  proxy: https://p.example:8443\n" + creds +
                               "  - {name: t, credential: b, proxy: {url: 'https://q.example:443', "
                               "ca_file: " +
                               ca + "}}\n"));
  CHECK(find_target(tls, "a").proxy.url == "https://p.example:8443");
  CHECK(find_target(tls, "a").proxy.ca_file.empty());  // the system bundle
  CHECK(find_target(tls, "t").proxy.url == "https://q.example:443");
  CHECK(find_target(tls, "t").proxy.ca_file == ca);
  CHECK(config::describe(tls).find("proxy_ca_file=" + ca) != std::string::npos);
  error = load_error(dir.write("missingca.yml", "global:\n  proxy: {url: 'https://p:1', ca_file: " +
                                                    (dir.path() / "absent.pem").string() + "}\n" +
                                                    creds));
  CHECK_MESSAGE(error.find("missingca.yml:2") != std::string::npos, error);
  CHECK(error.find("proxy ca_file") != std::string::npos);
  CHECK(error.find("is not readable") != std::string::npos);
  error = load_error(dir.write(
      "httpca.yml", "global:\n  proxy: {url: 'http://p:1', ca_file: " + ca + "}\n" + creds));
  CHECK_MESSAGE(error.find("httpca.yml:2") != std::string::npos, error);
  CHECK(error.find("proxy ca_file needs an https:// proxy url") != std::string::npos);
  error = load_error(
      dir.write("half.yml", "global:\n  proxy: {url: 'http://p:1', username: x}\n" + creds));
  CHECK(error.find("needs both username and password_file") != std::string::npos);
}

}  // namespace test_cert_proxy
