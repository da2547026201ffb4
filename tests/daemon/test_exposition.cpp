#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "cache.h"
#include "exposition.h"
#include "pages.h"
#include "promtool.h"

using namespace exporter;
using collectors::MetricType;

namespace {

std::string value_text(double value) {
  std::string out;
  append_value(out, value);
  return out;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

collectors::Families cpu_families(double base) {
  collectors::MetricFamily time;
  time.name = "windows_cpu_time_total";
  time.help =
      "Time that processor spent in different modes (dpc, idle, interrupt, privileged, user).";
  time.type = MetricType::kCounter;
  time.samples.push_back({{{"core", "0,0"}, {"mode", "idle"}}, base + 0.5});
  time.samples.push_back({{{"core", "0,0"}, {"mode", "user"}}, base});
  collectors::MetricFamily count_family;
  count_family.name = "windows_cpu_logical_processor";
  count_family.help = "Total number of logical processors";
  count_family.samples.push_back({{}, 4});
  return {time, count_family};
}

}  // namespace

TEST_CASE("values are formatted like Prometheus") {
  CHECK(value_text(0) == "0");
  CHECK(value_text(42) == "42");
  CHECK(value_text(-3) == "-3");
  CHECK(value_text(1.5) == "1.5");
  CHECK(value_text(0.1) == "0.1");
  CHECK(value_text(123456789012.0) == "123456789012");
  CHECK(value_text(9007199254740992.0) == "9007199254740992");
  CHECK(value_text(1e300) == "1e+300");
  CHECK(value_text(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(value_text(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(value_text(-std::numeric_limits<double>::infinity()) == "-Inf");
}

TEST_CASE("label values are escaped and UTF-8 sanitised") {
  std::string out;
  append_label_value(out, "C:\\ \"quoted\"\nnext");
  CHECK(out == "C:\\\\ \\\"quoted\\\"\\nnext");
  CHECK(sanitize_utf8("Datenträger") == "Datenträger");
  CHECK(sanitize_utf8("bad\xff\xfe"
                      "end") ==
        "bad\xEF\xBF\xBD\xEF\xBF\xBD"
        "end");
  CHECK(sanitize_utf8("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  CHECK(sanitize_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(sanitize_utf8("trunc\xE2\x82") == "trunc\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(sanitize_utf8("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
  std::string help;
  append_help(help, "line\\one\ntwo \"kept\"");
  CHECK(help == "line\\\\one\\ntwo \"kept\"");
}

TEST_CASE("families merge across targets: one HELP/TYPE per name") {
  auto a = cpu_families(10);
  auto b = cpu_families(20);
  std::string prefix_a = render_label_pairs({{"target", "win01"}, {"site", "east"}});
  std::string prefix_b = render_label_pairs({{"target", "wïn\"02"}});
  std::string out;
  write_families(out, {{prefix_a, &a}, {prefix_b, &b}});
  CHECK(count(out, "# TYPE windows_cpu_time_total counter") == 1);
  CHECK(count(out, "# HELP windows_cpu_logical_processor ") == 1);
  CHECK(
      out.find("windows_cpu_time_total{target=\"win01\",site=\"east\",core=\"0,0\",mode=\"idle\"} "
               "10.5\n") != std::string::npos);
  CHECK(out.find("windows_cpu_time_total{target=\"wïn\\\"02\",core=\"0,0\",mode=\"user\"} 20\n") !=
        std::string::npos);
  CHECK(out.find("windows_cpu_logical_processor{target=\"win01\",site=\"east\"} 4\n") !=
        std::string::npos);
  // Names are sorted; the whole group of a name is contiguous.
  CHECK(out.find("windows_cpu_logical_processor") < out.find("windows_cpu_time_total"));
  auto check = promtool_check_metrics(out);
  CHECK_MESSAGE(check.status == 0, check.output);
}

TEST_CASE("empty label prefix and no labels render without braces") {
  collectors::Families families = cpu_families(1);
  std::string out;
  write_families(out, {{"", &families}});
  CHECK(out.find("windows_cpu_logical_processor 4\n") != std::string::npos);
  CHECK(out.find("windows_cpu_time_total{core=\"0,0\",mode=\"idle\"} 1.5\n") != std::string::npos);
}

TEST_CASE("metrics and probe pages from the cache pass promtool") {
  Cache cache;
  TargetInfo a{"win01.sim.test", {{"site", "east"}}, std::chrono::seconds(10), 3, {"cpu", "os"}};
  TargetInfo b{"win02.sim.test", {}, std::chrono::seconds(10), 3, {"cpu"}};
  cache.set_targets({a, b});
  cache.record_success("win01.sim.test", "cpu", cpu_families(5), 0.25);
  cache.record_failure("win01.sim.test", "os", "access_denied", "denied", 0.1);
  cache.record_success("win02.sim.test", "cpu", cpu_families(7), 0.5);
  cache.record_failure("win02.sim.test", "cpu", "timeout", "slow", 3);

  auto now = std::chrono::steady_clock::now();
  std::string metrics = render_metrics_page(cache.view_all(), {}, now);
  auto check = promtool_check_metrics(metrics);
  CHECK_MESSAGE(check.status == 0, (check.output + "\n" + metrics));
  CHECK(metrics.find("winrm_exporter_target_up{target=\"win01.sim.test\"} 1\n") !=
        std::string::npos);
  CHECK(metrics.find("winrm_exporter_target_up{target=\"win02.sim.test\"} 0\n") !=
        std::string::npos);
  CHECK(metrics.find(
            "winrm_exporter_collector_success{target=\"win01.sim.test\",collector=\"os\"} 0\n") !=
        std::string::npos);
  CHECK(metrics.find("winrm_exporter_collector_errors_total{target=\"win01.sim.test\",collector="
                     "\"os\",kind=\"access_denied\"} 1\n") != std::string::npos);
  // Last good data of a failing collector stays until it is stale.
  CHECK(metrics.find(
            "windows_cpu_time_total{target=\"win02.sim.test\",core=\"0,0\",mode=\"user\"} 7\n") !=
        std::string::npos);
  CHECK(count(metrics, "# TYPE windows_cpu_time_total") == 1);

  // Stale: 3 intervals later the series are gone and success says 0.
  std::string later = render_metrics_page(cache.view_all(), {}, now + std::chrono::seconds(31));
  CHECK(later.find("windows_cpu_time_total{") == std::string::npos);
  CHECK(later.find(
            "winrm_exporter_collector_success{target=\"win01.sim.test\",collector=\"cpu\"} 0\n") !=
        std::string::npos);

  std::string probe = render_probe_page(cache.view("win01.sim.test"), now);
  check = promtool_check_metrics(probe);
  CHECK_MESSAGE(check.status == 0, (check.output + "\n" + probe));
  CHECK(probe.find("target=") == std::string::npos);
  CHECK(probe.find("winrm_exporter_target_up 1\n") != std::string::npos);
  CHECK(probe.find("winrm_exporter_collector_success{collector=\"cpu\"} 1\n") != std::string::npos);
  CHECK(probe.find("windows_cpu_time_total{site=\"east\",core=\"0,0\",mode=\"idle\"} 5.5\n") !=
        std::string::npos);
}

TEST_CASE("with_prefix: re-labelled text equals text rendered with the new prefix") {
  collectors::Families families = cpu_families(3);
  collectors::MetricFamily no_labels;
  no_labels.name = "windows_os_processes";
  no_labels.help = "Processes";
  no_labels.samples.push_back({{}, 12});
  families.push_back(no_labels);
  collectors::MetricFamily escaped;
  escaped.name = "windows_service_info";
  escaped.help = "Service";
  escaped.samples.push_back({{{"display_name", "a \"quoted\"\\ name,{x}"}}, 1});
  families.push_back(escaped);
  const std::vector<std::string> prefixes = {"", "target=\"h1\"", "target=\"h1\",site=\"east\"",
                                             "site=\"a}b,c\""};
  for (const auto& from : prefixes) {
    for (const auto& to : prefixes) {
      CAPTURE(from);
      CAPTURE(to);
      auto expected = render_families(to, families);
      auto relabelled = with_prefix(render_families(from, families), to);
      REQUIRE(relabelled.families.size() == expected.families.size());
      for (std::size_t i = 0; i < expected.families.size(); ++i) {
        CHECK(relabelled.families[i].lines == expected.families[i].lines);
        CHECK(relabelled.families[i].samples == expected.families[i].samples);
      }
      CHECK(relabelled.bytes == expected.bytes);
      CHECK(relabelled.prefix == to);
    }
  }
}

TEST_CASE("write_rendered: HELP/TYPE from the first source, empty families left out") {
  collectors::Families empty_first(1);
  empty_first[0].name = "windows_cpu_time_total";
  empty_first[0].help = "first help";
  empty_first[0].type = collectors::MetricType::kCounter;
  auto a = render_families("target=\"a\"", empty_first);
  auto b = render_families("target=\"b\"", cpu_families(2));
  collectors::Families only_empty(1);
  only_empty[0].name = "windows_nothing";
  auto c = render_families("target=\"c\"", only_empty);
  std::string out;
  write_rendered(out, {&a, &b, &c});
  CHECK(out.find("# HELP windows_cpu_time_total first help\n") != std::string::npos);
  CHECK(out.find("windows_nothing") == std::string::npos);
  std::string legacy;
  write_families(legacy, {{"target=\"a\"", &empty_first}, {"target=\"b\"", nullptr}});
  CHECK(legacy.empty());  // one family with no samples only
}
