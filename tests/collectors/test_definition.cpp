// Definition parsing/validation and the transform engine on hand-made rows.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "collectors/definition.h"
#include "collectors/names.h"
#include "collectors/registry.h"
#include "common/utf8.h"
#include "common/yaml.h"
#include "prom_text.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_definition {

using collectors::parse_collector_definition_text;
using collectors_test::find_family;
using collectors_test::make_row;
using collectors_test::parse_error;

namespace {

collectors::CollectorPtr parse_ok(const std::string& yaml) {
  auto collector = parse_collector_definition_text(yaml);
  REQUIRE_MESSAGE(collector.has_value(), collector.error());
  return *collector;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A minimal valid definition with one metric whose fields are spliced in.
std::string one_metric(const std::string& metric_fields,
                       const std::string& wql = "SELECT Name, Value, Other FROM Win32_Thing") {
  return "name: custom\nqueries:\n  - wql: " + wql + "\n    metrics:\n      - {" + metric_fields +
         "}\n";
}

collectors::Families run(const collectors::CollectorPtr& collector, std::vector<winrm::Row> rows) {
  auto families = collector->transform({std::move(rows)});
  REQUIRE_MESSAGE(families.has_value(), families.error());
  return *families;
}

}  // namespace

TEST_CASE("built-in registry: the seven defaults, explicit property lists, windows_ names") {
  const auto& builtins = collectors::builtin_collector_map();
  const auto defaults = collectors::default_collector_names();
  CHECK(defaults == std::vector<std::string>{"cpu", "logical_disk", "memory", "net", "os",
                                             "service", "system"});
  for (const auto& name : defaults) {
    CAPTURE(name);
    REQUIRE(builtins.count(name) == 1);
    CHECK(builtins.at(name)->name() == name);
    CHECK_FALSE(collectors::builtin_definition_text(name).empty());
    for (const auto& query : builtins.at(name)->queries()) {
      CHECK(query.wmi_namespace == "root/cimv2");
      CHECK_FALSE(contains(query.wql, "*"));
      CHECK(query.wql.starts_with("SELECT "));
    }
  }
  CHECK(collectors::builtin_collectors().size() == builtins.size());
  CHECK(collectors::builtin_definition_text("nope").empty());
}

TEST_CASE("definition errors name the collector, metric and field") {
  struct Case {
    std::string yaml;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {one_metric("name: m, type: gauge, help: h, value: Value", "SELECT * FROM Win32_Thing"),
       {"collector 'custom'", "query 1", "'wql'", "SELECT *"}},
      {one_metric("name: m_count, type: counter, help: h, value: Value"),
       {"metric 'm_count'", "'name'", "_total"}},
      {one_metric("name: m_total, type: gauge, help: h, value: Value"),
       {"metric 'm_total'", "only counters"}},
      {one_metric("name: 1bad, type: gauge, help: h, value: Value"),
       {"metric '1bad'", "'name'", "Prometheus metric name"}},
      {one_metric("name: m, type: histogram, help: h, value: Value"),
       {"metric 'm'", "'type'", "histogram"}},
      {one_metric("name: m, type: gauge, help: h, value: Missing"),
       {"metric 'm'", "'value'", "'Missing'", "SELECT list"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, labels: {bad-label: Name}"),
       {"metric 'm'", "'labels'", "'bad-label'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, labels: {__x: Name}"),
       {"metric 'm'", "'__x'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, labels: {n: Nope}"),
       {"metric 'm'", "label 'n'", "'Nope'"}},
      {one_metric(
           "name: m, type: gauge, help: h, value: Value, labels: {a: Name}, const_labels: {a: x}"),
       {"metric 'm'", "'const_labels'", "label 'a' defined twice"}},
      {one_metric("name: m, type: gauge, value: Value"), {"metric 'm'", "'help' is required"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, colour: red"),
       {"metric 'm'", "unknown field 'colour'"}},
      {one_metric("name: m, type: gauge, help: h"), {"metric 'm'", "exactly one of"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, info: true"),
       {"metric 'm'", "exactly one of"}},
      {one_metric("name: m, type: gauge, help: h, hook: nope"),
       {"metric 'm'", "'hook'", "unknown value hook 'nope'", "boot_time"}},
      {one_metric("name: m, type: gauge, help: h, hook: boot_time"),
       {"metric 'm'", "'hook'", "SystemUpTime"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, scale: fast"),
       {"metric 'm'", "'scale'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, divide_by: Nope"),
       {"metric 'm'", "'divide_by'", "'Nope'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, value_type: colour"),
       {"metric 'm'", "'value_type'"}},
      {one_metric(
           "name: m_total, type: counter, help: h, enum: {property: Name, label: s, values: [a]}"),
       {"metric 'm_total'", "enum metrics are gauges"}},
      {one_metric("name: m, type: gauge, help: h, enum: {property: Nope, label: s, values: [a]}"),
       {"metric 'm'", "enum", "'Nope'"}},
      {one_metric(
           "name: m, type: gauge, help: h, enum: {property: Name, label: s, values: [a, a]}"),
       {"metric 'm'", "duplicates"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, labels: {n: {property: Name, "
                  "transform: shout}}"),
       {"label 'n'", "unknown transform 'shout'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value, labels: {n: {hook: nope}}"),
       {"label 'n'", "unknown label hook 'nope'"}},
      {"name: Bad-Name\nqueries: []\n", {"collector 'Bad-Name'", "'name'"}},
      {"name: custom\n", {"collector 'custom'", "'queries'"}},
      {"name: custom\nqueries:\n  - wql: SELECT A FROM B\n",
       {"collector 'custom'", "query 1", "'metrics'"}},
      {"name: custom\nqueries:\n  - {wql: SELECT A FROM B, namespace: 'root cimv2', metrics: []}\n",
       {"query 1", "'namespace'"}},
      {"name: custom\nextra: 1\nqueries: []\n", {"collector 'custom'", "unknown field 'extra'"}},
      {"name: custom\nqueries:\n  - wql: DELETE FROM B\n    metrics: [{name: m, type: gauge, help: "
       "h, value: A}]\n",
       {"query 1", "'wql'", "SELECT <properties>"}},
      {"name: custom\nqueries:\n  - wql: SELECT A FROM B\n    skip: [{property: Z, equals: x}]\n"
       "    metrics: [{name: m, type: gauge, help: h, value: A}]\n",
       {"query 1", "'skip.property'", "'Z'"}},
      {"name: custom\nqueries:\n  - wql: SELECT A, B FROM C\n    metrics:\n"
       "      - {name: m, type: gauge, help: h, value: A}\n"
       "      - {name: m, type: gauge, value: B, labels: {x: A}}\n",
       {"metric 'm'", "label names differ"}},
      {"name: custom\nqueries:\n  - wql: SELECT A, B FROM C\n    metrics:\n"
       "      - {name: m_total, type: counter, help: h, value: A}\n"
       "      - {name: m_total, type: counter, help: other, value: B}\n",
       {"metric 'm_total'", "'help'", "differs"}},
      {"name: [unterminated\n", {"collector definition"}},
      {one_metric("name: m, type: gauge, help: h, value: Value", "SELECT FROM Win32_Thing"),
       {"query 1", "'wql'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value", "SELECT Value FROM"), {"'wql'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value", "SELECT Value FROM X WHERE"),
       {"'wql'"}},
      {one_metric("name: m, type: gauge, help: h, value: Value", "SELECT Value,, Name FROM X"),
       {"'wql'", "not a property name"}},
      {"name: custom\nqueries:\n  - {wql: SELECT A FROM B, namespace: root//x, metrics: []}\n",
       {"'namespace'"}},
  };
  for (const auto& test : cases) {
    CAPTURE(test.yaml);
    const std::string error = parse_error(test.yaml);
    for (const auto& part : test.expected) CHECK_MESSAGE(contains(error, part), error);
  }
}

TEST_CASE("with a location, definition errors name the file and line of the field at fault") {
  const common::yaml::Source source("defs/custom.yml");
  const collectors::DefinitionOptions options{
      .locate = [&](const YAML::Mark& mark) { return source.where(mark); }};
  // The metric mapping starts on line 5; the field at fault is on line 6.
  const std::string bad_type =
      one_metric("name: m,\n         type: histogram, help: h, value: Value");
  CHECK(parse_error(bad_type, options).starts_with("defs/custom.yml:6: collector 'custom'"));
  const std::string unknown =
      one_metric("name: m, type: gauge, help: h, value: Value,\n         colour: blue");
  const std::string error = parse_error(unknown, options);
  CHECK(error.starts_with("defs/custom.yml:6: collector 'custom'"));
  CHECK(contains(error, "unknown field 'colour'"));
  // An error about the metric as a whole points at the metric.
  CHECK(parse_error(one_metric("name: m, type: gauge, help: h"), options)
            .starts_with("defs/custom.yml:5: collector 'custom'"));
  // A syntax error carries the same location form.
  const std::string syntax = parse_error("name: custom\nqueries: [\n", options);
  CHECK(syntax.starts_with("defs/custom.yml:"));
  CHECK(contains(syntax, ": yaml: "));
  // Without a location the text is as before.
  CHECK(parse_error(unknown).starts_with("collector 'custom'"));
}

TEST_CASE("WQL and namespace forms that are accepted") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - namespace: 'root\\WebAdministration'\n"
      "    wql: \"select  Name ,Value\\n  from Site where Name <> 'x, y'\"\n"
      "    metrics: [{name: m, type: gauge, help: h, value: value, labels: {n: NAME}}]\n");
  CHECK(collector->queries().at(0).wmi_namespace == "root\\WebAdministration");
  const auto families = run(collector, {make_row({{"Name", "a"}, {"Value", "3"}})});
  CHECK(families.at(0).samples.at(0).value == 3);
  CHECK(families.at(0).label(families.at(0).samples.at(0), "n") == "a");
}

// CIM_DataFile and the other CIM_LogicalFile classes walk every file on every drive unless
// the WHERE clause names a directory or a file, so such queries are refused at load, and
// they must carry max_rows.
TEST_CASE("file classes: the WHERE clause must pin a directory or file, max_rows required") {
  const auto file_query = [](const std::string& wql, const std::string& max_rows = "1000") {
    return "name: files\nqueries:\n  - wql: >-\n      " + wql +
           (max_rows.empty() ? "" : "\n    max_rows: " + max_rows) +
           "\n    metrics: [{name: f, type: gauge, help: h, value: FileSize, labels: {file: "
           "Name}}]\n";
  };
  const std::string select = "SELECT Name, FileSize FROM ";
  for (const std::string where : {
           "CIM_DataFile WHERE Drive = 'C:' AND Path = '\\\\logs\\\\app\\\\'",
           "cim_datafile where path='\\\\logs\\\\' and drive='c:'",
           "CIM_DataFile WHERE '\\\\logs\\\\' = Path",
           "CIM_DataFile WHERE Name = 'c:\\\\logs\\\\app.log'",
           "CIM_DataFile WHERE (Drive = 'C:' AND Path = '\\\\logs\\\\')",
           "CIM_DataFile WHERE Drive = 'C:' AND (Path = '\\\\logs\\\\' AND Extension = 'log')",
           // An OR inside a parenthesised term keeps the pin: both branches are in \logs\.
           "CIM_DataFile WHERE Path = '\\\\logs\\\\' AND (Extension = 'log' OR Extension = 'txt')",
           // An escaped quote inside the literal does not end it.
           "CIM_DataFile WHERE Path = '\\\\o\\'brien\\\\' AND Drive = 'C:'",
           "CIM_Directory WHERE Drive = 'C:' AND Path = '\\\\logs\\\\'",
           "Win32_Directory WHERE Name = 'c:\\\\logs'",
       }) {
    CAPTURE(where);
    CHECK(parse_collector_definition_text(file_query(select + where)).has_value());
  }
  for (const std::string where : {
           "CIM_DataFile",
           "CIM_DataFile WHERE Drive = 'C:'",
           "CIM_DataFile WHERE Extension = 'log'",
           "CIM_DataFile WHERE FileName = 'app'",  // Microsoft: scans all directories
           "CIM_DataFile WHERE Path LIKE '\\\\logs\\\\%'",
           "CIM_DataFile WHERE Path = '\\\\logs\\\\' OR Extension = 'log'",
           "CIM_DataFile WHERE (Path = '\\\\logs\\\\' OR Drive = 'D:') AND Extension = 'log'",
           "CIM_DataFile WHERE NOT Path = '\\\\logs\\\\'",
           "CIM_DataFile WHERE Path <> '\\\\logs\\\\'",
           "CIM_DataFile WHERE Drive = 'C:' AND Description = 'Path = x'",
           "CIM_LogicalFile WHERE Drive = 'C:'",
           "CIM_Directory WHERE Drive = 'C:'",
           "Win32_Directory WHERE Hidden = TRUE",
       }) {
    CAPTURE(where);
    const std::string error = parse_error(file_query(select + where));
    CHECK_MESSAGE(contains(error, "walk every file on every drive"), error);
    CHECK_MESSAGE(contains(error, "query 1"), error);
    CHECK_MESSAGE(contains(error, "field 'wql'"), error);
  }
  const std::string missing_cap = parse_error(
      file_query(select + "CIM_DataFile WHERE Drive = 'C:' AND Path = '\\\\logs\\\\'", ""));
  CHECK_MESSAGE(contains(missing_cap, "field 'max_rows' is required for CIM_DataFile"),
                missing_cap);
  // Other classes are unaffected: no WHERE and no max_rows needed.
  CHECK(parse_collector_definition_text(file_query("SELECT Name, FileSize FROM Win32_Thing", ""))
            .has_value());
}

// `each: true` expands an array property into one series per item (windows_exporter's
// nic_address_info: one series per address), with global_ip/ip_family shaping the item.
TEST_CASE("each: one series per array item; items a transform empties are left out") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT Description, IPAddress FROM "
      "Win32_NetworkAdapterConfiguration\n"
      "    metrics:\n"
      "      - name: address_info\n        type: gauge\n        help: h\n        info: true\n"
      "        labels:\n"
      "          nic: {property: Description, transform: sanitize}\n"
      "          address: {property: IPAddress, each: true, transform: global_ip}\n"
      "          family: {property: IPAddress, each: true, transform: [global_ip, ip_family]}\n");
  winrm::Row a;
  a.add("Description", "Intel(R) 82574L");
  for (const char* ip : {"10.1.2.3", "fe80::1:2", "2001:db8::5", "169.254.1.1", "127.0.0.1", "::1",
                         "FE80::9", "8.8.4.4", "224.0.0.1", "not-an-ip"}) {
    a.add("IPAddress", ip);
  }
  winrm::Row nil;  // IPAddress nil (xsi:nil): no series
  nil.add("Description", "Disconnected");
  nil.add_null("IPAddress");
  const auto families = run(collector, {a, nil});
  const auto* info = find_family(families, "address_info");
  REQUIRE(info != nullptr);
  std::vector<std::string> got;
  for (const auto& sample : info->samples) {
    CHECK(sample.value == 1);
    const auto labels = info->labels(sample);
    REQUIRE(labels.size() == 3);
    CHECK(labels[0].second == "Intel_R__82574L");
    got.push_back(labels[1].second + " " + labels[2].second);
  }
  CHECK(got == std::vector<std::string>{"10.1.2.3 ipv4", "2001:db8::5 ipv6", "8.8.4.4 ipv4"});

  const std::string mixed = parse_error(
      "name: custom\nqueries:\n  - wql: SELECT A, B FROM C\n    metrics:\n"
      "      - {name: m, type: gauge, help: h, info: true, labels: {a: {property: A, each: true}, "
      "b: {property: B, each: true}}}\n");
  CHECK_MESSAGE(contains(mixed, "every 'each' label must read the same array property"), mixed);
  CHECK(contains(parse_error("name: custom\nqueries:\n  - wql: SELECT A FROM C\n    metrics:\n"
                             "      - {name: m, type: gauge, help: h, info: true, labels: {a: "
                             "{property: A, each: maybe}}}\n"),
                 "field 'each'"));
}

TEST_CASE("built-in rules: windows_ prefix required only for built-ins") {
  const std::string yaml = one_metric("name: acme_thing, type: gauge, help: h, value: Value");
  CHECK(contains(parse_error(yaml, {.builtin = true}), "start with windows_"));
  CHECK(parse_collector_definition_text(yaml).has_value());
}

TEST_CASE("custom collector: any namespace, YAML node API, labels and transforms") {
  const auto node = YAML::Load(R"(
name: iis_app_pools
help: IIS application pool state
queries:
  - namespace: root/MicrosoftIISv2
    wql: SELECT Name, AppPoolState, StartTime, Enabled FROM IIsApplicationPoolSetting WHERE Name <> 'W3SVC/AppPools'
    skip: [{property: Name, equals: [W3SVC/AppPools/Ignored]}]
    metrics:
      - name: iis_app_pool_state
        type: gauge
        help: Application pool state
        labels: {pool: {property: Name, trim_prefix: W3SVC/AppPools/, transform: [lowercase, sanitize]}}
        const_labels: {source: wmi}
        enum: {property: AppPoolState, label: state, values: ["1", "2", "3", "4"]}
      - name: iis_app_pool_start_time_seconds
        type: gauge
        help: Start time
        value: StartTime
        value_type: datetime
        labels: {pool: {property: Name, trim_prefix: W3SVC/AppPools/, transform: [lowercase, sanitize]}}
      - name: iis_app_pool_enabled
        type: gauge
        help: Enabled flag
        value: Enabled
        value_type: boolean
        labels: {pool: {property: Name, trim_prefix: W3SVC/AppPools/, transform: [lowercase, sanitize]}}
)");
  auto parsed = collectors::parse_collector_definition(node);
  REQUIRE_MESSAGE(parsed.has_value(), parsed.error());
  const auto collector = *parsed;
  CHECK(collector->name() == "iis_app_pools");
  REQUIRE(collector->queries().size() == 1);
  CHECK(collector->queries()[0].wmi_namespace == "root/MicrosoftIISv2");

  winrm::Row pool;
  pool.add("Name", "W3SVC/AppPools/Default App.Pool");
  pool.add("AppPoolState", "2");
  pool.add("StartTime", "2024-01-02T03:04:05Z", winrm::Property::Type::kDatetime);
  pool.add("Enabled", "true");
  winrm::Row ignored = make_row({{"Name", "W3SVC/AppPools/Ignored"},
                                 {"AppPoolState", "2"},
                                 {"StartTime", "x"},
                                 {"Enabled", "false"}});
  const auto families = run(collector, {pool, ignored});
  const auto* state = find_family(families, "iis_app_pool_state");
  REQUIRE(state->samples.size() == 4);
  for (const auto& sample : state->samples) {
    const auto labels = state->labels(sample);
    CHECK(labels.at(0) == std::pair<std::string, std::string>{"pool", "default_app_pool"});
    CHECK(labels.at(1) == std::pair<std::string, std::string>{"source", "wmi"});
    CHECK(sample.value == (labels.at(2).second == "2" ? 1 : 0));
  }
  CHECK(find_family(families, "iis_app_pool_start_time_seconds")->samples.at(0).value ==
        1704164645);
  CHECK(find_family(families, "iis_app_pool_enabled")->samples.at(0).value == 1);
}

TEST_CASE("enum one-hot: case folding, unknown states and missing values") {
  const auto collector = parse_ok(one_metric(
      "name: s, type: gauge, help: h, labels: {name: Name}, "
      "enum: {property: Value, label: state, values: [running, stopped], lowercase: true}"));
  winrm::Row nil_state;
  nil_state.add("Name", "nil");
  nil_state.add_null("Value");
  const auto families =
      run(collector, {make_row({{"Name", "a"}, {"Value", "Running"}}),
                      make_row({{"Name", "b"}, {"Value", "Stopped"}}),
                      make_row({{"Name", "c"}, {"Value", "Exploded"}}), nil_state});
  const auto text = collectors_test::render(families);
  CHECK(text ==
        "# HELP s h\n# TYPE s gauge\n"
        "s{name=\"a\",state=\"running\"} 1\ns{name=\"a\",state=\"stopped\"} 0\n"
        "s{name=\"b\",state=\"running\"} 0\ns{name=\"b\",state=\"stopped\"} 1\n"
        "s{name=\"c\",state=\"running\"} 0\ns{name=\"c\",state=\"stopped\"} 0\n");

  // Without lowercase the comparison is exact.
  const auto exact = parse_ok(one_metric(
      "name: s, type: gauge, help: h, enum: {property: Value, label: state, values: [running]}"));
  CHECK(run(exact, {make_row({{"Value", "Running"}})}).at(0).samples.at(0).value == 0);
}

TEST_CASE("scale: 100 ns ticks to seconds, KiB to bytes, divide_by") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT Ticks, KiB, Raw, Freq FROM X\n    metrics:\n"
      "      - {name: t_seconds_total, type: counter, help: h, value: Ticks, scale: 1e-7}\n"
      "      - {name: b_bytes, type: gauge, help: h, value: KiB, scale: 1024}\n"
      "      - {name: l_seconds_total, type: counter, help: h, value: Raw, divide_by: Freq}\n");
  const auto families = run(collector, {make_row({{"Ticks", "864000000000"},
                                                  {"KiB", "2048"},
                                                  {"Raw", "62500000"},
                                                  {"Freq", "62500000"}})});
  CHECK(families.at(0).samples.at(0).value == doctest::Approx(86400.0));
  CHECK(families.at(1).samples.at(0).value == 2097152.0);
  CHECK(families.at(2).samples.at(0).value == 1.0);

  // Zero frequency: the sample is skipped, not infinite.
  const auto zero =
      run(collector, {make_row({{"Ticks", "1"}, {"KiB", "1"}, {"Raw", "5"}, {"Freq", "0"}})});
  CHECK(zero.at(2).samples.empty());
}

TEST_CASE("uint64 counters beyond 2^53 round once and render exactly") {
  const auto collector = parse_ok(
      one_metric("name: c_total, type: counter, help: h, value: Value, labels: {n: Name}"));
  const auto families =
      run(collector, {make_row({{"Name", "max"}, {"Value", "18446744073709551615"}}),
                      make_row({{"Name", "odd"}, {"Value", "9007199254740993"}})});
  CHECK(families.at(0).samples.at(0).value == 18446744073709551615.0);
  CHECK(families.at(0).samples.at(1).value == 9007199254740992.0);
  CHECK(collectors_test::format_value(families.at(0).samples.at(0).value) ==
        "18446744073709551616");
  CHECK(collectors_test::format_value(families.at(0).samples.at(1).value) == "9007199254740992");
}

TEST_CASE("transform never throws: bad data skips samples, all-missing is an error") {
  const auto collector =
      parse_ok(one_metric("name: v, type: gauge, help: h, value: Value, labels: {n: Name}"));
  winrm::Row nil;
  nil.add("Name", "nil");
  nil.add_null("Value");
  const auto families = run(collector, {make_row({{"Name", "good"}, {"Value", "1.5"}}),
                                        make_row({{"Name", "text"}, {"Value", "abc"}}),
                                        make_row({{"Name", "empty"}, {"Value", ""}}), nil,
                                        make_row({{"Name", "absent"}})});
  REQUIRE(families.at(0).samples.size() == 1);
  CHECK(families.at(0).samples.at(0).value == 1.5);

  // Nil everywhere is legitimate data (no error); absent everywhere means the
  // definition does not match the class.
  CHECK(collector->transform({{nil}}).has_value());
  const auto missing =
      collector->transform({{make_row({{"Name", "a"}}), make_row({{"Name", "b"}})}});
  REQUIRE_FALSE(missing.has_value());
  CHECK(contains(missing.error(), "collector 'custom'"));
  CHECK(contains(missing.error(), "metric 'v'"));
  CHECK(contains(missing.error(), "property 'Value' missing from all 2 rows"));

  // No rows at all is not an error: an empty result set has no series.
  const auto empty = collector->transform({{}});
  REQUIRE(empty.has_value());
  CHECK(empty->at(0).samples.empty());

  const auto wrong_arity = collector->transform({});
  REQUIRE_FALSE(wrong_arity.has_value());
  CHECK(contains(wrong_arity.error(), "expected 1 row sets, got 0"));
}

TEST_CASE("label values: invalid UTF-8 replaced, duplicates after sanitizing dropped") {
  const auto collector =
      parse_ok(one_metric("name: v, type: gauge, help: h, value: Value, labels: {n: Name, nic: "
                          "{property: Name, transform: sanitize}}"));
  const std::string latin1 = "Caf\xE9";
  const auto families = run(collector, {make_row({{"Name", latin1}, {"Value", "1"}}),
                                        make_row({{"Name", "ok \xC3\xA9"}, {"Value", "2"}})});
  REQUIRE(families.at(0).samples.size() == 2);
  const auto& family = families.at(0);
  CHECK(family.labels(family.samples[0])[0].second == "Caf\xEF\xBF\xBD");
  CHECK(family.labels(family.samples[0])[1].second == "Caf_");
  CHECK(family.labels(family.samples[1])[0].second == "ok \xC3\xA9");
  for (const auto& sample : family.samples) {
    for (const auto& label : family.labels(sample)) CHECK(common::is_valid_utf8(label.second));
  }

  const auto nic =
      parse_ok(one_metric("name: v, type: gauge, help: h, value: Value, labels: {nic: {property: "
                          "Name, transform: sanitize}}"));
  const auto deduped = run(nic, {make_row({{"Name", "eth 0"}, {"Value", "1"}}),
                                 make_row({{"Name", "eth#0"}, {"Value", "2"}})});
  REQUIRE(deduped.at(0).samples.size() == 1);
  CHECK(deduped.at(0).samples.at(0).value == 1);
}

TEST_CASE("series dedup over many rows: first row wins, count adds up") {
  // 3,000 rows over 1,000 label sets: the dedup table grows many times (open addressing,
  // rebuilt at half load) and must keep finding every earlier series.
  const auto gauge =
      parse_ok(one_metric("name: v, type: gauge, help: h, value: Value, labels: {n: Name, k: Kind}",
                          "SELECT Name, Kind, Value FROM Win32_Thing"));
  const auto counted =
      parse_ok(one_metric("name: c, type: gauge, help: h, count: true, labels: {n: Name, k: Kind}",
                          "SELECT Name, Kind, Value FROM Win32_Thing"));
  std::vector<winrm::Row> rows;
  for (int i = 0; i < 3000; ++i) {
    const int set = (i * 7) % 1000;  // every set three times, in scattered order
    rows.push_back(make_row({{"Name", "svc" + std::to_string(set % 250)},
                             {"Kind", std::to_string(set / 250)},
                             {"Value", std::to_string(i)}}));
  }
  const auto values = run(gauge, rows);
  const auto counts = run(counted, rows);
  REQUIRE(values.at(0).samples.size() == 1000);
  REQUIRE(counts.at(0).samples.size() == 1000);
  std::set<std::pair<std::string, std::string>> distinct;
  for (std::size_t i = 0; i < 1000; ++i) {
    const auto& sample = values.at(0).samples[i];
    const auto labels = values.at(0).labels(sample);
    distinct.emplace(labels[0].second, labels[1].second);
    CHECK(sample.value == static_cast<double>(i));  // rows 0..999 are the first of each set
    CHECK(counts.at(0).samples[i].value == 3);
  }
  CHECK(distinct.size() == 1000);
  // Values that only differ in where the label boundary falls are different series.
  const auto split = run(gauge, {make_row({{"Name", "ab"}, {"Kind", "c"}, {"Value", "1"}}),
                                 make_row({{"Name", "a"}, {"Kind", "bc"}, {"Value", "2"}})});
  CHECK(split.at(0).samples.size() == 2);
}

TEST_CASE("recycle: a transform after a recycled result equals one on a fresh collector") {
  const std::string yaml =
      "name: custom\nqueries:\n  - wql: SELECT Name, State, Value FROM Win32_Thing\n"
      "    metrics:\n"
      "      - {name: v, type: gauge, help: h, value: Value, labels: {n: Name}}\n"
      "      - {name: s, type: gauge, help: states, labels: {n: Name},\n"
      "         enum: {property: State, label: state, values: [running, stopped]}}\n";
  const auto reused = parse_ok(yaml);
  std::vector<winrm::Row> many;
  for (int i = 0; i < 500; ++i) {
    many.push_back(make_row(
        {{"Name", "svc" + std::to_string(i)}, {"State", "Running"}, {"Value", std::to_string(i)}}));
  }
  // Series of the first poll that the second one lacks, and one it has again.
  const std::vector<winrm::Row> few = {
      make_row({{"Name", "svc7"}, {"State", "Stopped"}, {"Value", "70"}}),
      make_row({{"Name", "new"}, {"State", "Running"}, {"Value", "1"}})};
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    auto first = reused->transform({many});
    REQUIRE(first.has_value());
    CHECK(first->at(0).samples.size() == 500);
    if (round == 1) {  // whatever a consumer did to the result, the next one starts clean
      first->at(0).name = "changed";
      first->at(1).help = "changed";
      first->at(0).add({{"x", "y"}}, 3);
    }
    reused->recycle(std::move(*first));
    if (round == 2) reused->recycle({});  // a result of another size is not reused
    const auto second = run(reused, few);
    const auto expected = run(parse_ok(yaml), few);
    REQUIRE(second.size() == expected.size());
    for (std::size_t f = 0; f < expected.size(); ++f) {
      CHECK(second[f].name == expected[f].name);
      CHECK(second[f].help == expected[f].help);
      CHECK(second[f].type == expected[f].type);
      CHECK(second[f].label_text == expected[f].label_text);
      REQUIRE(second[f].samples.size() == expected[f].samples.size());
      for (std::size_t i = 0; i < expected[f].samples.size(); ++i) {
        CHECK(second[f].label_pairs(second[f].samples[i]) ==
              expected[f].label_pairs(expected[f].samples[i]));
        CHECK(second[f].samples[i].value == expected[f].samples[i].value);
      }
    }
    CHECK(second.at(0).samples.size() == 2);
    CHECK(second.at(1).samples.size() == 4);
  }
}

