#include <doctest/doctest.h>

#include <map>

#include "common/strings.h"
#include "wql.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_wql {

using sim::Value;
namespace wql = sim::wql;

namespace {

// Evaluates `where` of "SELECT * FROM C WHERE <where>" against a property map.
bool matches(const std::string& where, const std::map<std::string, Value>& props) {
  auto q = wql::parse("SELECT * FROM C WHERE " + where);
  REQUIRE_MESSAGE(q.has_value(), where << ": " << (q ? "" : q.error()));
  REQUIRE(q->where);
  const wql::Lookup lookup = [&](const std::string& name) -> const Value* {
    for (const auto& [k, v] : props) {
      if (common::iequals(k, name)) return &v;
    }
    return nullptr;
  };
  return wql::evaluate(*q->where, lookup);
}

const std::map<std::string, Value> kService = {
    {"Name", Value::str("WinRM")},
    {"State", Value::str("Running")},
    {"StartMode", Value::str("Auto")},
    {"ProcessId", Value::num(1234)},
    {"Started", Value::boolean(true)},
    {"PathName", Value::str("C:\\Windows\\System32\\svchost.exe -k NetworkService")},
    {"InstallDate", Value::null()},
    {"Size", Value::num(18446744073709551615ull)},
    {"IPAddress", Value::str_array({"10.0.0.5", "fe80::1"})},
};

// One row of a WHERE table: the clause and whether it matches.
struct Case {
  const char* where;
  bool matches;
};

void check_cases(std::initializer_list<Case> cases, const std::map<std::string, Value>& props) {
  for (const auto& c : cases) {
    CAPTURE(c.where);
    CHECK(matches(c.where, props) == c.matches);
  }
}

}  // namespace

TEST_CASE("SELECT * and projections") {
  auto q = wql::parse("SELECT * FROM Win32_Service");
  REQUIRE(q);
  CHECK(q->select_all);
  CHECK(q->class_name == "Win32_Service");
  CHECK(!q->where);

  auto p = wql::parse("select Name, State ,name, StartMode from win32_service");
  REQUIRE(p);
  CHECK(!p->select_all);
  CHECK(p->class_name == "win32_service");
  REQUIRE(p->properties.size() == 3);  // duplicate "name" removed
  CHECK(p->properties[0] == "Name");
  CHECK(p->properties[2] == "StartMode");
}

TEST_CASE("WHERE operators") {
  check_cases(
      {
          {"Name = 'WinRM'", true},
          {"name = \"winrm\"", true},  // case-insensitive names and values
          {"Name <> 'WinRM'", false},
          {"Name != 'Spooler'", true},
          {"ProcessId > 1000 AND ProcessId <= 1234", true},
          {"ProcessId < 1000", false},
          {"ProcessId >= 1234", true},
          {"1000 < ProcessId", true},  // literal on the left
          {"Started = TRUE", true},
          {"Started = false", false},
          {"State = 'Stopped' OR StartMode = 'Auto'", true},
          {"State = 'Stopped' OR StartMode = 'Manual'", false},
          {"NOT State = 'Stopped'", true},
          {"(State = 'Stopped' OR Name = 'WinRM') AND StartMode = 'Auto'", true},
          {"State = 'Stopped' OR Name = 'WinRM' AND StartMode = 'Manual'",
           false},  // AND binds tighter
          {"InstallDate IS NULL", true},
          {"Name IS NOT NULL", true},
          {"InstallDate = NULL", true},
          {"InstallDate = 'x'", false},  // comparisons with NULL are false
          {"InstallDate <> 'x'", false},
          {"Size = 18446744073709551615", true},  // uint64 exact
          {"Size > 18446744073709551614", true},
          {"IPAddress = 'fe80::1'", true},  // arrays match any element
          {"NoSuchProperty IS NULL", true},
      },
      kService);
}

TEST_CASE("LIKE and escapes") {
  check_cases(
      {
          {"Name LIKE 'Win%'", true},
          {"Name LIKE 'w_nrm'", true},
          {"Name LIKE '%RM'", true},
          {"Name LIKE '%'", true},
          {"Name LIKE 'Win'", false},
          {"Name LIKE '[vw]inRM'", true},
          {"Name LIKE '[^a-c]%'", true},
          {"Name NOT LIKE 'Spool%'", true},
          {"PathName = 'C:\\\\Windows\\\\System32\\\\svchost.exe -k NetworkService'", true},
          {"PathName LIKE 'C:\\\\Windows\\\\%'", true},
      },
      kService);
  auto q = wql::parse("SELECT * FROM C WHERE Name = 'it\\'s'");
  REQUIRE(q);
  CHECK(q->where->literal.text == "it's");
  CHECK(wql::like_match("abc", "a%c"));
  CHECK(wql::like_match("a%c", "a%c"));
  CHECK_FALSE(wql::like_match("ab", "a_c"));
}

TEST_CASE("parse errors") {
  for (const char* bad :
       {"", "SELECT", "SELECT * FROM", "SELECT Name Win32_Service", "SELECT * FROM C WHERE",
        "SELECT * FROM C WHERE Name = 'unterminated", "SELECT * FROM C WHERE (Name = 'x'",
        "SELECT * FROM C WHERE Name = ", "SELECT * FROM C WHERE Name LIKE 5", "DELETE FROM C",
        "SELECT * FROM C extra", "SELECT * FROM C WHERE Name ! 'x'", "SELECT , FROM C"}) {
    auto q = wql::parse(bad);
    CHECK_MESSAGE(!q.has_value(), bad);
    if (!q) CHECK(!q.error().empty());
  }
}

TEST_CASE("datetime comparisons: DMTF or xs:dateTime literals against Datetime values") {
  // Win32_NTLogEvent.TimeGenerated as the sim renders it, and the DMTF literal the exporter
  // puts into `WHERE TimeGenerated >= '{{now-15m}}'`.
  const std::map<std::string, Value> event = {
      {"TimeGenerated", Value::datetime("2026-12-01T21:10:30.250000Z")}};
  check_cases(
      {
          {"TimeGenerated >= '20261201210500.000000+000'", true},
          {"TimeGenerated >= '20261201211500.000000+000'", false},
          {"TimeGenerated < '20261201211031.000000+000'", true},
      },
      event);
  // Offsets in minutes (DMTF) and hours (xs:dateTime) are honoured: 22:10:30+60 = 21:10:30Z.
  check_cases(
      {
          {"TimeGenerated > '20261201221030.000000+060'", true},
          {"TimeGenerated > '20261201221031.000000+060'", false},
          {"TimeGenerated <= '2026-12-01T22:10:31+01:00'", true},
      },
      event);
  // Not a datetime literal: compared as text, as before.
  check_cases(
      {
          {"TimeGenerated = 'yesterday'", false},
      },
      event);
}

}  // namespace test_wql
