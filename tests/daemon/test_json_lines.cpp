#include <doctest/doctest.h>

#include "json_lines.h"
#include "log.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_json_lines {

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

TEST_CASE("logfmt and JSON escapes differ only where the formats do") {
  CHECK(json_quote("q\"b\\\n\r\b\f") == "\"q\\\"b\\\\\\n\\r\\b\\f\"");
  CHECK(logfmt_quote("q\"b\\\n\r\b\f") == "\"q\\\"b\\\\\\n\\r\\x08\\x0c\"");
  CHECK(logfmt_quote("a=b") == "\"a=b\"");
  CHECK(logfmt_quote("ctl\x01") == "\"ctl\\x01\"");
}

}  // namespace test_json_lines