TEST_CASE("property lookups: rows in other orders, other case, with properties missing") {
  // Lookups start where the last row had the name (per thread): every order must still find
  // the right property, case-insensitively, and a missing one must stay missing.
  const auto collector = parse_ok(
      one_metric("name: v, type: gauge, help: h, value: Value, labels: {n: Name, o: Other}"));
  const std::vector<winrm::Row> rows = {make_row({{"Name", "a"}, {"Other", "x"}, {"Value", "1"}}),
                                        make_row({{"Value", "2"}, {"Name", "b"}, {"Other", "y"}}),
                                        make_row({{"other", "z"}, {"VALUE", "3"}, {"name", "c"}}),
                                        make_row({{"Name", "d"}, {"Value", "4"}}),
                                        make_row({{"Other", "w"}, {"Name", "e"}}),
                                        make_row({{"Name", "f"}, {"Other", "v"}, {"Value", "6"}})};
  for (int round = 0; round < 2; ++round) {
    const auto families = run(collector, rows);
    const auto& family = families.at(0);
    REQUIRE(family.samples.size() == 5);  // row e has no Value
    const std::vector<std::pair<std::string, double>> expected = {{"n=\"a\",o=\"x\"", 1},
                                                                  {"n=\"b\",o=\"y\"", 2},
                                                                  {"n=\"c\",o=\"z\"", 3},
                                                                  {"n=\"d\",o=\"\"", 4},
                                                                  {"n=\"f\",o=\"v\"", 6}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CHECK(family.label_pairs(family.samples[i]) == expected[i].first);
      CHECK(family.samples[i].value == expected[i].second);
    }
  }
}

