// A real Prometheus server scrapes /probe through the README's multi-target relabel
// config (static targets, then http_sd from two sharded exporters); its HTTP API then
// returns a CPU rate and a disk free value for every host.
#include <doctest/doctest.h>

#include "e2e_util.h"
#include "prometheus_server.h"
#include "shard.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_prometheus {

using namespace e2e;

namespace {

// The ```yaml block that follows the marker (e.g. <!-- probe-scrape-config -->) in README.md.
std::string readme_config(const std::string& marker_text) {
  std::string readme = read_file(fs::path(WINRM_SOURCE_DIR) / "README.md");
  auto marker = readme.find(marker_text);
  REQUIRE(marker != std::string::npos);
  auto start = readme.find("```yaml\n", marker);
  REQUIRE(start != std::string::npos);
  start += 8;
  auto end = readme.find("```", start);
  REQUIRE(end != std::string::npos);
  return readme.substr(start, end - start);
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

// Exporter config: every host polled at 1 s through the simulator; `extra` is appended to
// each target's flow mapping (e.g. ", labels: {site: a}").
std::string exporter_yaml(const TempDir& dir, int sim_port, const std::vector<std::string>& hosts,
                          const std::vector<std::string>& extra = {}) {
  std::string yaml =
      "global:\n  interval: 1s\n  timeout: 900ms\n  port: " + std::to_string(sim_port) +
      "\n  tls_ca_file: " + (dir / "ca.pem").string() +
      "\n  collectors: [cpu, logical_disk]\n  credential: sim\ncredentials:\n"
      "  sim: {auth: basic, username: monitor, password_file: " +
      (dir / "monitor.pass").string() + "}\ntargets:\n";
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    yaml += "  - {name: " + hosts[i] + ", connect_address: 127.0.0.1" +
            (i < extra.size() ? extra[i] : "") + "}\n";
  }
  return yaml;
}

}  // namespace

TEST_CASE("Prometheus scrapes /probe with the README relabel config and gets values per host") {
  REQUIRE(fs::exists(kPrometheus));
  TempDir dir;
  write_file(dir / "monitor.pass", "prom-pass\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: prom-pass}\n");
  std::vector<std::string> hosts = {"win01.sim.test", "win02.sim.test", "win03.sim.test",
                                    "win04.sim.test"};
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, hosts));
  Exporter exporter(dir, dir / "exporter.yml");

  std::string host_list = "[";
  for (std::size_t i = 0; i < hosts.size(); ++i) host_list += (i ? ", " : "") + hosts[i];
  host_list += "]";
  std::string scrape = readme_config("<!-- probe-scrape-config -->");
  REQUIRE(scrape.find("[web01.example.com, dc01.example.com]") != std::string::npos);
  REQUIRE(scrape.find("exporter.example.com:9725") != std::string::npos);
  scrape = replace_all(scrape, "[web01.example.com, dc01.example.com]", host_list);
  scrape = replace_all(scrape, "exporter.example.com:9725",
                       "127.0.0.1:" + std::to_string(exporter.port));
  Prometheus prometheus(dir, scrape);
  auto query = [&](const std::string& promql) { return prometheus.query(promql); };
  auto every_host_in = [&](const std::string& body) {
    if (body.find("\"status\":\"success\"") == std::string::npos) return false;
    for (const auto& host : hosts) {
      if (body.find("\"instance\":\"" + host + "\"") == std::string::npos) return false;
    }
    return true;
  };
  std::string cpu;
  std::string disk;
  // `> 0` keeps a host out until its rate is positive: a rate is 0 while every sample in the
  // window is the same cached poll (two scrapes before the next 1 s poll lands, as on a loaded
  // CI machine), so only a rate that never turns positive fails the wait.
  bool answered = wait_until(
      [&] {
        cpu = query("sum by (instance) (rate(windows_cpu_time_total[10s])) > 0");
        disk = query("windows_logical_disk_free_bytes");
        return every_host_in(cpu) && every_host_in(disk);
      },
      60s);
  CHECK_MESSAGE(answered, "cpu: " << cpu << "\ndisk: " << disk
                                  << "\nprometheus: " << read_file(dir / "prometheus.err"));
  // No target label from /probe: `instance` comes from the relabel config alone.
  CHECK(disk.find("\"target\"") == std::string::npos);
  CHECK(disk.find("\"job\":\"windows\"") != std::string::npos);
  // A CPU rate is a positive number of seconds per second (the `> 0` above drops the others).
  CHECK(cpu.find("\"value\":[") != std::string::npos);
  CHECK(prometheus.process->stop() == 0);
  CHECK(exporter.process->stop() == 0);
}

