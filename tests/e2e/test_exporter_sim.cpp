// End to end: winrm_exporter against winrm-sim (12 virtual hosts, one failing).
#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "e2e_util.h"
#include "promtool.h"
#include "shard.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_exporter_sim {

using namespace e2e;

namespace {

std::string random_marker() {
  std::random_device rd;
  std::string out = "PwMarker";
  for (int i = 0; i < 12; ++i) out += "0123456789abcdef"[rd() % 16];
  return out;
}

std::string sim_body(const std::string& password, const std::string& hosts_yaml) {
  return "keep_alive_timeout: 30s\npage_size: 50\nusers:\n  - {username: monitor, password: \"" +
         password + "\"}\nhosts:\n" + hosts_yaml;
}

std::string exporter_yaml(const TempDir& dir, int sim_port, const std::vector<std::string>& hosts,
                          const std::string& interval = "2s") {
  std::string yaml = "global:\n  interval: " + interval +
                     "\n  timeout: 1500ms\n  scheme: https\n  port: " + std::to_string(sim_port) +
                     "\n  tls_ca_file: " + (dir / "ca.pem").string() +
                     "\n  credential: sim\ncredentials:\n  sim:\n    auth: basic\n"
                     "    username: monitor\n    password_file: " +
                     (dir / "monitor.pass").string() + "\ntargets:\n";
  for (const auto& host : hosts) {
    yaml += "  - {name: " + host + ", connect_address: 127.0.0.1, labels: {site: lab}}\n";
  }
  return yaml;
}

std::vector<std::string> numbered_hosts(int n) {
  std::vector<std::string> hosts;
  for (int i = 1; i <= n; ++i) {
    hosts.push_back((i < 10 ? "host0" : "host") + std::to_string(i) + ".sim.test");
  }
  return hosts;
}

bool all_collectors_ok(const std::string& metrics, const std::vector<std::string>& hosts,
                       const std::vector<std::string>& collectors) {
  for (const auto& host : hosts) {
    for (const auto& collector : collectors) {
      auto value = sample_value(metrics, "winrm_exporter_collector_success{target=\"" + host +
                                             "\",collector=\"" + collector + "\"}");
      if (!value || *value != 1) return false;
    }
  }
  return true;
}

const std::vector<std::string> kCheckedCollectors = {"cpu", "os", "logical_disk", "memory"};

}  // namespace