TEST_CASE("label shaping: split, trim_prefix, utc_offset, hooks") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT Version, Tz, DNSHostName, Domain, PartOfDomain FROM "
      "X\n"
      "    metrics:\n"
      "      - name: i\n        type: gauge\n        help: h\n        info: true\n"
      "        labels:\n"
      "          major: {property: Version, split: {separator: '.', index: 0}}\n"
      "          build: {property: Version, split: {separator: '.', index: 2}}\n"
      "          beyond: {property: Version, split: {separator: '.', index: 7}}\n"
      "          tz: {property: Tz, transform: utc_offset}\n"
      "          fqdn: {hook: fqdn}\n"
      "          domain: {hook: joined_domain}\n");
  const auto labels_of = [&](winrm::Row row) {
    const auto families = run(collector, {std::move(row)});
    return families.at(0).labels(families.at(0).samples.at(0));
  };
  auto labels = labels_of(make_row({{"Version", "10.0.20348"},
                                    {"Tz", "-330"},
                                    {"DNSHostName", "web1"},
                                    {"Domain", "corp.example"},
                                    {"PartOfDomain", "true"}}));
  CHECK(labels == collectors::Labels{{"major", "10"},
                                     {"build", "20348"},
                                     {"beyond", ""},
                                     {"tz", "UTC-05:30"},
                                     {"fqdn", "web1.corp.example"},
                                     {"domain", "corp.example"}});
  labels = labels_of(make_row({{"Version", "6.2"},
                               {"Tz", "60"},
                               {"DNSHostName", "pc"},
                               {"Domain", "WORKGROUP"},
                               {"PartOfDomain", "false"}}));
  CHECK(labels == collectors::Labels{{"major", "6"},
                                     {"build", ""},
                                     {"beyond", ""},
                                     {"tz", "UTC+01:00"},
                                     {"fqdn", "pc"},
                                     {"domain", ""}});
}

