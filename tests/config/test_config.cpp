// Loading, merging and validation of the YAML config, with exact error locations.
#include <doctest/doctest.h>

#include <cstdlib>

#include "collectors/registry.h"
#include "config/config.h"
#include "temp_dir.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_config {

using namespace std::chrono_literals;

namespace {

// A custom collector definition in the collectors schema, indented for custom_collectors.
const char* kPagefileCollector = R"(  - name: custom_pagefile
    help: Page file usage
    queries:
      - wql: SELECT Name, AllocatedBaseSize FROM Win32_PageFileUsage
        metrics:
          - name: windows_custom_pagefile_allocated_bytes
            type: gauge
            help: Allocated page file size
            value: AllocatedBaseSize
            scale: 1048576
            labels: {file: Name}
)";

const config::Target& find_target(const config::Config& c, const std::string& name) {
  for (const auto& t : c.targets) {
    if (t.name == name) return t;
  }
  FAIL("no target " << name);
  throw std::logic_error("unreachable");
}

std::vector<std::string> with(std::vector<std::string> names, const std::string& extra) {
  names.push_back(extra);
  return names;
}

std::vector<std::string> without(std::vector<std::string> names, const std::string& gone) {
  std::erase(names, gone);
  return names;
}

}  // namespace

TEST_CASE("a full config loads with the expected values") {
  TempDir dir;
  dir.write("monitor.pass", "s3cret-basic\n");
  ::setenv("WINRM_CONFIG_TEST_NTLM", "ntlm-pass", 1);
  const std::string path = dir.write("exporter.yml", std::string(R"(global:
  interval: 1m
  timeout: 45s
  concurrency: 128
  per_target_concurrency: 3
  stale_after_intervals: 5
  scheme: https
  tls_insecure_skip_verify: true
  max_response_bytes: 8MiB
  labels: {env: prod}
credentials:
  local_monitor:
    auth: basic
    username: monitor
    password_file: monitor.pass
  domain:
    auth: kerberos
    username: svc-monitor@EXAMPLE.COM
    keytab: /nonexistent/svc.keytab
    realm: EXAMPLE.COM
    spn_service: wsman
  workgroup:
    auth: ntlm
    username: WORKGROUP\monitor
    password_env: WINRM_CONFIG_TEST_NTLM
  cached:
    auth: kerberos
    ccache: FILE:/tmp/krb5cc_test
targets:
  - name: web01
    host: web01.example.com
    connect_address: 10.0.0.5
    port: 15986
    credential: domain
    labels: {site: dc1, role: web, env: staging}
    collectors: [+custom_pagefile, -service]
    interval: 2m
    timeout: 30s
    spn_host: web01.internal.example.com
    spn_service: HTTP
  - host: db01.example.com
    scheme: http
    credential: workgroup
    collectors: [os, cpu]
  - name: legacy
    host: 192.0.2.7
    credential: local_monitor
    tls_ca_file: ca.pem
custom_collectors:
)") + kPagefileCollector);
  const config::Config c = config::load(path);
  const auto defaults = collectors::default_collector_names();
  REQUIRE_FALSE(defaults.empty());

  CHECK(c.path == path);
  CHECK(c.defaults.interval == 60s);
  CHECK(c.defaults.timeout == 45s);
  CHECK(c.defaults.concurrency == 128);
  CHECK(c.defaults.per_target_concurrency == 3);
  CHECK(c.defaults.stale_after_intervals == 5);
  CHECK(c.defaults.scheme == config::Scheme::kHttps);
  CHECK(c.defaults.port == 5986);
  CHECK(c.defaults.tls_insecure_skip_verify);
  CHECK(c.defaults.limits.max_response_bytes == 8u << 20);
  CHECK(c.defaults.collectors == defaults);

  REQUIRE(c.credentials.size() == 4);
  const auto& basic = c.credentials.at("local_monitor");
  CHECK(basic.method == config::AuthMethod::kBasic);
  CHECK(basic.username == "monitor");
  CHECK(basic.password.reveal() == "s3cret-basic");  // trailing newline stripped
  CHECK(basic.password_file == dir.str() + "/monitor.pass");
  const auto& domain = c.credentials.at("domain");
  CHECK(domain.method == config::AuthMethod::kKerberos);
  CHECK(domain.keytab == "/nonexistent/svc.keytab");
  CHECK(domain.realm == "EXAMPLE.COM");
  CHECK(domain.spn_service == "WSMAN");
  CHECK(domain.password.empty());
  const auto& ntlm = c.credentials.at("workgroup");
  CHECK(ntlm.method == config::AuthMethod::kNtlm);
  CHECK(ntlm.username == "WORKGROUP\\monitor");
  CHECK(ntlm.password.reveal() == "ntlm-pass");
  CHECK(ntlm.password_env == "WINRM_CONFIG_TEST_NTLM");
  CHECK(c.credentials.at("cached").ccache == "FILE:/tmp/krb5cc_test");
  CHECK(c.credentials.at("cached").username.empty());

  CHECK(c.collectors.contains("custom_pagefile"));
  for (const auto& name : defaults) CHECK(c.collectors.contains(name));

  REQUIRE(c.targets.size() == 3);
  const auto& web = c.targets[0];
  CHECK(web.name == "web01");
  CHECK(web.host == "web01.example.com");
  CHECK(web.connect_address == "10.0.0.5");
  CHECK(web.port == 15986);
  CHECK(web.scheme == config::Scheme::kHttps);
  CHECK(web.credential == "domain");
  CHECK(web.labels ==
        std::map<std::string, std::string>{{"env", "staging"}, {"role", "web"}, {"site", "dc1"}});
  CHECK(web.collectors == with(without(defaults, "service"), "custom_pagefile"));
  CHECK(web.interval == 120s);
  CHECK(web.timeout == 30s);
  CHECK(web.spn_host == "web01.internal.example.com");
  CHECK(web.spn_service == "HTTP");
  CHECK(web.tls_insecure_skip_verify);
  CHECK(web.source == path + ":30");

  const auto& db = find_target(c, "db01.example.com");  // name defaults to host
  CHECK(db.host == "db01.example.com");
  CHECK(db.scheme == config::Scheme::kHttp);
  CHECK(db.port == 5985);  // the scheme's default port
  CHECK(db.collectors == std::vector<std::string>{"os", "cpu"});
  CHECK(db.interval == 60s);
  CHECK(db.timeout == 45s);
  CHECK(db.labels == std::map<std::string, std::string>{{"env", "prod"}});

  const auto& legacy = find_target(c, "legacy");
  CHECK(legacy.port == 5986);
  CHECK(legacy.tls_ca_file == dir.str() + "/ca.pem");
  CHECK(legacy.spn_service.empty());
}

TEST_CASE("global collectors and credential apply to targets") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string path = dir.write("c.yml", R"(global:
  collectors: [-service, -net]
  credential: mon
  port: 6000
  scheme: http
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
targets:
  - name: a
  - name: b
    collectors: [+service]
  - name: c
    collectors: [cpu]
)");
  const config::Config c = config::load(path);
  auto expected = without(without(collectors::default_collector_names(), "service"), "net");
  CHECK(c.defaults.collectors == expected);
  CHECK(c.defaults.port == 6000);
  REQUIRE(c.targets.size() == 3);
  CHECK(c.targets[0].collectors == expected);
  CHECK(c.targets[0].credential == "mon");
  CHECK(c.targets[0].host == "a");
  CHECK(c.targets[0].port == 6000);  // an explicit global port beats the scheme default
  CHECK(c.targets[1].collectors == with(expected, "service"));
  CHECK(c.targets[2].collectors == std::vector<std::string>{"cpu"});
}