TEST_CASE("exporter against winrm-sim: /metrics, /probe, gzip, promtool, endpoints") {
  TempDir dir;
  std::string password = random_marker();
  write_file(dir / "monitor.pass", password + "\n");
  auto hosts = numbered_hosts(11);
  std::string hosts_yaml = "  - {name: broken01.sim.test, fault: access_denied}\n";
  Sim sim(dir, sim_body(password, hosts_yaml));
  auto all_hosts = hosts;
  all_hosts.push_back("broken01.sim.test");
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, all_hosts));
  Exporter exporter(dir, dir / "exporter.yml", {"--scheduler.nice=5"});

  auto [polled, metrics] = exporter.metrics_when(
      [&](const std::string& body) {
        return all_collectors_ok(body, hosts, kCheckedCollectors) &&
               body.find("collector_errors_total{target=\"broken01.sim.test\"") !=
                   std::string::npos;
      },
      30s);
  REQUIRE_MESSAGE(polled, metrics.substr(0, 20000));

  {  // /metrics: merged families with target labels, failing host reported
    CHECK(count_of(metrics, "# TYPE windows_cpu_time_total counter") == 1);
    CHECK(count_of(metrics, "# HELP windows_cpu_time_total ") == 1);
    for (const auto& host : hosts) {
      CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"" + host + "\"}") == 1.0);
      CHECK(metrics.find("windows_cpu_time_total{target=\"" + host + "\",site=\"lab\",core=") !=
            std::string::npos);
      CHECK(metrics.find("windows_logical_disk_free_bytes{target=\"" + host + "\"") !=
            std::string::npos);
    }
    CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"broken01.sim.test\"}") == 0.0);
    CHECK(sample_value(metrics,
                       "winrm_exporter_collector_success{target=\"broken01.sim.test\","
                       "collector=\"cpu\"}") == 0.0);
    auto errors = sample_value(metrics,
                               "winrm_exporter_collector_errors_total{target=\"broken01.sim.test\","
                               "collector=\"cpu\",kind=\"access_denied\"}");
    REQUIRE(errors);
    CHECK(*errors >= 1);
    CHECK(metrics.find("windows_cpu_time_total{target=\"broken01.sim.test\"") == std::string::npos);
    CHECK(sample_value(metrics, "winrm_exporter_config_last_reload_successful") == 1.0);
    CHECK(metrics.find("winrm_exporter_build_info{") != std::string::npos);
    CHECK(metrics.find("winrm_exporter_scheduler_lag_seconds_count") != std::string::npos);
    auto requests = sample_value(metrics, "winrm_exporter_winrm_requests_total");
    auto connections = sample_value(metrics, "winrm_exporter_winrm_connections_opened_total");
    REQUIRE(requests);
    REQUIRE(connections);
    // Sessions are kept alive: at most one connection per target and parallel slot.
    CHECK(*connections <= 12 * 2 * 2);
    CHECK(*requests > *connections);
    // Each reachable host's first connection counts as `first`; nothing is left unexplained.
    auto first =
        sample_value(metrics, "winrm_exporter_winrm_connections_by_cause_total{cause=\"first\"}");
    REQUIRE(first);
    CHECK(*first >= 11);
    CHECK(*first <= *connections);
    CHECK(sample_value(metrics,
                       "winrm_exporter_winrm_connections_by_cause_total{cause=\"other\"}") == 0.0);
  }

  {  // refresh: the static queries of the 11 reachable hosts are kept and reused
    auto [reused, body] = exporter.metrics_when(
        [&](const std::string& text) {
          return sample_value(text, "winrm_exporter_query_cache_entries") == 11.0 * 6 &&
                 sample_value(text, "winrm_exporter_queries_reused_total{collector=\"cpu\"}")
                         .value_or(0) >= 11;
        },
        30s);
    REQUIRE_MESSAGE(reused, body.substr(0, 20000));
    // cpu, memory, os, system, logical_disk and net keep one query each per host.
    for (const std::string collector : {"memory", "os", "system", "logical_disk", "net"}) {
      CAPTURE(collector);
      CHECK(sample_value(body,
                         "winrm_exporter_queries_sent_total{collector=\"" + collector + "\"}") > 0);
    }
    CHECK(sample_value(body, "winrm_exporter_queries_reused_total{collector=\"service\"}") == 0.0);
    const auto bytes = sample_value(body, "winrm_exporter_query_cache_bytes");
    REQUIRE(bytes);
    MESSAGE("query cache: " << *bytes / 11 << " bytes per host (6 queries)");
    CHECK(*bytes / 11 < 4096);  // a compact copy, not the response pages (a few KiB)
    // Reused rows give the same series as read ones.
    for (const auto& host : hosts) {
      CHECK(sample_value(body,
                         "windows_cpu_logical_processor{target=\"" + host + "\",site=\"lab\"}") ==
            sample_value(metrics,
                         "windows_cpu_logical_processor{target=\"" + host + "\",site=\"lab\"}"));
      CHECK(body.find("windows_os_hostname{target=\"" + host + "\"") != std::string::npos);
    }
    metrics = body;
  }

  {  // --scheduler.nice=5: polling threads below the web threads
    std::map<std::string, std::set<int>> nice;  // thread name -> nice values
    const fs::path tasks = "/proc/" + std::to_string(exporter.process->pid()) + "/task";
    for (const auto& task : fs::directory_iterator(tasks)) {
      std::string stat = read_file(task.path() / "stat");
      auto open = stat.find('('), close = stat.rfind(')');
      if (open == std::string::npos || close == std::string::npos) continue;
      std::istringstream rest(stat.substr(close + 2));
      std::string field;
      // From the state on, the 17th field is nice (proc(5): fields 3..19).
      for (int i = 0; i < 17; ++i) rest >> field;
      nice[stat.substr(open + 1, close - open - 1)].insert(std::stoi(field));
    }
    REQUIRE(nice.count("web-loop") == 1);
    REQUIRE(nice.count("poll-worker") == 1);
    REQUIRE(nice.count("winrm-io") == 1);
    const int web = *nice["web-loop"].begin();
    CHECK(nice["web-loop"].size() == 1);
    CHECK(nice["web-worker"] == nice["web-loop"]);
    CHECK(nice["poll-worker"] == std::set<int>{std::min(19, web + 5)});
    CHECK(nice["winrm-io"] == std::set<int>{std::min(19, web + 5)});
  }

  {  // promtool accepts a live scrape
    auto check = promtool_check_metrics(metrics);
    CHECK_MESSAGE(check.status == 0, check.output);
  }

  {  // /probe: one target, no target label
    auto probe = get(exporter.port, "/probe?target=host01.sim.test");
    REQUIRE(probe.status == 200);
    CHECK(probe.header("Content-Type").find("text/plain; version=0.0.4") == 0);
    CHECK(probe.body.find("target=") == std::string::npos);
    CHECK(probe.body.find("host02") == std::string::npos);
    CHECK(sample_value(probe.body, "winrm_exporter_target_up") == 1.0);
    CHECK(sample_value(probe.body, "winrm_exporter_collector_success{collector=\"cpu\"}") == 1.0);
    CHECK(probe.body.find("windows_cpu_time_total{site=\"lab\",core=") != std::string::npos);
    auto check = promtool_check_metrics(probe.body);
    CHECK_MESSAGE(check.status == 0, check.output);
    // The probe is timed by the web server (its own /metrics series).
    auto timed = exporter.metrics_when(
        [](const std::string& text) {
          return sample_value(
                     text, "winrm_exporter_http_request_duration_seconds_count{handler=\"/probe\"}")
                     .value_or(0) >= 1;
        },
        10s);
    CHECK_MESSAGE(timed.ok, timed.body.substr(0, 2000));
    CHECK(sample_value(timed.body,
                       "winrm_exporter_http_request_duration_seconds_count{handler=\"/metrics\"}")
              .value_or(0) >= 1);

    auto broken = get(exporter.port, "/probe?target=broken01.sim.test");
    CHECK(broken.status == 200);
    CHECK(sample_value(broken.body, "winrm_exporter_target_up") == 0.0);
    CHECK(get(exporter.port, "/probe?target=nope.sim.test").status == 404);
    CHECK(get(exporter.port, "/probe").status == 400);
  }

  {  // /sd: Prometheus http_sd, every target in one group (same labels), names sorted
    auto sd = get(exporter.port, "/sd");
    REQUIRE(sd.status == 200);
    CHECK(sd.header("Content-Type") == "application/json");
    std::string names = "\"broken01.sim.test\"";
    for (const auto& host : hosts) names += ",\"" + host + "\"";
    CHECK(sd.body == "[\n{\"targets\":[" + names + "],\"labels\":{\"site\":\"lab\"}}\n]\n");
    CHECK(sample_value(metrics, "winrm_exporter_shard_info{shard=\"0\",total_shards=\"1\"}") ==
          1.0);
    CHECK(sample_value(metrics, "winrm_exporter_targets_owned") == 12.0);
    CHECK(sample_value(metrics, "winrm_exporter_targets_configured") == 12.0);
  }

  {  // gzip when asked, identity otherwise
    auto zipped = http("GET", exporter.port, "/metrics", {{"Accept-Encoding", "gzip"}}, false);
    REQUIRE(zipped.status == 200);
    CHECK(zipped.header("Content-Encoding") == "gzip");
    std::string plain = gunzip(zipped.body);
    CHECK(plain.rfind("# HELP ", 0) == 0);
    CHECK(plain.find("windows_cpu_time_total{target=\"host01.sim.test\"") != std::string::npos);
    CHECK(zipped.body.size() < plain.size());
    auto identity =
        http("GET", exporter.port, "/metrics", {{"Accept-Encoding", "identity"}}, false);
    CHECK(identity.header("Content-Encoding").empty());
    CHECK(identity.body.rfind("# HELP ", 0) == 0);
  }

  {  // other endpoints and rejected requests
    CHECK(get(exporter.port, "/-/healthy").status == 200);
    CHECK(get(exporter.port, "/-/ready").status == 200);
    auto landing = get(exporter.port, "/");
    CHECK(landing.status == 200);
    CHECK(landing.body.find("href=\"metrics\"") != std::string::npos);
    CHECK(landing.body.find("href=\"sd\"") != std::string::npos);
    CHECK(landing.body.find("probe") != std::string::npos);
    CHECK(get(exporter.port, "/nothing").status == 404);
    CHECK(http("POST", exporter.port, "/metrics").status == 405);
    CHECK(http("GET", exporter.port, "/-/reload").status == 405);
    // Without --web.enable-lifecycle, as in Prometheus.
    CHECK(http("POST", exporter.port, "/-/reload").status == 403);
    httplib::Client client("127.0.0.1", exporter.port);
    auto with_body = client.Post("/-/reload", "x=1", "text/plain");
    REQUIRE(with_body);
    CHECK(with_body->status == 413);
  }
  CHECK(exporter.process->stop() == 0);  // graceful shutdown on SIGTERM
}