TEST_CASE("boot_time hook: exact FILETIME arithmetic and guards") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT SystemUpTime, Frequency_Object FROM "
      "Win32_PerfRawData_PerfOS_System\n"
      "    metrics: [{name: boot_seconds, type: gauge, help: h, hook: boot_time}]\n");
  auto families =
      run(collector,
          {make_row({{"SystemUpTime", "133475328005000000"}, {"Frequency_Object", "10000000"}})});
  CHECK(families.at(0).samples.at(0).value == 1703059200.5);
  families = run(collector,
                 {make_row({{"SystemUpTime", "5"}, {"Frequency_Object", "10000000"}}),
                  make_row({{"SystemUpTime", "133475328000000000"}, {"Frequency_Object", "0"}})});
  CHECK(families.at(0).samples.empty());
}

TEST_CASE("process_start_time hook: ElapsedTime is the start instant as a FILETIME") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT ElapsedTime, Frequency_Object FROM "
      "Win32_PerfRawData_PerfProc_Process\n"
      "    metrics: [{name: start_seconds, type: gauge, help: h, hook: process_start_time}]\n");
  auto families =
      run(collector,
          {make_row({{"ElapsedTime", "133475328002500000"}, {"Frequency_Object", "10000000"}}),
           // Before 1970 or no frequency: no sample rather than a bogus time.
           make_row({{"ElapsedTime", "0"}, {"Frequency_Object", "10000000"}}),
           make_row({{"ElapsedTime", "133475328000000000"}, {"Frequency_Object", "0"}})});
  REQUIRE(families.at(0).samples.size() == 1);
  CHECK(families.at(0).samples.at(0).value == 1703059200.25);
}

