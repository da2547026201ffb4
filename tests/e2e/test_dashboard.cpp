// packaging/grafana/windows-hosts.json against a real Prometheus: the exporter polls
// winrm-sim hosts, Prometheus scrapes them both ways the README shows (per host through
// /probe with the multi-target relabel config, job "windows"; the whole /metrics page, job
// "winrm_exporter"), and every panel query of the dashboard, with its variables filled in
// as Grafana would for "All" hosts, must return a series for every simulated host in both
// layouts. The dashboard's host variable query must list every host too.
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "e2e_util.h"
#include "prometheus_server.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_dashboard {

using namespace e2e;

namespace {

const std::vector<std::string> kHosts = {"win01.sim.test", "win02.sim.test", "win03.sim.test"};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

struct PanelQuery {
  std::string panel;
  std::string expr;
};

// Every target expression of every panel, rows' nested panels included (JSON is YAML).
std::vector<PanelQuery> dashboard_queries(const YAML::Node& dashboard) {
  std::vector<PanelQuery> queries;
  std::vector<YAML::Node> panels;
  for (const auto& panel : dashboard["panels"]) {
    panels.push_back(panel);
    for (const auto& nested : panel["panels"]) panels.push_back(nested);
  }
  for (const auto& panel : panels) {
    for (const auto& target : panel["targets"]) {
      queries.push_back({panel["title"].as<std::string>(), target["expr"].as<std::string>()});
    }
  }
  return queries;
}

struct Layout {
  std::string job;         // Prometheus job name
  std::string host_label;  // the dashboard's $host_label for this layout
};
// /probe per host (the host is `instance`) and the exporter's /metrics (the host is `target`).
const Layout kLayouts[] = {{"windows", "instance"}, {"winrm_exporter", "target"}};

// Grafana's interpolation for "All" hosts of a multi-value variable: a regex alternation
// with regex metacharacters escaped (and the backslash escaped again inside a PromQL string).
std::string fill_variables(std::string expr, const Layout& layout) {
  std::string hosts = "(";
  for (std::size_t i = 0; i < kHosts.size(); ++i) {
    hosts += (i ? "|" : "") + replace_all(kHosts[i], ".", "\\\\.");
  }
  hosts += ")";
  expr = replace_all(expr, "$host_label", layout.host_label);
  expr = replace_all(expr, "$__rate_interval", "10s");  // 4 scrape intervals and more
  expr = replace_all(expr, "$job", layout.job);
  expr = replace_all(expr, "$target", hosts);
  return expr;
}

// Empty when the answer has a series labelled with each host, else what is missing.
std::string missing_hosts(const std::string& body, const std::string& host_label) {
  if (body.find("\"status\":\"success\"") == std::string::npos) return "error: " + body;
  std::string missing;
  for (const auto& host : kHosts) {
    if (body.find("\"" + host_label + "\":\"" + host + "\"") == std::string::npos) {
      missing += (missing.empty() ? "" : ", ") + host;
    }
  }
  return missing.empty() ? "" : "no series for " + missing + " in " + body.substr(0, 600);
}

}  // namespace

TEST_CASE("every dashboard panel query returns data for every host, via /probe and /metrics") {
  REQUIRE(fs::exists(kPrometheus));
  const YAML::Node dashboard = YAML::LoadFile(
      (fs::path(WINRM_SOURCE_DIR) / "packaging" / "grafana" / "windows-hosts.json").string());
  const auto queries = dashboard_queries(dashboard);
  REQUIRE(queries.size() >= 10);
  // The variables the test fills in are the dashboard's own, and no others are used.
  std::set<std::string> variables;
  for (const auto& variable : dashboard["templating"]["list"]) {
    variables.insert(variable["name"].as<std::string>());
  }
  CHECK(variables == std::set<std::string>{"datasource", "host_label", "job", "target"});
  for (const Layout& layout : kLayouts) {
    for (const auto& query : queries) {
      CHECK_MESSAGE(fill_variables(query.expr, layout).find('$') == std::string::npos,
                    query.panel << ": unfilled variable in " << query.expr);
    }
  }

  TempDir dir;
  write_file(dir / "monitor.pass", "dash-pass\n");
  Sim sim(dir, "users:\n  - {username: monitor, password: dash-pass}\n");
  // The collectors the dashboard reads: the default set without os, plus time (clock offset).
  std::string config =
      "global:\n  interval: 1s\n  timeout: 900ms\n  port: " + std::to_string(sim.https_port) +
      "\n  tls_ca_file: " + (dir / "ca.pem").string() +
      "\n  collectors: [cpu, logical_disk, memory, net, service, system, time]\n"
      "  credential: sim\ncredentials:\n"
      "  sim: {auth: basic, username: monitor, password_file: " +
      (dir / "monitor.pass").string() + "}\ntargets:\n";
  for (const auto& host : kHosts)
    config += "  - {name: " + host + ", connect_address: 127.0.0.1}\n";
  write_file(dir / "exporter.yml", config);
  Exporter exporter(dir, dir / "exporter.yml");

  const std::string exporter_address = "127.0.0.1:" + std::to_string(exporter.port);
  std::string host_list;
  for (const auto& host : kHosts) host_list += (host_list.empty() ? "" : ", ") + host;
  // The README's /probe block (tests/e2e/test_prometheus.cpp checks it is the README's) and a
  // plain /metrics job.
  Prometheus prometheus(dir,
                        "scrape_configs:\n"
                        "  - job_name: windows\n"
                        "    metrics_path: /probe\n"
                        "    static_configs:\n"
                        "      - targets: [" +
                            host_list +
                            "]\n"
                            "    relabel_configs:\n"
                            "      - source_labels: [__address__]\n"
                            "        target_label: __param_target\n"
                            "      - source_labels: [__param_target]\n"
                            "        target_label: instance\n"
                            "      - target_label: __address__\n"
                            "        replacement: " +
                            exporter_address +
                            "\n"
                            "  - job_name: winrm_exporter\n"
                            "    static_configs:\n"
                            "      - targets: ['" +
                            exporter_address + "']\n");

  // Rates need a few scrapes: retry the whole set until every query answers for every host
  // (bounded), then report what still fails.
  std::vector<std::string> failures;
  const auto evaluate_all = [&] {
    failures.clear();
    for (const Layout& layout : kLayouts) {
      for (const auto& query : queries) {
        const std::string expr = fill_variables(query.expr, layout);
        const std::string missing = missing_hosts(prometheus.query(expr), layout.host_label);
        if (!missing.empty()) {
          failures.push_back(layout.job + " / " + query.panel + ": " + expr + "\n  " + missing);
        }
      }
      // The $target variable: label_values(winrm_exporter_target_up{job=~"$job"}, $host_label).
      const std::string values =
          prometheus.get_api("/api/v1/label/" + layout.host_label + "/values?match[]=" +
                             url_encode("winrm_exporter_target_up{job=~\"" + layout.job + "\"}"));
      for (const auto& host : kHosts) {
        if (values.find("\"" + host + "\"") == std::string::npos) {
          failures.push_back(layout.job + " / $target variable lacks " + host + ": " + values);
        }
      }
    }
    return failures.empty();
  };
  const bool all_answered = wait_until(evaluate_all, 60s);
  for (const auto& failure : failures) CHECK_MESSAGE(false, failure);
  CHECK_MESSAGE(all_answered, "prometheus: " << read_file(dir / "prometheus.err")
                                             << "\nexporter: " << read_file(exporter.stderr_path));
  CHECK(prometheus.process->stop() == 0);
  CHECK(exporter.process->stop() == 0);
}

}  // namespace test_dashboard