TEST_CASE("reload: SIGHUP with a broken config keeps serving; a good one swaps targets") {
  TempDir dir;
  std::string password = random_marker();
  write_file(dir / "monitor.pass", password + "\n");
  Sim sim(dir, sim_body(password, "  - {name: host01.sim.test}\n"));
  auto hosts = numbered_hosts(3);
  std::string good = exporter_yaml(dir, sim.https_port, hosts);
  write_file(dir / "exporter.yml", good);
  Exporter exporter(dir, dir / "exporter.yml", {"--web.enable-lifecycle"});
  REQUIRE(wait_until([&] { return all_collectors_ok(exporter.metrics(), hosts, {"cpu"}); }, 20s));

  write_file(dir / "exporter.yml", good + "bogus_top_level_key: 1\n");
  exporter.process->signal(SIGHUP);
  auto [bad_reload_seen, metrics] = exporter.metrics_when(
      [](const std::string& body) {
        return sample_value(body, "winrm_exporter_config_last_reload_successful") == 0.0;
      },
      10s);
  REQUIRE(bad_reload_seen);
  // Still serving the running configuration.
  for (const auto& host : hosts) {
    CHECK(metrics.find("windows_cpu_time_total{target=\"" + host + "\"") != std::string::npos);
  }
  CHECK(exporter.process->running());
  std::string log = read_file(exporter.stderr_path);
  CHECK(log.find("reload failed") != std::string::npos);
  CHECK(log.find((dir / "exporter.yml").string() + ":") != std::string::npos);  // FILE:LINE

  // The HTTP reload reports a broken file with 500 too.
  CHECK(http("POST", exporter.port, "/-/reload").status == 500);

  // A good config with one target fewer: reload succeeds and host03 disappears.
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, {hosts[0], hosts[1]}));
  auto reloaded = http("POST", exporter.port, "/-/reload");
  CHECK(reloaded.status == 200);
  metrics = exporter.metrics();
  CHECK(sample_value(metrics, "winrm_exporter_config_last_reload_successful") == 1.0);
  CHECK(metrics.find("host03.sim.test") == std::string::npos);
  CHECK(metrics.find("windows_cpu_time_total{target=\"host01.sim.test\"") != std::string::npos);
  CHECK(get(exporter.port, "/probe?target=host03.sim.test").status == 404);

  // Kept rows of static queries (refresh:): 6 per host; a target that left drops its own, a
  // reload with query_refresh: false drops all, an unreachable host drops its own.
  const auto cache_entries = [&] {
    return sample_value(exporter.metrics(), "winrm_exporter_query_cache_entries").value_or(-1);
  };
  CHECK(wait_until([&] { return cache_entries() == 12; }, 20s));
  std::string two_hosts = exporter_yaml(dir, sim.https_port, {hosts[0], hosts[1]});
  const std::string interval_line = "  interval: 2s\n";
  REQUIRE(two_hosts.find(interval_line) != std::string::npos);
  std::string no_refresh = two_hosts;
  no_refresh.replace(no_refresh.find(interval_line), interval_line.size(),
                     interval_line + "  query_refresh: false\n");
  write_file(dir / "exporter.yml", no_refresh);
  REQUIRE(http("POST", exporter.port, "/-/reload").status == 200);
  CHECK(wait_until([&] { return cache_entries() == 0; }, 10s));
  const auto reused = [&] {
    return sample_value(exporter.metrics(),
                        "winrm_exporter_queries_reused_total{collector=\"cpu\"}")
        .value_or(-1);
  };
  const double reused_before = reused();
  const double sent_before =
      sample_value(exporter.metrics(), "winrm_exporter_queries_sent_total{collector=\"cpu\"}")
          .value_or(-1);
  CHECK(wait_until(
      [&] {
        return sample_value(exporter.metrics(),
                            "winrm_exporter_queries_sent_total{collector=\"cpu\"}")
                   .value_or(-1) >= sent_before + 2 * 2 * 2;  // 2 polls of 2 hosts, 2 queries
      },
      20s));
  CHECK(reused() == reused_before);
  CHECK(cache_entries() == 0);
  write_file(dir / "exporter.yml", two_hosts);
  REQUIRE(http("POST", exporter.port, "/-/reload").status == 200);
  CHECK(wait_until([&] { return cache_entries() == 12 && reused() > reused_before; }, 20s));
  sim.process->stop();  // every poll now fails to connect
  CHECK(wait_until([&] { return cache_entries() == 0; }, 20s));
  CHECK(exporter.process->stop() == 0);
}