TEST_CASE("IIS start time hooks: the WAS pool and service start instants") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT Name, CurrentApplicationPoolUptime, "
      "TotalApplicationPoolUptime, Frequency_Object FROM "
      "Win32_PerfRawData_APPPOOLCountersProvider_APPPOOLWAS\n"
      "    metrics:\n"
      "      - {name: pool_start, type: gauge, help: h, hook: app_pool_start_time, "
      "labels: {app: Name}}\n"
      "      - {name: was_start, type: gauge, help: h, hook: was_start_time, "
      "labels: {app: Name}}\n");
  auto families = run(collector, {make_row({{"Name", "DefaultAppPool"},
                                            {"CurrentApplicationPoolUptime", "133475328002500000"},
                                            {"TotalApplicationPoolUptime", "133475000000000000"},
                                            {"Frequency_Object", "10000000"}}),
                                  // A stopped pool reports 0: no start time.
                                  make_row({{"Name", "Stopped"},
                                            {"CurrentApplicationPoolUptime", "0"},
                                            {"TotalApplicationPoolUptime", "133475000000000000"},
                                            {"Frequency_Object", "10000000"}})});
  const auto* pool = find_family(families, "pool_start");
  const auto* was = find_family(families, "was_start");
  REQUIRE(pool != nullptr);
  REQUIRE(was != nullptr);
  REQUIRE(pool->samples.size() == 1);
  CHECK(pool->samples.at(0).value == 1703059200.25);
  CHECK(pool->label(pool->samples.at(0), "app") == "DefaultAppPool");
  REQUIRE(was->samples.size() == 2);
  CHECK(was->samples.at(1).value == 1703026400);
}

