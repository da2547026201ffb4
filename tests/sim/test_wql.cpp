#include <doctest/doctest.h>

#include <map>

#include "wql.h"

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
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
        return &v;
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
  CHECK(matches("Name = 'WinRM'", kService));
  CHECK(matches("name = \"winrm\"", kService));  // case-insensitive names and values
  CHECK_FALSE(matches("Name <> 'WinRM'", kService));
  CHECK(matches("Name != 'Spooler'", kService));
  CHECK(matches("ProcessId > 1000 AND ProcessId <= 1234", kService));
  CHECK_FALSE(matches("ProcessId < 1000", kService));
  CHECK(matches("ProcessId >= 1234", kService));
  CHECK(matches("1000 < ProcessId", kService));  // literal on the left
  CHECK(matches("Started = TRUE", kService));
  CHECK_FALSE(matches("Started = false", kService));
  CHECK(matches("State = 'Stopped' OR StartMode = 'Auto'", kService));
  CHECK_FALSE(matches("State = 'Stopped' OR StartMode = 'Manual'", kService));
  CHECK(matches("NOT State = 'Stopped'", kService));
  CHECK(matches("(State = 'Stopped' OR Name = 'WinRM') AND StartMode = 'Auto'", kService));
  CHECK_FALSE(matches("State = 'Stopped' OR Name = 'WinRM' AND StartMode = 'Manual'",
                      kService));  // AND binds tighter
  CHECK(matches("InstallDate IS NULL", kService));
  CHECK(matches("Name IS NOT NULL", kService));
  CHECK(matches("InstallDate = NULL", kService));
  CHECK_FALSE(matches("InstallDate = 'x'", kService));  // comparisons with NULL are false
  CHECK_FALSE(matches("InstallDate <> 'x'", kService));
  CHECK(matches("Size = 18446744073709551615", kService));  // uint64 exact
  CHECK(matches("Size > 18446744073709551614", kService));
  CHECK(matches("IPAddress = 'fe80::1'", kService));  // arrays match any element
  CHECK(matches("NoSuchProperty IS NULL", kService));
}

TEST_CASE("LIKE and escapes") {
  CHECK(matches("Name LIKE 'Win%'", kService));
  CHECK(matches("Name LIKE 'w_nrm'", kService));
  CHECK(matches("Name LIKE '%RM'", kService));
  CHECK(matches("Name LIKE '%'", kService));
  CHECK_FALSE(matches("Name LIKE 'Win'", kService));
  CHECK(matches("Name LIKE '[vw]inRM'", kService));
  CHECK(matches("Name LIKE '[^a-c]%'", kService));
  CHECK(matches("Name NOT LIKE 'Spool%'", kService));
  CHECK(
      matches("PathName = 'C:\\\\Windows\\\\System32\\\\svchost.exe -k NetworkService'", kService));
  CHECK(matches("PathName LIKE 'C:\\\\Windows\\\\%'", kService));
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
  CHECK(matches("TimeGenerated >= '20261201210500.000000+000'", event));
  CHECK_FALSE(matches("TimeGenerated >= '20261201211500.000000+000'", event));
  CHECK(matches("TimeGenerated < '20261201211031.000000+000'", event));
  // Offsets in minutes (DMTF) and hours (xs:dateTime) are honoured: 22:10:30+60 = 21:10:30Z.
  CHECK(matches("TimeGenerated > '20261201221030.000000+060'", event));
  CHECK_FALSE(matches("TimeGenerated > '20261201221031.000000+060'", event));
  CHECK(matches("TimeGenerated <= '2026-12-01T22:10:31+01:00'", event));
  // Not a datetime literal: compared as text, as before.
  CHECK_FALSE(matches("TimeGenerated = 'yesterday'", event));
}