TEST_CASE("two shards (0 of 2, 1 of 2) poll and serve every target exactly once") {
  TempDir dir;
  TempDir dir_other;  // logs of the second exporter
  std::string password = random_marker();
  write_file(dir / "monitor.pass", password + "\n");
  Sim sim(dir, sim_body(password, "  - {name: host01.sim.test}\n"));
  auto hosts = numbered_hosts(12);
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, hosts));
  Exporter shard0(dir, dir / "exporter.yml", {"--shard=0", "--total-shards=2"});
  Exporter shard1(dir_other, dir / "exporter.yml", {"--total-shards=2", "--shard=1"});
  const Exporter* exporters[2] = {&shard0, &shard1};

  std::vector<std::string> owned[2];
  for (const auto& host : hosts) owned[exporter::Shard{0, 2}.owner_of(host)].push_back(host);
  REQUIRE(owned[0].size() + owned[1].size() == hosts.size());
  REQUIRE_FALSE(owned[0].empty());  // both shards have work with these names
  REQUIRE_FALSE(owned[1].empty());

  std::string metrics[2];
  REQUIRE(wait_until(
      [&] {
        for (int i = 0; i < 2; ++i) metrics[i] = exporters[i]->metrics();
        return all_collectors_ok(metrics[0], owned[0], {"cpu"}) &&
               all_collectors_ok(metrics[1], owned[1], {"cpu"});
      },
      30s));
  for (int i = 0; i < 2; ++i) {
    CAPTURE(i);
    const Exporter& self = *exporters[i];
    const auto& mine = owned[i];
    const auto& theirs = owned[1 - i];
    CHECK(sample_value(metrics[i], "winrm_exporter_shard_info{shard=\"" + std::to_string(i) +
                                       "\",total_shards=\"2\"}") == 1.0);
    CHECK(sample_value(metrics[i], "winrm_exporter_targets_owned") ==
          static_cast<double>(mine.size()));
    CHECK(sample_value(metrics[i], "winrm_exporter_targets_configured") == 12.0);
    std::string sd = get(self.port, "/sd").body;
    for (const auto& host : mine) {
      CHECK(sd.find("\"" + host + "\"") != std::string::npos);
      CHECK(get(self.port, "/probe?target=" + host).status == 200);
    }
    for (const auto& host : theirs) {
      // Not polled, not exported, not discovered; /probe names the owner.
      CHECK(metrics[i].find("\"" + host + "\"") == std::string::npos);
      CHECK(sd.find("\"" + host + "\"") == std::string::npos);
      auto probe = get(self.port, "/probe?target=" + host);
      CHECK(probe.status == 404);
      CHECK(probe.body.find("belongs to shard " + std::to_string(1 - i) + " of 2") !=
            std::string::npos);
    }
    CHECK(get(self.port, "/probe?target=nope.sim.test").body.find("unknown target") !=
          std::string::npos);
  }
  CHECK(shard0.process->stop() == 0);
  CHECK(shard1.process->stop() == 0);
}