TEST_CASE("Prometheus discovers targets from two shards' /sd with the README http_sd config") {
  REQUIRE(fs::exists(kPrometheus));
  TempDir dir;
  TempDir dir_other;  // second exporter's logs
  write_file(dir / "monitor.pass", "prom-pass\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: prom-pass}\n");
  std::vector<std::string> hosts;
  std::vector<std::string> labels;
  for (int i = 1; i <= 8; ++i) {
    hosts.push_back("win0" + std::to_string(i) + ".sim.test");
    labels.push_back(i % 2 ? ", labels: {site: odd}" : ", labels: {site: even}");
  }
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, hosts, labels));
  Exporter shard0(dir, dir / "exporter.yml", {"--shard=0", "--total-shards=2"});
  Exporter shard1(dir_other, dir / "exporter.yml", {"--shard=1", "--total-shards=2"});
  int owners[2] = {};
  for (const auto& host : hosts) ++owners[exporter::Shard{0, 2}.owner_of(host)];
  REQUIRE(owners[0] > 0);  // both shards have targets with these names
  REQUIRE(owners[1] > 0);

  std::string scrape = readme_config("<!-- sd-scrape-config -->");
  const std::string sd_entry = "      - url: http://exporter.example.com:9725/sd";
  REQUIRE(scrape.find(sd_entry) != std::string::npos);
  scrape =
      replace_all(scrape, sd_entry,
                  "      - url: http://127.0.0.1:" + std::to_string(shard0.port) +
                      "/sd\n      - url: http://127.0.0.1:" + std::to_string(shard1.port) + "/sd");
  // Prometheus' own hashmod, as a label, to compare with the exporter's assignment.
  REQUIRE(scrape.back() == '\n');
  scrape +=
      "      - {source_labels: [__param_target], modulus: 2, target_label: prometheus_shard, "
      "action: hashmod}\n";
  Prometheus prometheus(dir, scrape);

  // Every host answers once, from the exporter that owns it.
  std::string targets;
  bool all_up = wait_until(
      [&] {
        targets = prometheus.query("up");
        return count_of(targets, "\"value\":[") == hosts.size() &&
               count_of(targets, "\"1\"]") == hosts.size();
      },
      60s);
  CHECK_MESSAGE(all_up, targets << "\nprometheus: " << read_file(dir / "prometheus.err"));
  std::string active = get(prometheus.port, "/api/v1/targets?state=active").body;
  for (const auto& host : hosts) {
    int owner = exporter::Shard{0, 2}.owner_of(host);
    CHECK_MESSAGE(
        targets.find("\"instance\":\"" + host + "\",\"job\":\"windows\",\"prometheus_shard\":\"" +
                     std::to_string(owner) + "\"") != std::string::npos,
        host);
    int owner_port = owner == 0 ? shard0.port : shard1.port;
    CHECK_MESSAGE(active.find("\"scrapeUrl\":\"http://127.0.0.1:" + std::to_string(owner_port) +
                              "/probe?target=" + host + "\"") != std::string::npos,
                  host);
  }
  std::string disk;
  bool answered = wait_until(
      [&] {
        disk = prometheus.query("count by (instance, site) (windows_logical_disk_free_bytes)");
        return count_of(disk, "\"instance\":") == hosts.size();
      },
      30s);
  CHECK_MESSAGE(answered, disk);
  CHECK(count_of(disk, "\"site\":\"odd\"") == 4);  // the /sd group labels
  CHECK(count_of(disk, "\"site\":\"even\"") == 4);
  // honor_labels: no second copy of the configured label.
  CHECK(prometheus.query("windows_logical_disk_free_bytes").find("exported_site") ==
        std::string::npos);
  CHECK(prometheus.process->stop() == 0);
  CHECK(shard0.process->stop() == 0);
  CHECK(shard1.process->stop() == 0);
}

TEST_CASE("Prometheus scrapes the whole /metrics page gzip-encoded") {
  REQUIRE(fs::exists(kPrometheus));
  TempDir dir;
  write_file(dir / "monitor.pass", "prom-pass\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: prom-pass}\n");
  std::vector<std::string> hosts = {"win01.sim.test", "win02.sim.test", "win03.sim.test"};
  write_file(dir / "exporter.yml", exporter_yaml(dir, sim.https_port, hosts));
  Exporter exporter(dir, dir / "exporter.yml");
  // The body Prometheus gets: gzip (it always asks for it), one member spliced from the cached
  // deflate segments (render_metrics_page_gzip).
  auto scraped = exporter.metrics_when(
      [&](const std::string& body) {
        return count_of(body, "windows_logical_disk_free_bytes{target=") >= hosts.size();
      },
      30s);
  REQUIRE(scraped.ok);
  auto raw = http("GET", exporter.port, "/metrics", {{"Accept-Encoding", "gzip"}}, false);
  REQUIRE(raw.status == 200);
  CHECK(raw.headers.find("Content-Encoding") != raw.headers.end());
  CHECK(raw.headers.find("Content-Encoding")->second == "gzip");
  std::string page = gunzip(raw.body);  // empty unless CRC-32 and length check out
  REQUIRE_FALSE(page.empty());
  CHECK(count_of(page, "# TYPE windows_logical_disk_free_bytes gauge\n") == 1);

  Prometheus prometheus(dir,
                        "scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
                        "      - targets: ['127.0.0.1:" +
                            std::to_string(exporter.port) + "']\n");
  std::string disk;
  std::string up;
  bool answered = wait_until(
      [&] {
        up = prometheus.query("up{job=\"exporter\"}");
        disk = prometheus.query("count by (target) (windows_logical_disk_free_bytes)");
        return up.find("\"1\"]") != std::string::npos &&
               count_of(disk, "\"target\":") == hosts.size();
      },
      60s);
  CHECK_MESSAGE(answered, "up: " << up << "\ndisk: " << disk
                                 << "\nprometheus: " << read_file(dir / "prometheus.err"));
  // Every sample of the page parsed: no scrape error, samples as many as the page's series.
  std::string samples = prometheus.query("scrape_samples_scraped{job=\"exporter\"}");
  CHECK(samples.find("\"value\":[") != std::string::npos);
  CHECK(prometheus.query("scrape_series_added{job=\"exporter\"}").find("\"value\":[") !=
        std::string::npos);
  CHECK(prometheus.process->stop() == 0);
  CHECK(exporter.process->stop() == 0);
}

}  // namespace test_prometheus
