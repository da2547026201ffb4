// A real Prometheus server scrapes /probe through the README's multi-target relabel
// config; its HTTP API then returns a CPU rate and a disk free value for every host.
#include <doctest/doctest.h>

#include "e2e_util.h"

using namespace e2e;

namespace {

const char* kPrometheus = "/usr/bin/prometheus";

std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

// The ```yaml block that follows the <!-- probe-scrape-config --> marker in README.md.
std::string readme_probe_config() {
  std::string readme = read_file(fs::path(WINRM_SOURCE_DIR) / "README.md");
  auto marker = readme.find("<!-- probe-scrape-config -->");
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

}  // namespace

TEST_CASE("Prometheus scrapes /probe with the README relabel config and gets values per host") {
  REQUIRE(fs::exists(kPrometheus));
  TempDir dir;
  write_file(dir / "monitor.pass", "prom-pass\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: prom-pass}\n");
  std::vector<std::string> hosts = {"win01.sim.test", "win02.sim.test", "win03.sim.test",
                                    "win04.sim.test"};
  std::string yaml =
      "global:\n  interval: 1s\n  timeout: 900ms\n  port: " + std::to_string(sim.https_port) +
      "\n  tls_ca_file: " + (dir / "ca.pem").string() +
      "\n  collectors: [cpu, logical_disk]\n  credential: sim\ncredentials:\n"
      "  sim: {auth: basic, username: monitor, password_file: " +
      (dir / "monitor.pass").string() + "}\ntargets:\n";
  for (const auto& host : hosts) yaml += "  - {name: " + host + ", connect_address: 127.0.0.1}\n";
  write_file(dir / "exporter.yml", yaml);
  Exporter exporter(dir, dir / "exporter.yml");

  std::string host_list = "[";
  for (std::size_t i = 0; i < hosts.size(); ++i) host_list += (i ? ", " : "") + hosts[i];
  host_list += "]";
  std::string scrape = readme_probe_config();
  REQUIRE(scrape.find("[web01.example.com, dc01.example.com]") != std::string::npos);
  REQUIRE(scrape.find("exporter.example.com:9725") != std::string::npos);
  scrape = replace_all(scrape, "[web01.example.com, dc01.example.com]", host_list);
  scrape = replace_all(scrape, "exporter.example.com:9725",
                       "127.0.0.1:" + std::to_string(exporter.port));
  write_file(
      dir / "prometheus.yml",
      "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n" +
          scrape);

  std::unique_ptr<Process> prometheus;
  int prometheus_port = 0;
  for (int attempt = 0; attempt < 3 && prometheus_port == 0; ++attempt) {
    int port = free_port();
    prometheus = std::make_unique<Process>(
        std::vector<std::string>{kPrometheus, "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                 "--log.level=warn"},
        dir / "prometheus.out", dir / "prometheus.err");
    if (wait_until([&] { return !prometheus->running() || get(port, "/-/ready").status == 200; },
                   30s) &&
        prometheus->running()) {
      prometheus_port = port;
    }
  }
  REQUIRE_MESSAGE(prometheus_port != 0, read_file(dir / "prometheus.err"));

  auto query = [&](const std::string& promql) {
    return get(prometheus_port, "/api/v1/query?query=" + url_encode(promql)).body;
  };
  auto every_host_in = [&](const std::string& body) {
    if (body.find("\"status\":\"success\"") == std::string::npos) return false;
    for (const auto& host : hosts) {
      if (body.find("\"instance\":\"" + host + "\"") == std::string::npos) return false;
    }
    return true;
  };
  std::string cpu;
  std::string disk;
  bool answered = wait_until(
      [&] {
        cpu = query("sum by (instance) (rate(windows_cpu_time_total[10s]))");
        disk = query("windows_logical_disk_free_bytes");
        return every_host_in(cpu) && every_host_in(disk);
      },
      60s);
  CHECK_MESSAGE(answered, "cpu: " << cpu << "\ndisk: " << disk
                                  << "\nprometheus: " << read_file(dir / "prometheus.err"));
  // No target label from /probe: `instance` comes from the relabel config alone.
  CHECK(disk.find("\"target\"") == std::string::npos);
  CHECK(disk.find("\"job\":\"windows\"") != std::string::npos);
  // A CPU rate is a positive number of seconds per second.
  CHECK(cpu.find("\"value\":[") != std::string::npos);
  CHECK(cpu.find("\"0\"]") == std::string::npos);
  CHECK(prometheus->stop() == 0);
  CHECK(exporter.process->stop() == 0);
}