TEST_CASE("the password never appears in logs, /metrics, /probe or query output") {
  TempDir dir;
  std::string password = random_marker();
  write_file(dir / "monitor.pass", password + "\n");
  Sim sim(dir, sim_body(password,
                        "  - {name: denied01.sim.test, always_401: true}\n"
                        "  - {name: broken01.sim.test, fault: access_denied}\n"));
  std::vector<std::string> hosts = {"host01.sim.test", "denied01.sim.test", "broken01.sim.test"};
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, hosts));
  std::string metrics;
  std::string probes;
  {
    Exporter exporter(dir, dir / "exporter.yml", {"--log.level=debug"});
    auto scrape = exporter.metrics_when(
        [](const std::string& body) {
          return all_collectors_ok(body, {"host01.sim.test"}, {"cpu"}) &&
                 body.find("target=\"denied01.sim.test\",collector=\"cpu\",kind=") !=
                     std::string::npos;
        },
        20s);
    REQUIRE(scrape.ok);
    metrics = scrape.body;
    for (const auto& host : hosts) probes += get(exporter.port, "/probe?target=" + host).body;
    exporter.process->signal(SIGHUP);  // a reload re-reads the password file
    std::this_thread::sleep_for(500ms);
    CHECK(exporter.process->stop() == 0);
  }
  Process query(
      {kExporterBinary, "query", "--config.file=" + (dir / "exporter.yml").string(),
       "--target=denied01.sim.test", "--log.level=debug", "SELECT Name FROM Win32_Service"},
      dir / "query.out", dir / "query.err");
  REQUIRE(wait_until([&] { return !query.running(); }, 20s));
  CHECK(query.stop() == 1);
  std::string query_err = read_file(dir / "query.err");
  CHECK(query_err.find("kind=auth") != std::string::npos);

  std::string log = read_file(dir / "exporter.err");
  CHECK(log.find("denied01.sim.test") != std::string::npos);  // the failure was logged
  // base64("monitor:" + password): the Authorization header value.
  std::string credentials = "monitor:" + password;
  std::string encoded(4 * ((credentials.size() + 2) / 3) + 1, '\0');
  encoded.resize(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                                 reinterpret_cast<const unsigned char*>(credentials.data()),
                                 static_cast<int>(credentials.size())));
  for (const std::string* text : {&log, &metrics, &probes, &query_err}) {
    CHECK(text->find(password) == std::string::npos);
    CHECK(text->find(encoded) == std::string::npos);
  }
}