TEST_CASE("inventory globs merge sorted files with their defaults") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  dir.write("inventory/b.yml", R"(defaults:
  credential: other
  labels: {site: dc2}
  collectors: [-service]
  interval: 10s
  timeout: 5s
targets:
  - name: b1
  - name: b2
    labels: {site: dc3, rack: r1}
    collectors: [+service]
)");
  dir.write("inventory/a.yml", R"(targets:
  - name: a1
    host: a1.example.com
)");
  dir.write("inventory/notes.txt", "not yaml: [");
  const std::string path = dir.write("exporter.yml", R"(global:
  credential: mon
  labels: {team: ops}
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
  other: {auth: ntlm, username: v, password_env: WINRM_CONFIG_TEST_PW}
targets:
  - name: main1
inventory_files:
  - inventory/*.yml
  - empty/*.yml
  - inventory/a.yml
)");
  const config::Config c = config::load(path);
  REQUIRE(c.targets.size() == 4);
  CHECK(c.targets[0].name == "main1");
  CHECK(c.targets[1].name == "a1");  // a.yml sorts before b.yml; a.yml listed again loads once
  CHECK(c.targets[1].credential == "mon");
  CHECK(c.targets[1].source == dir.str() + "/inventory/a.yml:2");
  CHECK(c.targets[2].name == "b1");
  CHECK(c.targets[2].credential == "other");
  CHECK(c.targets[2].interval == 10s);
  CHECK(c.targets[2].timeout == 5s);
  CHECK(c.targets[2].labels ==
        std::map<std::string, std::string>{{"site", "dc2"}, {"team", "ops"}});
  CHECK(c.targets[2].collectors == without(collectors::default_collector_names(), "service"));
  CHECK(c.targets[3].labels ==
        std::map<std::string, std::string>{{"rack", "r1"}, {"site", "dc3"}, {"team", "ops"}});
  // Defaults' -service then the target's +service: appended at the end.
  CHECK(c.targets[3].collectors ==
        with(without(collectors::default_collector_names(), "service"), "service"));
}

TEST_CASE("a duplicate target across inventory files names both places") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string a = dir.write("inv/a.yml", "targets:\n  - name: x1\n  - name: dup\n");
  const std::string b = dir.write("inv/b.yml", "targets:\n  - name: y1\n\n  - name: dup\n");
  const std::string path = dir.write("exporter.yml", R"(global: {credential: mon}
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
inventory_files: [inv/*.yml]
)");
  CHECK(load_error(path) ==
        b + ":4: targets[1].name: duplicate target name 'dup' (first defined at " + a + ":3)");
}

TEST_CASE("a duplicate target in the main file") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string path = dir.write("exporter.yml", R"(global: {credential: mon}
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
targets:
  - name: web01
  - host: web02
  - host: web01
)");
  CHECK(load_error(path) ==
        path + ":7: targets[2].host: duplicate target name 'web01' (first defined at " + path +
            ":5)");
}

TEST_CASE("a bad inventory file is an error naming it") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string bad = dir.write("inv/bad.yml", "targets:\n  - name: a\n    colour: red\n");
  const std::string path = dir.write("exporter.yml", R"(global: {credential: mon}
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
inventory_files: inv/*.yml
)");
  CHECK(load_error(path) == bad + ":3: targets[0].colour: unknown key");

  const std::string broken = dir.write("inv/bad.yml", "targets:\n  - name: [a\n");
  CHECK(load_error(path).starts_with(broken + ":3: yaml: "));

  dir.write("inv/bad.yml", "targets: []\n");
  const std::string missing = dir.write("missing.yml", R"(global: {credential: mon}
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
inventory_files: [inv/*.yml, inv/none.yml]
)");
  CHECK(load_error(missing) == missing + ":4: inventory_files[1]: inventory file '" + dir.str() +
                                   "/inv/none.yml' does not exist");
}

// Each case: config text, expected "LINE: field: problem" suffix after the file name.
TEST_CASE("errors name file, line and field") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  ::unsetenv("WINRM_CONFIG_TEST_UNSET");
  dir.write("empty.pass", "\n");
  const std::string header = R"(credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
)";  // lines 1-2
  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {header + "targets:\n  - name: a\n    credential: mon\n    prot: 5986\n",
       "6: targets[0].prot: unknown key (did you mean 'port'?)"},
      {header + "global:\n  intervall: 30s\n",
       "4: global.intervall: unknown key (did you mean 'interval'?)"},
      {header + "globals: {}\n", "3: globals: unknown key (did you mean 'global'?)"},
      {header + "targets:\n  - name: a\n    credential: mon\n    port: 70000\n",
       "6: targets[0].port: 70000 is out of range 1-65535"},
      {header + "targets:\n  - name: a\n    credential: mon\n    port: 0\n",
       "6: targets[0].port: 0 is out of range 1-65535"},
      {header + "targets:\n  - name: a\n    credential: mon\n    port: https\n",
       "6: targets[0].port: expected an integer, got 'https'"},
      {header + "targets:\n  - name: a\n    credential: mon\n    scheme: ftp\n",
       "6: targets[0].scheme: scheme must be http or https, got 'ftp'"},
      {header + "global:\n  interval: 30s\n  timeout: 30s\n",
       "5: global.timeout: timeout 30s must be less than interval 30s"},
      {header + "global:\n  interval: 10s\n",
       "4: global.interval: timeout 20s must be less than interval 10s"},
      {header + "targets:\n  - name: a\n    credential: mon\n    interval: 15s\n",
       "6: targets[0].interval: timeout 20s must be less than interval 15s"},
      {header + "targets:\n  - name: a\n    credential: mon\n    timeout: 1m\n",
       "6: targets[0].timeout: timeout 1m must be less than interval 30s"},
      {header + "global:\n  interval: 30\n",
       "4: global.interval: invalid duration '30' (use e.g. 500ms, 30s, 5m, 1h, 1m30s)"},
      {header + "global:\n  max_response_bytes: 16MB5\n",
       "4: global.max_response_bytes: invalid size '16MB5' (use e.g. 16MiB, 512KiB, 4096)"},
      {header + "targets:\n  - name: a\n    credential: nope\n",
       "5: targets[0].credential: unknown credential profile 'nope'"},
      {header + "targets:\n  - name: a\n    credential: mom\n",
       "5: targets[0].credential: unknown credential profile 'mom' (did you mean 'mon'?)"},
      {header + "targets:\n  - name: a\n",
       "4: targets[0]: no credential profile: set credential "
       "here (or global.credential)"},
      {header + "targets:\n  - port: 5986\n    credential: mon\n",
       "4: targets[0]: a target needs a name or a host"},
      {header + "global: {credential: nobody}\n",
       "3: global.credential: unknown credential profile 'nobody'"},
      {header + "targets:\n  - name: a\n    credential: mon\n    collectors: [cpu, memroy]\n",
       "6: targets[0].collectors[1]: unknown collector 'memroy' (did you mean 'memory'?)"},
      {header + "targets:\n  - name: a\n    credential: mon\n    collectors:\n      - cpu\n      - "
                "+memory\n",
       "8: targets[0].collectors[1]: mixes plain names with +/- changes: use either a full list "
       "or only +name/-name"},
      {header + "targets:\n  - name: a\n    credential: mon\n    collectors: [-nosuch]\n",
       "6: targets[0].collectors[0]: unknown collector 'nosuch'"},
      {header + "targets:\n  - name: a\n    credential: mon\n    labels: {target: x}\n",
       "6: targets[0].labels.target: the target label is set by the exporter"},
      {header + "targets:\n  - name: a\n    credential: mon\n    labels:\n      bad-name: x\n",
       "7: targets[0].labels.bad-name: invalid label name (use [a-zA-Z_][a-zA-Z0-9_]*)"},
      {header + "targets:\n  - name: a\n    host: https://a.example.com\n    credential: mon\n",
       "5: targets[0].host: host must be a host name, not a URL (use scheme and port)"},
      {header + "targets:\n  - name: a\n    host: a.example.com:5986\n    credential: mon\n",
       "5: targets[0].host: host must not include a port (use port:)"},
      {header + "targets:\n  - name: a\n    credential: mon\n    tls_insecure_skip_verify: maybe\n",
       "6: targets[0].tls_insecure_skip_verify: expected true or false, got 'maybe'"},
      {header + "targets:\n  - name: a\n    credential: mon\n    port: 1\n    port: 2\n",
       "7: targets[0].port: repeated key (first at " + dir.str() + "/c.yml:6)"},
      {header + "targets: {a: 1}\n", "3: targets: expected a list, got a mapping"},
      {header + "targets:\n  - name: a\n    credential: mon\n    spn_service: host\n",
       "6: targets[0].spn_service: must be HTTP or WSMAN, got 'host'"},
      // Credentials.
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password: hunter2\n",
       "5: credentials.p.password: inline passwords are not allowed; use password_file or "
       "password_env"},
      {"credentials:\n  p:\n    auth: digest\n",
       "3: credentials.p.auth: auth must be basic, "
       "kerberos, ntlm or certificate, got 'digest'"},
      {"credentials:\n  p:\n    auth: kerberoz\n",
       "3: credentials.p.auth: auth must be basic, kerberos, ntlm or certificate, got 'kerberoz' "
       "(did you mean 'kerberos'?)"},
      {"credentials:\n  p:\n    username: u\n",
       "3: credentials.p: missing key 'auth' (basic, "
       "kerberos, ntlm or certificate)"},
      {"credentials:\n  p:\n    auth: basic\n    password_env: WINRM_CONFIG_TEST_PW\n",
       "3: credentials.p: missing key 'username'"},
      {"credentials:\n  p:\n    auth: ntlm\n    username: u\n",
       "3: credentials.p: missing password_file or password_env"},
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password_env: "
       "WINRM_CONFIG_TEST_UNSET\n",
       "5: credentials.p.password_env: environment variable WINRM_CONFIG_TEST_UNSET is not set"},
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password_file: nofile.pass\n",
       "5: credentials.p.password_file: cannot read password file '" + dir.str() +
           "/nofile.pass': No such file or directory"},
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password_file: empty.pass\n",
       "5: credentials.p.password_file: password file '" + dir.str() + "/empty.pass' is empty"},
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password_file: empty.pass\n"
       "    password_env: X\n",
       "6: credentials.p.password_env: give either password_file or password_env, not both"},
      {"credentials:\n  p:\n    auth: kerberos\n    realm: EXAMPLE.COM\n",
       "3: credentials.p: kerberos needs one of keytab, password_file/password_env or ccache"},
      {"credentials:\n  p:\n    auth: kerberos\n    keytab: /k.keytab\n",
       "3: credentials.p: missing key 'username' (needed with keytab or password)"},
      {"credentials:\n  p:\n    auth: kerberos\n    username: u\n    keytab: /k.keytab\n    "
       "ccache: "
       "FILE:/x\n",
       "3: credentials.p: give only one of keytab, password_file/password_env or ccache (keytab "
       "is preferred)"},
      {"credentials:\n  p:\n    auth: basic\n    username: u\n    password_env: "
       "WINRM_CONFIG_TEST_PW\n    keytab: /k\n",
       "6: credentials.p.keytab: only valid with auth: kerberos"},
      {"global:\n  concurrency: 0\n", "2: global.concurrency: 0 is out of range 1-100000"},
      {"global:\n  scheme:\n", "2: global.scheme: missing value"},
      {"global:\n  timeout: 10s\n  max_response_bytes: 100\n",
       "3: global.max_response_bytes: must be at least 4096 bytes (or auto)"},
      {"- just\n- a list\n", "1: (top level): expected a mapping, got a list"},
      {"", "1: (top level): the config file is empty"},
      {"targets:\n  - name: a\n    labels: {a: [1]\n", "4: yaml: end of map flow not found"},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    const std::string path = dir.write("c.yml", text);
    CHECK(load_error(path) == path + ":" + expected);
  }
}

TEST_CASE("custom collector errors carry the file and line of the definition") {
  TempDir dir;
  const std::string path = dir.write("c.yml", std::string("global: {}\ncustom_collectors:\n") +
                                                  kPagefileCollector + "  - name: Bad-Name\n");
  const std::string error = load_error(path);
  CHECK(error.starts_with(path + ":14: custom_collectors[1]: "));
  CHECK(error.find("Bad-Name") != std::string::npos);
  // A file-class query that would walk every drive is refused with the line of its wql
  // (definition errors point at the field at fault: common::yaml locations).
  const std::string walk = dir.write(
      "w.yml",
      "custom_collectors:\n  - name: logs\n    queries:\n      - wql: SELECT Name, FileSize "
      "FROM CIM_DataFile WHERE Extension = 'log'\n        max_rows: 100\n        metrics: "
      "[{name: f, type: gauge, help: h, value: FileSize, labels: {file: Name}}]\n");
  const std::string walk_error = load_error(walk);
  CHECK_MESSAGE(walk_error.starts_with(walk + ":4: custom_collectors[0]: "), walk_error);
  CHECK_MESSAGE(walk_error.find("walk every file on every drive") != std::string::npos, walk_error);

  // A bad field inside a definition names its own line (common::yaml locations), not the
  // line where the definition starts.
  std::string deep(kPagefileCollector);
  deep.replace(deep.find("            scale: 1048576"), 26, "            colour: blue");
  const std::string deep_path =
      dir.write("deep.yml", std::string("global: {}\ncustom_collectors:\n") + deep);
  const std::string deep_error = load_error(deep_path);
  CAPTURE(deep_error);
  CHECK(
      deep_error.starts_with(deep_path + ":12: custom_collectors[0]: collector 'custom_pagefile'"));
  CHECK(deep_error.find("unknown field 'colour'") != std::string::npos);

  const std::string dup = dir.write(
      "d.yml", std::string("custom_collectors:\n") + kPagefileCollector + kPagefileCollector);
  CHECK(load_error(dup) == dup +
                               ":13: custom_collectors[1]: collector 'custom_pagefile' is already "
                               "defined at " +
                               dup + ":2");
  const std::string builtin_clash = dir.write(
      "e.yml",
      "custom_collectors:\n  - name: cpu\n    queries:\n      - wql: SELECT "
      "Name FROM Win32_Processor\n        metrics:\n          - name: "
      "my_cpu_info\n            type: gauge\n            help: h\n            info: true\n"
      "            labels: {name: Name}\n");
  CHECK(load_error(builtin_clash) ==
        builtin_clash +
            ":2: custom_collectors[0]: collector 'cpu' is a built-in collector; pick "
            "another name");
}

TEST_CASE("describe summarises the config") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw-value-xyz", 1);
  const std::string path = dir.write("c.yml", R"(credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
targets:
  - {name: a, credential: mon, labels: {site: x}}
)");
  const std::string text = config::describe(config::load(path));
  CHECK(text.find("a: https://a:5986") != std::string::npos);
  CHECK(text.find("password=<secret> (from env WINRM_CONFIG_TEST_PW)") != std::string::npos);
  CHECK(text.find("labels={site=\"x\"}") != std::string::npos);
  CHECK(text.find("pw-value-xyz") == std::string::npos);
}

TEST_CASE("winrm options and limits: built-in defaults, global, inventory defaults, target") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  dir.write("inv/legacy.yml", R"(defaults:
  winrm: {max_envelope_size: 153600, operation_timeout: 15s}
  limits: {max_rows_per_poll: 5000}
targets:
  - name: w2008
  - name: w2008-de
    winrm: {locale: de-DE, max_elements: 500}
    limits: {max_response_bytes: 1MiB}
)");
  const std::string path = dir.write("exporter.yml", R"(global:
  credential: mon
  winrm:
    max_elements: 8000
  limits:
    max_poll_bytes: 32MiB
    max_series_per_collector: 50000
    max_properties_per_instance: 2000
credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
targets:
  - name: plain
inventory_files: inv/*.yml
)");
  const config::Config c = config::load(path);
  // Global: built-in defaults except what global sets.
  CHECK(c.defaults.winrm.max_envelope_size == 512000);
  CHECK(c.defaults.winrm.max_elements == 8000);
  CHECK(c.defaults.winrm.operation_timeout == 20s);
  CHECK(c.defaults.winrm.locale == "en-US");
  CHECK(c.defaults.limits.max_response_bytes == config::PollLimits::kAuto);
  CHECK(c.defaults.limits.max_poll_bytes == 32u << 20);
  CHECK(c.defaults.limits.max_rows_per_poll == 100000);
  CHECK(c.defaults.limits.max_series_per_collector == 50000);

  const auto& plain = find_target(c, "plain");
  CHECK(plain.winrm == c.defaults.winrm);
  CHECK(plain.limits == c.defaults.limits);
  // auto = 2 x MaxEnvelopeSize (UTF-16) + 64 KiB for encryption framing.
  CHECK(config::effective_max_response_bytes(plain.limits, plain.winrm) == 2 * 512000 + 65536);

  const auto& legacy = find_target(c, "w2008");
  CHECK(legacy.winrm.max_envelope_size == 153600);
  CHECK(legacy.winrm.max_elements == 8000);  // from global, field by field
  CHECK(legacy.winrm.operation_timeout == 15s);
  CHECK(legacy.limits.max_rows_per_poll == 5000);
  CHECK(legacy.limits.max_poll_bytes == 32u << 20);
  CHECK(legacy.limits.max_properties_per_instance == 2000);
  CHECK(config::effective_max_response_bytes(legacy.limits, legacy.winrm) == 2 * 153600 + 65536);

  const auto& german = find_target(c, "w2008-de");
  CHECK(german.winrm.locale == "de-DE");
  CHECK(german.winrm.max_elements == 500);
  CHECK(german.winrm.max_envelope_size == 153600);
  CHECK(german.limits.max_response_bytes == 1u << 20);
  CHECK(config::effective_max_response_bytes(german.limits, german.winrm) == 1u << 20);

  const std::string text = config::describe(c);
  CHECK(text.find("winrm: max_envelope_size=512000 max_elements=8000 operation_timeout=20s "
                  "locale=en-US") != std::string::npos);
  CHECK(text.find("max_response_bytes=auto(1089536) max_poll_bytes=33554432") != std::string::npos);
  CHECK(text.find("locale=de-DE") != std::string::npos);
  CHECK(text.find("max_response_bytes=1048576") != std::string::npos);
}

TEST_CASE("global.max_response_bytes stays an alias of global.limits.max_response_bytes") {
  TempDir dir;
  const std::string path = dir.write("c.yml", "global:\n  max_response_bytes: 2MiB\n");
  CHECK(config::load(path).defaults.limits.max_response_bytes == 2u << 20);
  const std::string auto_path = dir.write("a.yml", "global:\n  max_response_bytes: auto\n");
  CHECK(config::load(auto_path).defaults.limits.max_response_bytes == config::PollLimits::kAuto);
  const std::string both = dir.write(
      "b.yml", "global:\n  limits: {max_response_bytes: 1MiB}\n  max_response_bytes: 2MiB\n");
  CHECK(load_error(both) == both +
                                ":3: global.max_response_bytes: also set as "
                                "global.limits.max_response_bytes (at " +
                                both + ":2); keep one");
}

TEST_CASE("winrm and limits errors name file, line and field") {
  TempDir dir;
  ::setenv("WINRM_CONFIG_TEST_PW", "pw", 1);
  const std::string header = R"(credentials:
  mon: {auth: basic, username: u, password_env: WINRM_CONFIG_TEST_PW}
)";                                                                                    // lines 1-2
  const std::string target = header + "targets:\n  - name: a\n    credential: mon\n";  // 1-5
  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {header + "global:\n  winrm:\n    max_envelope_sise: 1000\n",
       "5: global.winrm.max_envelope_sise: unknown key (did you mean 'max_envelope_size'?)"},
      {header + "global:\n  limits:\n    max_row_per_poll: 10\n",
       "5: global.limits.max_row_per_poll: unknown key (did you mean 'max_rows_per_poll'?)"},
      {header + "global:\n  winrm:\n    max_envelope_size: 4096\n",
       "5: global.winrm.max_envelope_size: 4096 is out of range 8192-33554432 bytes (Windows "
       "default 512000, Windows Server 2008 R2: 153600)"},
      {target + "    winrm: {max_elements: 0}\n",
       "6: targets[0].winrm.max_elements: 0 is out of range 1-1000000"},
      {target + "    winrm: {operation_timeout: 500ms}\n",
       "6: targets[0].winrm.operation_timeout: must be at least 1s"},
      {target + "    winrm: {locale: 'en US'}\n",
       "6: targets[0].winrm.locale: invalid locale 'en US' (use e.g. en-US, de-DE)"},
      {target + "    winrm: 512000\n", "6: targets[0].winrm: expected a mapping, got a scalar"},
      {target + "    limits: {max_response_bytes: lots}\n",
       "6: targets[0].limits.max_response_bytes: invalid size 'lots' (use e.g. 16MiB, 512KiB, "
       "4096)"},
      {target + "    limits: {max_poll_bytes: 1MiB}\n",
       "6: targets[0].limits.max_poll_bytes: limits.max_poll_bytes 1048576 is less than one "
       "response (max_response_bytes auto = 2 x max_envelope_size + 64KiB = 1089536)"},
      {target + "    limits: {max_series_per_collector: -1}\n",
       "6: targets[0].limits.max_series_per_collector: -1 is out of range 1-100000000"},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    const std::string path = dir.write("c.yml", text);
    CHECK(load_error(path) == path + ":" + expected);
  }
}

}  // namespace test_config
