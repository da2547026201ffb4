#include <doctest/doctest.h>

#include "json_lines.h"
#include "log.h"

using namespace exporter;

TEST_CASE("rows become JSON objects: strings, null, arrays, escaping") {
  winrm::Row row("Win32_NetworkAdapterConfiguration");
  row.add("Caption", "Intel \"PRO\"\\1000\n");
  row.add_null("DHCPServer");
  row.add("IPAddress", "10.0.0.5");
  row.add("IPAddress", "fe80::1");
  row.add("Description", "Datenträger");
  row.add("Empty", "");
  CHECK(row_to_json(row) ==
        "{\"Caption\":\"Intel \\\"PRO\\\"\\\\1000\\n\",\"DHCPServer\":null,"
        "\"IPAddress\":[\"10.0.0.5\",\"fe80::1\"],\"Description\":\"Datenträger\","
        "\"Empty\":\"\"}");
}

TEST_CASE("JSON escaping of control characters and invalid UTF-8") {
  CHECK(json_quote("a\tb\x01") == "\"a\\tb\\u0001\"");
  CHECK(json_quote("bad\xff") == "\"bad\xEF\xBF\xBD\"");
  CHECK(logfmt_quote("plain") == "plain");
  CHECK(logfmt_quote("two words") == "\"two words\"");
  CHECK(logfmt_quote("") == "\"\"");
}