TEST_CASE("pagefile_free_mib hook: allocated minus used, never negative") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT Name, AllocatedBaseSize, CurrentUsage FROM "
      "Win32_PageFileUsage\n"
      "    metrics: [{name: free_bytes, type: gauge, help: h, hook: pagefile_free_mib,\n"
      "               scale: 1048576, labels: {file: Name}}]\n");
  const auto families = run(
      collector,
      {make_row(
           {{"Name", "C:\\pagefile.sys"}, {"AllocatedBaseSize", "4096"}, {"CurrentUsage", "96"}}),
       make_row(
           {{"Name", "D:\\pagefile.sys"}, {"AllocatedBaseSize", "100"}, {"CurrentUsage", "150"}}),
       make_row({{"Name", "E:\\pagefile.sys"}, {"AllocatedBaseSize", "100"}})});
  const auto& samples = families.at(0).samples;
  REQUIRE(samples.size() == 2);
  CHECK(samples.at(0).value == 4000.0 * 1048576);
  CHECK(samples.at(1).value == 0);  // usage above the allocation while the file grows
  // The hook's properties must be selected.
  CHECK_FALSE(collectors::parse_collector_definition_text(
                  "name: custom\nqueries:\n  - wql: SELECT Name, AllocatedBaseSize FROM "
                  "Win32_PageFileUsage\n"
                  "    metrics: [{name: m, type: gauge, help: h, hook: pagefile_free_mib}]\n")
                  .has_value());
}