TEST_CASE("--config.check validates, prints the summary with secrets masked, exits 0 or 1") {
  TempDir dir;
  const std::string password = "check-summary-pw-5c1e";
  write_file(dir / "monitor.pass", password + "\n");
  write_file(dir / "good.yml", exporter_yaml(dir, 5986, {"host01.sim.test"}));
  write_file(dir / "bad.yml", exporter_yaml(dir, 5986, {"host01.sim.test"}) + "nonsense: [\n");
  {
    Process check(
        {kExporterBinary, "--config.file=" + (dir / "good.yml").string(), "--config.check"},
        dir / "good.out", dir / "good.err");
    REQUIRE(wait_until([&] { return !check.running(); }, 10s));
    CHECK(check.stop() == 0);
    const std::string out = read_file(dir / "good.out");
    CHECK(out.find("targets: 1") != std::string::npos);
    // config::describe's summary: the profile with its password masked, and the target.
    CHECK_MESSAGE(
        out.find("sim: auth=basic username=monitor password=<secret>") != std::string::npos, out);
    CHECK_MESSAGE(out.find("host01.sim.test: https://host01.sim.test:5986 connect=127.0.0.1") !=
                      std::string::npos,
                  out);
    CHECK(out.find(password) == std::string::npos);
  }
  Process check({kExporterBinary, "--config.file=" + (dir / "bad.yml").string(), "--config.check"},
                dir / "bad.out", dir / "bad.err");
  REQUIRE(wait_until([&] { return !check.running(); }, 10s));
  CHECK(check.stop() == 1);
  CHECK(read_file(dir / "bad.err").find((dir / "bad.yml").string() + ":") != std::string::npos);
}

}  // namespace test_exporter_sim
