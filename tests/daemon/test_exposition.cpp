#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cache.h"
#include "exposition.h"
#include "pages.h"
#include "promtool.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_exposition {

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
  time.add({{"core", "0,0"}, {"mode", "idle"}}, base + 0.5);
  time.add({{"core", "0,0"}, {"mode", "user"}}, base);
  collectors::MetricFamily count_family;
  count_family.name = "windows_cpu_logical_processor";
  count_family.help = "Total number of logical processors";
  count_family.add({}, 4);
  return {time, count_family};
}

// A kept family holds its deflate segment and no text buffer beside it: the one string's
// capacity is the segment's (libstdc++ grows a short string to at most twice its 15 bytes).
bool holds_only_segment(const RenderedFamily& family) {
  return family.compressed &&
         family.data.capacity() <= std::max<std::size_t>(2 * family.data.size(), 30);
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
  // One U+FFFD per invalid byte (common::Utf8Repair::kEachByte), as label values always had.
  auto label = [](std::string_view value) {
    std::string text;
    append_label_value(text, value);
    return text;
  };
  CHECK(label("Datenträger") == "Datenträger");
  CHECK(label("bad\xff\xfe"
              "end") ==
        "bad\xEF\xBF\xBD\xEF\xBF\xBD"
        "end");
  CHECK(label("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  CHECK(label("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(label("trunc\xE2\x82") == "trunc\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(label("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");
  CHECK(label("\"C:\\\xff\"") == "\\\"C:\\\\\xEF\xBF\xBD\\\"");  // repaired, then escaped
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

TEST_CASE("FamilyWriter: histograms, with and without labels, pass promtool") {
  // The lines the scheduler lag histogram has always had (written by hand until now).
  const std::array<double, 3> bounds = {0.005, 0.5, 60};
  const std::array<std::uint64_t, 4> counts = {1, 0, 2, 1};  // per bucket; the last is +Inf
  std::string out;
  FamilyWriter::histogram(out, "x_lag_seconds", "Delay.\nSecond line.")
      .histogram_sample("", bounds, counts, 75.25);
  CHECK(out ==
        "# HELP x_lag_seconds Delay.\\nSecond line.\n"
        "# TYPE x_lag_seconds histogram\n"
        "x_lag_seconds_bucket{le=\"0.005\"} 1\n"
        "x_lag_seconds_bucket{le=\"0.5\"} 1\n"
        "x_lag_seconds_bucket{le=\"60\"} 3\n"
        "x_lag_seconds_bucket{le=\"+Inf\"} 4\n"
        "x_lag_seconds_sum 75.25\n"
        "x_lag_seconds_count 4\n");
  std::string labelled;
  auto family = FamilyWriter::histogram(labelled, "y_seconds", "Per pool.");
  family.histogram_sample(render_label_pairs({{"pool", "a\"b"}}), bounds, counts, 1);
  family.histogram_sample(render_label_pairs({{"pool", "c"}}), bounds,
                          std::array<std::uint64_t, 4>{}, 0);
  const std::size_t size = labelled.size();
  CHECK_THROWS_AS(family.histogram_sample("", bounds, std::span(counts).first(3), 0),
                  std::logic_error);  // a bucket count missing: a bug, and nothing written
  CHECK(labelled.size() == size);
  CHECK(labelled.find("y_seconds_bucket{pool=\"a\\\"b\",le=\"0.5\"} 1\n") != std::string::npos);
  CHECK(labelled.find("y_seconds_sum{pool=\"a\\\"b\"} 1\n") != std::string::npos);
  CHECK(labelled.find("y_seconds_count{pool=\"c\"} 0\n") != std::string::npos);
  auto check = promtool_check_metrics(out + labelled);
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

TEST_CASE("MetricFamily keeps a sample's labels as escaped text and gives them back") {
  collectors::MetricFamily family;
  family.name = "windows_service_info";
  family.add({{"name", "a \"quoted\"\\ name,{x}\nline"}, {"state", "=\""}}, 1);
  family.add({}, 2);
  family.add({{"bad", "caf\xE9"}}, 3);
  REQUIRE(family.samples.size() == 3);
  CHECK(family.label_pairs(family.samples[0]) ==
        "name=\"a \\\"quoted\\\"\\\\ name,{x}\\nline\",state=\"=\\\"\"");
  CHECK(family.labels(family.samples[0]) ==
        collectors::Labels{{"name", "a \"quoted\"\\ name,{x}\nline"}, {"state", "=\""}});
  CHECK(family.label(family.samples[0], "state") == "=\"");
  CHECK(family.label(family.samples[0], "absent").empty());
  CHECK(family.labels(family.samples[1]).empty());
  CHECK(family.label_pairs(family.samples[1]).empty());
  // Invalid UTF-8 is repaired as the value is escaped: one U+FFFD per invalid byte.
  CHECK(family.label(family.samples[2], "bad") == "caf\xEF\xBF\xBD");
  CHECK(family.samples[2].value == 3);
}

TEST_CASE("with_prefix: re-labelled text equals text rendered with the new prefix") {
  collectors::Families families = cpu_families(3);
  collectors::MetricFamily no_labels;
  no_labels.name = "windows_os_processes";
  no_labels.help = "Processes";
  no_labels.add({}, 12);
  families.push_back(no_labels);
  collectors::MetricFamily escaped;
  escaped.name = "windows_service_info";
  escaped.help = "Service";
  escaped.add({{"display_name", "a \"quoted\"\\ name,{x}"}}, 1);
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
        CHECK(relabelled.families[i].lines() == expected.families[i].lines());
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

namespace {

// gunzip with zlib, which also checks the trailer's CRC-32 and length (Z_DATA_ERROR else).
std::string gunzip(const std::string& body) {
  z_stream stream{};
  REQUIRE(inflateInit2(&stream, 16 + 15) == Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  std::string out;
  int status = Z_OK;
  while (status == Z_OK) {
    char buffer[16384];
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  }
  CHECK(status == Z_STREAM_END);
  CHECK(stream.avail_in == 0);  // one gzip member, nothing after it
  inflateEnd(&stream);
  return out;
}

// cpu_families plus a large service-like family (many blocks), an escaped one and an empty one.
collectors::Families mixed_families(double base) {
  collectors::Families families = cpu_families(base);
  collectors::MetricFamily state;
  state.name = "windows_service_state";
  state.help = "The state of the service";
  state.type = MetricType::kGauge;
  for (int service = 0; service < 400; ++service) {
    for (const char* s : {"running", "stopped", "paused", "unknown"}) {
      state.add({{"name", "svc" + std::to_string(service)}, {"state", s}}, s[0] == 'r' ? base : 0);
    }
  }
  families.push_back(state);
  collectors::MetricFamily escaped;
  escaped.name = "windows_service_info";
  escaped.help = "Service \\ info\nsecond line";
  escaped.add({{"display_name", "a \"quoted\"\\ name,{x}\xff"}}, 1);
  families.push_back(escaped);
  collectors::MetricFamily empty;
  empty.name = "windows_empty";
  families.push_back(empty);
  return families;
}

}  // namespace

TEST_CASE("compressed families: text round-trips, gzip page of segments equals the text page") {
  // A kept poll holds ~100 of these per host: one string for text or segment, 4-byte sizes.
  static_assert(sizeof(RenderedFamily) <= 72);
  auto a_text = render_families("target=\"a\"", mixed_families(1));
  auto b_text = render_families("target=\"b\",site=\"x\"", mixed_families(2));
  auto c_text = render_families("target=\"c\"", cpu_families(3));
  auto a = a_text;
  auto b = b_text;
  compress_families(a, 1);
  compress_families(b, 9);
  for (std::size_t i = 0; i < a.families.size(); ++i) {
    CAPTURE(a.families[i].name());
    CHECK(a.families[i].lines().empty());
    // The text's buffer is freed: the family's one string holds the segment only.
    CHECK(holds_only_segment(a.families[i]));
    CHECK_FALSE(a.families[i].deflated().empty());
    CHECK(a.families[i].line_bytes == a_text.families[i].lines().size());
    std::string text = "kept ";
    append_lines(text, a.families[i]);
    CHECK(text == "kept " + std::string(a_text.families[i].lines()));
    // Appended where the string must grow to less than twice its capacity (g++ 12's
    // resize_and_overwrite then hands the grown capacity to its callback, not the size).
    std::string grown = "kept ";
    grown.reserve(a.families[i].line_bytes * 3 / 4 + 8);
    append_lines(grown, a.families[i]);
    CHECK(grown == text);
  }
  CHECK(a.bytes == a_text.bytes);
  CHECK(a.stored_bytes * 5 < a.bytes);  // the repetitive text compresses well
  CHECK(a_text.stored_bytes == a_text.bytes);

  // The text page is the same whether its sources are kept compressed or not.
  std::string expected;
  write_rendered(expected, {&a_text, &b_text, &c_text});
  std::string from_compressed;
  write_rendered(from_compressed, {&a, &b, &c_text});
  CHECK(from_compressed == expected);

  // gzip: compressed sources spliced, a text source and the head compressed on the fly. Their
  // crc32s are combined per segment length (a table below 64 KiB, computed above): both kinds.
  CHECK(std::any_of(a.families.begin(), a.families.end(),
                    [](const RenderedFamily& f) { return f.line_bytes >= 65536; }));
  CHECK(std::any_of(a.families.begin(), a.families.end(),
                    [](const RenderedFamily& f) { return f.line_bytes < 65536; }));
  GzipWriter gzip;
  gzip.text() = "# head\nup 1\n";
  write_rendered(gzip, {&a, &b, &c_text});
  std::string body = gzip.finish();
  CHECK(gunzip(body) == "# head\nup 1\n" + expected);
  auto check = promtool_check_metrics(expected);
  CHECK_MESSAGE(check.status == 0, check.output);

  // Nothing at all: still a valid, empty gzip body.
  GzipWriter empty;
  CHECK(gunzip(empty.finish()).empty());
}

TEST_CASE("one-line families are kept as stored blocks, valid segments like the deflated ones") {
  collectors::Families families = cpu_families(7);  // one two-line family, one one-line
  collectors::MetricFamily long_line;
  long_line.name = "windows_os_info";
  long_line.add({{"product", std::string(300, 'x')}, {"version", "10.0.20348"}}, 1);
  families.push_back(long_line);
  auto text = render_families("target=\"a\"", families);
  auto kept = render_compressed("target=\"a\"", families, 1, nullptr);
  auto compressed = text;
  compress_families(compressed, 1);
  REQUIRE(kept.families.size() == 3);
  for (const RenderedFamilies* rendered : {&kept, &compressed}) {
    for (std::size_t i = 0; i < 3; ++i) {
      const RenderedFamily& family = rendered->families[i];
      CAPTURE(family.name());
      const std::string_view lines = text.families[i].lines();
      CHECK(family.line_bytes == lines.size());
      std::string back;
      append_lines(back, family);
      CHECK(back == lines);
      // Stored: a 0 header byte, LEN and NLEN (little-endian), then the text as it is.
      const bool stored = family.samples <= 1;
      CHECK(stored == (family.deflated().size() == lines.size() + 5));
      if (stored) {
        CHECK(family.deflated().substr(5) == lines);
        CHECK(family.deflated()[0] == '\0');
      }
    }
  }
  // A gzip page of stored and deflated segments from two targets.
  auto other = render_compressed("target=\"b\"", families, 1, nullptr);
  std::string expected;
  write_rendered(expected, {&text, &other});
  GzipWriter gzip;
  write_rendered(gzip, {&kept, &other});
  CHECK(gunzip(gzip.finish()) == expected);
}

TEST_CASE("with_prefix of compressed families equals with_prefix of their text") {
  auto text = render_families("target=\"h1\"", mixed_families(4));
  auto compressed = text;
  compress_families(compressed, 1);
  auto expected = with_prefix(text, "site=\"east\"");
  auto relabelled = with_prefix(compressed, "site=\"east\"");
  REQUIRE(relabelled.families.size() == expected.families.size());
  for (std::size_t i = 0; i < expected.families.size(); ++i) {
    CHECK(relabelled.families[i].lines() == expected.families[i].lines());
  }
}

TEST_CASE("write_relabelled equals write_rendered of with_prefix copies, text or compressed") {
  // Two sources with different prefixes (a collector kept before a reload changed the
  // labels), one compressed: each member's lines lose their own source's prefix.
  auto first = render_families("target=\"h1\"", mixed_families(4));
  auto second = render_families("target=\"h1\",site=\"a}b,c\"", cpu_families(2));
  compress_families(first, 1);
  for (const std::string to : {"", "site=\"east\""}) {
    CAPTURE(to);
    auto a = with_prefix(first, to);
    auto b = with_prefix(second, to);
    std::string expected = "head 1\n";
    write_rendered(expected, {&a, &b});
    std::string page = "head 1\n";
    write_relabelled(page, {&first, nullptr, &second}, to);
    CHECK(page == expected);
    std::string gzipped = "x";
    gzip_member(gzipped, page);
    CHECK(gunzip(gzipped.substr(1)) == page);
  }
  std::string empty;
  gzip_member(empty, "");
  CHECK(gunzip(empty).empty());
}

TEST_CASE("gzip /metrics page from the cache decompresses to the text page") {
  Cache cache;  // default: compressed
  Cache plain(0);
  TargetInfo a{"win01.sim.test", {{"site", "east"}}, std::chrono::seconds(10), 3, {"cpu", "svc"}};
  TargetInfo b{"win02.sim.test", {}, std::chrono::seconds(10), 3, {"cpu"}};
  collectors::Families services = mixed_families(6);
  services.erase(services.begin(), services.begin() + cpu_families(6).size());
  for (Cache* c : {&cache, &plain}) {
    c->set_targets({a, b});
    c->record_success("win01.sim.test", "cpu", cpu_families(5), 0.25);
    c->record_success("win01.sim.test", "svc", services, 0.5);
    c->record_failure("win02.sim.test", "cpu", "timeout", "slow", 3);
  }
  auto now = std::chrono::steady_clock::now();
  auto extra = [](std::string& out) { out += "# TYPE winrm_exporter_build_info gauge\n"; };
  std::string text = render_metrics_page(cache.view_all(), extra, now);
  // The stored form changes nothing on the page (but the two caches' poll timestamps).
  auto without_timestamps = [](const std::string& page) {
    std::string out;
    std::istringstream lines(page);
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("winrm_exporter_collector_last_success_timestamp_seconds{")) {
        out += line + "\n";
      }
    }
    return out;
  };
  CHECK(without_timestamps(text) ==
        without_timestamps(render_metrics_page(plain.view_all(), extra, now)));
  CHECK(gunzip(render_metrics_page_gzip(cache.view_all(), extra, now)) == text);
  CHECK(gunzip(render_metrics_page_gzip(plain.view_all(), extra, now)) ==
        render_metrics_page(plain.view_all(), extra, now));
  auto check = promtool_check_metrics(text);
  CHECK_MESSAGE(check.status == 0, check.output);
  CHECK(count(text, "# TYPE windows_service_state") == 1);
  // Re-labelling a kept, compressed snapshot (labels changed on reload).
  a.labels = {{"site", "west"}};
  cache.set_targets({a, b});
  std::string relabelled = render_metrics_page(cache.view_all(), extra, now);
  CHECK(relabelled.find("windows_service_state{target=\"win01.sim.test\",site=\"west\",name="
                        "\"svc0\",state=\"running\"} 6\n") != std::string::npos);
  CHECK(gunzip(render_metrics_page_gzip(cache.view_all(), extra, now)) == relabelled);
  std::string probe = render_probe_page(cache.view("win01.sim.test"), now);
  CHECK(probe.find("windows_service_state{site=\"west\",name=\"svc0\",state=\"running\"} 6\n") !=
        std::string::npos);
}

TEST_CASE("unchanged families reuse the previous poll's segment; changed ones are compressed") {
  auto first = render_families("target=\"a\"", mixed_families(1));
  compress_families(first, 1);
  CHECK(first.reused == 0);
  // The next poll: the same text everywhere.
  auto same = render_families("target=\"a\"", mixed_families(1));
  compress_families(same, 1, &first);
  CHECK(same.reused == first.families.size());
  // One value changed (base 2: the running services' state samples and the cpu counters).
  collectors::Families changed_families = mixed_families(1);
  changed_families.front().samples.front().value += 1;  // one cpu sample
  auto changed_text = render_families("target=\"a\"", changed_families);
  auto changed = changed_text;
  compress_families(changed, 1, &same);
  CHECK(changed.reused == first.families.size() - 1);
  REQUIRE(changed.families.size() == changed_text.families.size());
  for (std::size_t i = 0; i < changed.families.size(); ++i) {
    CAPTURE(changed.families[i].name());
    std::string text;
    append_lines(text, changed.families[i]);
    CHECK(text == changed_text.families[i].lines());  // the new text, reused or not
    const bool text_changed = changed.families[i].crc != same.families[i].crc;
    CHECK(text_changed == (changed.families[i].deflated() != same.families[i].deflated()));
  }
  CHECK(changed.families.front().deflated() != same.families.front().deflated());
  // Another prefix (another target, or relabelled) changes every line: only the family with
  // no samples (empty text) still matches.
  auto other = render_families("target=\"b\"", mixed_families(1));
  compress_families(other, 1, &first);
  CHECK(other.reused == 1);
  CHECK(other.families.back().samples == 0);
}

TEST_CASE("render_compressed keeps what compress_families keeps of render_families") {
  const collectors::Families unchanged = mixed_families(1);
  collectors::Families changed_families = mixed_families(1);
  changed_families.front().samples.front().value += 1;  // one cpu sample
  const collectors::Families* const polls[] = {&unchanged, &changed_families};
  for (int level : {1, 6}) {
    CAPTURE(level);
    auto first = render_families("target=\"a\"", mixed_families(1));
    compress_families(first, level);
    for (const auto* families : polls) {
      for (const RenderedFamilies* previous : {static_cast<const RenderedFamilies*>(nullptr),
                                               static_cast<const RenderedFamilies*>(&first)}) {
        auto expected = render_families("target=\"a\"", *families);
        compress_families(expected, level, previous);
        const auto fused = render_compressed("target=\"a\"", *families, level, previous);
        CHECK(fused.prefix == expected.prefix);
        CHECK(fused.samples == expected.samples);
        CHECK(fused.bytes == expected.bytes);
        CHECK(fused.stored_bytes == expected.stored_bytes);
        CHECK(fused.reused == expected.reused);
        REQUIRE(fused.families.size() == expected.families.size());
        for (std::size_t i = 0; i < fused.families.size(); ++i) {
          CAPTURE(expected.families[i].name());
          CHECK(fused.families[i].head == expected.families[i].head);
          CHECK(fused.families[i].samples == expected.families[i].samples);
          CHECK(fused.families[i].deflated() == expected.families[i].deflated());
          CHECK(fused.families[i].lines().empty());
          CHECK(fused.families[i].crc == expected.families[i].crc);
          CHECK(fused.families[i].hash == expected.families[i].hash);
          CHECK(fused.families[i].line_bytes == expected.families[i].line_bytes);
        }
      }
    }
    // Reuse happened where the text did not change: all but the changed cpu family.
    CHECK(render_compressed("target=\"a\"", changed_families, level, &first).reused ==
          first.families.size() - 1);
  }
}

TEST_CASE("render_compressed takes the previous poll's head only when name, HELP and type match") {
  const auto first = render_compressed("target=\"a\"", mixed_families(1), 1);
  const auto next = render_compressed("target=\"a\"", mixed_families(2), 1, &first);
  REQUIRE(next.families.size() == first.families.size());
  for (std::size_t i = 0; i < next.families.size(); ++i) {
    CHECK(next.families[i].head == first.families[i].head);
  }
  // A reload changed one family's HELP and another's type: those get heads of their own.
  collectors::Families changed = mixed_families(2);
  changed[0].help = "another help";
  changed[1].type =
      changed[1].type == MetricType::kCounter ? MetricType::kGauge : MetricType::kCounter;
  const auto after = render_compressed("target=\"a\"", changed, 1, &next);
  CHECK(after.families[0].head != next.families[0].head);
  CHECK(after.families[0].help() == "another help");
  CHECK(after.families[0].name() == next.families[0].name());
  CHECK(after.families[1].head != next.families[1].head);
  CHECK(after.families[1].type() == changed[1].type);
  CHECK(after.families[0].head ==
        intern_family_head(changed[0].name, "another help", changed[0].type));
  for (std::size_t i = 2; i < after.families.size(); ++i) {
    CHECK(after.families[i].head == next.families[i].head);
  }
}

TEST_CASE("the cache reuses unchanged segments across polls of one target and collector") {
  Cache cache;
  TargetInfo a{"win01.sim.test", {}, std::chrono::seconds(10), 3, {"svc"}};
  cache.set_targets({a});
  auto families_of = [&] {
    return cache.view("win01.sim.test").collectors.at(0).snapshot->families;
  };
  cache.record_success("win01.sim.test", "svc", mixed_families(1), 0.1);
  auto first = families_of();
  CHECK(first->reused == 0);
  // What the cache keeps of a poll is its segments: no family holds a text buffer.
  for (const auto& family : first->families) {
    CAPTURE(family.name());
    CHECK(holds_only_segment(family));
  }
  cache.record_success("win01.sim.test", "svc", mixed_families(1), 0.1);
  CHECK(families_of()->reused == first->families.size());
  cache.record_failure("win01.sim.test", "svc", "timeout", "slow", 3);  // keeps the families
  cache.record_success("win01.sim.test", "svc", mixed_families(2), 0.1);
  auto changed = families_of();
  CHECK(changed->reused < first->families.size());
  std::string page = render_metrics_page(cache.view_all(), {}, std::chrono::steady_clock::now());
  CHECK(
      page.find("windows_service_state{target=\"win01.sim.test\",name=\"svc0\",state=\"running\"} "
                "2\n") != std::string::npos);
  CHECK(gunzip(render_metrics_page_gzip(cache.view_all(), {}, std::chrono::steady_clock::now())) ==
        page);
}

TEST_CASE("pooled coders: concurrent polls, pages and probes at two levels stay exact") {
  // compress_families and GzipWriter share a pool of zlib streams, append_lines and gzip_member
  // one of libdeflate coders: a coder handed to two threads at once, or reused without its
  // reset, corrupts segments or pages (and TSan reports it). 4 threads x 40 rounds, levels 1
  // and 6 interleaved.
  const auto text = render_families("target=\"h1\"", mixed_families(7));
  std::string expected;
  write_rendered(expected, {&text});
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 40; ++round) {
        auto kept = text;
        compress_families(kept, (t + round) % 2 == 0 ? 1 : 6);
        std::string page;
        write_rendered(page, {&kept});
        GzipWriter gzip((t + round) % 2 == 0 ? 6 : 1);
        gzip.text() = "# head\n";
        write_rendered(gzip, {&kept});
        std::string member;
        gzip_member(member, page, (t + round) % 2 == 0 ? 6 : 1);
        if (page != expected || gunzip(gzip.finish()) != "# head\n" + expected ||
            gunzip(member) != expected) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches.load() == 0);
  // A GzipWriter dropped unfinished returns its stream; the next user starts clean.
  auto kept = text;
  compress_families(kept, 1);
  {
    GzipWriter abandoned;
    abandoned.text() = "partial ";
    write_rendered(abandoned, {&kept});  // compresses "partial " + the headers between segments
  }
  GzipWriter next;
  next.text() = expected;
  CHECK(gunzip(next.finish()) == expected);
}

TEST_CASE("family heads (name, HELP, type) are kept once per process, not per kept poll") {
  Cache cache;
  TargetInfo a{"win01.sim.test", {}, std::chrono::seconds(10), 3, {"svc"}};
  TargetInfo b{"win02.sim.test", {{"site", "east"}}, std::chrono::seconds(10), 3, {"svc"}};
  cache.set_targets({a, b});
  cache.record_success("win01.sim.test", "svc", mixed_families(1), 0.1);
  cache.record_success("win02.sim.test", "svc", mixed_families(2), 0.1);
  auto kept_a = cache.view("win01.sim.test").collectors.at(0).snapshot->families;
  auto kept_b = cache.view("win02.sim.test").collectors.at(0).snapshot->families;
  REQUIRE(kept_a->families.size() == kept_b->families.size());
  for (std::size_t i = 0; i < kept_a->families.size(); ++i) {
    CAPTURE(kept_a->families[i].name());
    CHECK(kept_a->families[i].head == kept_b->families[i].head);  // one object, two targets
  }
  // The next poll of a target uses the same heads too.
  cache.record_success("win01.sim.test", "svc", mixed_families(3), 0.1);
  auto next_a = cache.view("win01.sim.test").collectors.at(0).snapshot->families;
  CHECK(next_a->families.front().head == kept_a->families.front().head);

  // Equal fields, one head; any field different, another head.
  using collectors::MetricType;
  auto gauge = intern_family_head("windows_x", "X", MetricType::kGauge);
  CHECK(intern_family_head("windows_x", "X", MetricType::kGauge) == gauge);
  CHECK(intern_family_head("windows_x", "X (changed)", MetricType::kGauge) != gauge);
  CHECK(intern_family_head("windows_x", "X", MetricType::kCounter) != gauge);
  CHECK(intern_family_head("windows_y", "X", MetricType::kGauge) != gauge);
  CHECK(gauge->help == "X");

  // Heads nobody uses (e.g. a custom collector's HELP before a reload) do not pile up.
  for (int i = 0; i < 5000; ++i) {
    intern_family_head("windows_reloaded", "help " + std::to_string(i), MetricType::kGauge);
  }
  CHECK(interned_family_heads() < 2100);
  // Heads in use survive a purge: the kept families still read their names.
  CHECK(intern_family_head("windows_x", "X", MetricType::kGauge) == gauge);
  CHECK(kept_a->families.front().name() == mixed_families(1).front().name);
}

}  // namespace test_exposition