TEST_CASE("quickfix_installed_on hook: en-US M/D/YYYY and hex FILETIME, else no sample") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT HotFixID, InstalledOn FROM "
      "Win32_QuickFixEngineering\n"
      "    metrics: [{name: installed_seconds, type: gauge, help: h, hook: quickfix_installed_on,\n"
      "               labels: {id: HotFixID}}]\n");
  const auto families =
      run(collector, {make_row({{"HotFixID", "KB1"}, {"InstalledOn", "3/15/2023"}}),
                      make_row({{"HotFixID", "KB2"}, {"InstalledOn", "12/1/2026"}}),
                      // 2011-08-20T00:00:00Z as a FILETIME, as Server 2008 R2 sometimes shows.
                      make_row({{"HotFixID", "KB3"}, {"InstalledOn", "01cc5ecc1aa10000"}}),
                      make_row({{"HotFixID", "KB4"}, {"InstalledOn", "15.03.2023"}}),
                      make_row({{"HotFixID", "KB5"}, {"InstalledOn", "13/1/2023"}}),
                      make_row({{"HotFixID", "KB6"}, {"InstalledOn", "3/15/2023 extra"}}),
                      make_row({{"HotFixID", "KB7"}})});
  const auto& samples = families.at(0).samples;
  REQUIRE(samples.size() == 3);
  CHECK(samples.at(0).value == 1678838400.0);  // 2023-03-15T00:00:00Z
  CHECK(samples.at(1).value == 1796083200.0);  // 2026-12-01T00:00:00Z
  CHECK(samples.at(2).value == 1313798400.0);  // 2011-08-20T00:00:00Z
}

TEST_CASE("forward_slashes label transform: task paths as windows_exporter spells them") {
  const auto collector = parse_ok(
      "name: custom\nqueries:\n  - wql: SELECT URI FROM MSFT_ScheduledTask\n"
      "    metrics:\n"
      "      - {name: i, type: gauge, help: h, info: true,\n"
      "         labels: {task: {property: URI, transform: [forward_slashes]}}}\n");
  const auto families =
      run(collector, {make_row({{"URI", "\\Microsoft\\Windows\\Defrag\\ScheduledDefrag"}})});
  CHECK(families.at(0).labels(families.at(0).samples.at(0)) ==
        collectors::Labels{{"task", "/Microsoft/Windows/Defrag/ScheduledDefrag"}});
}

TEST_CASE("names helpers") {
  CHECK(collectors::valid_metric_name("windows_cpu_time_total"));
  CHECK(collectors::valid_metric_name("a:b"));
  CHECK_FALSE(collectors::valid_metric_name("9a"));
  CHECK_FALSE(collectors::valid_metric_name("a-b"));
  CHECK(collectors::valid_label_name("core"));
  CHECK_FALSE(collectors::valid_label_name("__name__"));
  CHECK_FALSE(collectors::valid_label_name("a:b"));
  CHECK(collectors::sanitize_identifier("Intel(R) PRO/1000 #2") == "Intel_R__PRO_1000__2");
  // Label values are repaired one U+FFFD per invalid byte (common::Utf8Repair::kEachByte).
  constexpr auto kEachByte = common::Utf8Repair::kEachByte;
  CHECK(common::sanitize_utf8("\xED\xA0\x80", kEachByte) ==
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");                                      // surrogate
  CHECK(common::sanitize_utf8("\xC0\xAF", kEachByte) == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  CHECK(common::sanitize_utf8("\xF0\x9F\x98\x80", kEachByte) == "\xF0\x9F\x98\x80");  // emoji kept
  CHECK(common::sanitize_utf8("ab\xE2\x82", kEachByte) ==
        "ab\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated
}

TEST_CASE("collectors/README.md lists every built-in metric") {
  const std::string readme =
      collectors_test::read_file(std::string(WINRM_SOURCE_DIR) + "/collectors/README.md");
  std::size_t checked = 0;
  for (const auto& [name, collector] : collectors::builtin_collector_map()) {
    CHECK_MESSAGE(contains(readme, "### `" + name + "`"), name);
    const auto families =
        collector->transform(std::vector<std::vector<winrm::Row>>(collector->queries().size()));
    REQUIRE(families.has_value());
    for (const auto& family : *families) {
      CHECK_MESSAGE(contains(readme, "| `" + family.name + "` |"), family.name);
      ++checked;
    }
  }
  CHECK(checked > 60);
}

// `refresh:` only carries a duration for the daemon (which keeps the rows); the parser
// checks its range and refuses it on a sliding window, which asks a new question each poll.
TEST_CASE("refresh: a duration from 0s to 24h per query, not with {{now}} placeholders") {
  const auto with_refresh = [](const std::string& refresh, const std::string& wql) {
    return "name: custom\nqueries:\n  - wql: " + wql + "\n    refresh: " + refresh +
           "\n    metrics: [{name: v, type: gauge, help: h, value: Value}]\n"
           "  - wql: SELECT Value FROM Win32_Other\n"
           "    metrics: [{name: w, type: gauge, help: h, value: Value}]\n";
  };
  const std::string wql = "SELECT Value FROM Win32_Thing";
  const auto collector = parse_ok(with_refresh("15m", wql));
  REQUIRE(collector->queries().size() == 2);
  CHECK(collector->queries()[0].refresh == std::chrono::minutes(15));
  CHECK(collector->queries()[1].refresh.count() == 0);  // default: sent at every poll
  CHECK(parse_ok(with_refresh("0s", wql))->queries()[0].refresh.count() == 0);
  CHECK(parse_ok(with_refresh("24h", wql))->queries()[0].refresh == std::chrono::hours(24));
  for (const std::string bad : {"25h", "15", "soon", "-1m", "[1m]"}) {
    CAPTURE(bad);
    const std::string error = parse_error(with_refresh(bad, wql));
    CHECK_MESSAGE(contains(error, "query 1: field 'refresh': must be a duration from 0s to 24h"),
                  error);
  }
  const std::string window = parse_error(with_refresh(
      "5m", "SELECT Value FROM Win32_NTLogEvent WHERE TimeGenerated >= '{{now-15m}}'"));
  CHECK_MESSAGE(contains(window, "field 'refresh': not valid with a {{now}} placeholder"), window);

  // The built-ins tag only queries of data that a reboot or a config change moves.
  const auto& builtins = collectors::builtin_collector_map();
  std::set<std::string> refreshed;
  for (const auto& [name, builtin] : builtins) {
    for (const auto& query : builtin->queries()) {
      if (query.refresh.count() == 0) continue;
      refreshed.insert(name + ": " + query.wql);
      CAPTURE(query.wql);
      CHECK_FALSE(contains(query.wql, "FreePhysicalMemory"));
      CHECK_FALSE(contains(query.wql, "Win32_PerfRawData"));
      CHECK_FALSE(contains(query.wql, "NetConnectionStatus"));
    }
  }
  CHECK(refreshed.size() == 8);
  CHECK(refreshed.count("system: SELECT MaxNumberOfProcesses FROM Win32_OperatingSystem") == 1);
}

}  // namespace test_definition
