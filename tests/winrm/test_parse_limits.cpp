// Bounded, linear, charset-correct response parsing: every ParseLimits bound with its error
// text, linear time on a 300,000-property instance, UTF-16 fixtures, and hostile XML shapes.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <new>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "iconv_util.h"
#include "test_envelope_fixtures.h"
#include "winrm/charset.h"
#include "winrm/envelope.h"

// Heap allocations counted while `g_counting` is set: the operation counts that hold parsing
// linear without timing it (replaceable global operator new; tinyxml2 and libstdc++ allocate
// through it too).
namespace {
bool g_counting = false;
std::size_t g_allocations = 0;
std::size_t g_allocated_bytes = 0;
}  // namespace

// The replacements allocate with malloc and release with free by design; g++ 12 still warns
// that free() meets operator new's pointer.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  if (g_counting) {
    ++g_allocations;
    g_allocated_bytes += size;
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

// The replacements above are global (they must be), so this test is its own executable even
// in test bundles (ALONE in tests/winrm/CMakeLists.txt); the rest has its own namespace like
// every test file.
namespace test_parse_limits {

using winrm::EnumerationPage;
using winrm::ErrorKind;
using winrm::ParseLimits;
using winrm::Property;
using winrm::Row;
using winrm_test::read_fixture;

namespace {

const std::string kFffd = "\xEF\xBF\xBD";

const std::string kHead =
    "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
    "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
    "xmlns:w='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd'><s:Body><n:PullResponse>"
    "<n:Items>";
const std::string kTail = "</n:Items><n:EndOfSequence/></n:PullResponse></s:Body></s:Envelope>";

// One p:Win32_Foo instance per entry of `instances`, each the given inner XML.
std::string envelope_with(const std::vector<std::string>& instances) {
  std::string body = kHead;
  for (const auto& inner : instances) {
    body += "<p:Win32_Foo xmlns:p='urn:foo'>" + inner + "</p:Win32_Foo>";
  }
  return body + kTail;
}

std::string properties_xml(std::size_t count) {
  std::string xml;
  xml.reserve(count * 32);
  for (std::size_t i = 0; i < count; ++i) {
    std::string name = "Prop" + std::to_string(i);
    xml += "<p:" + name + ">" + std::to_string(i) + "</p:" + name + ">";
  }
  return xml;
}

std::string parse_error_of(std::string_view body, const ParseLimits& limits = {},
                           std::string_view content_type = {}) {
  auto page = winrm::parse_enumeration_response(body, content_type, limits);
  REQUIRE_FALSE(page.has_value());
  CHECK(page.error().kind == ErrorKind::kParse);
  CHECK_FALSE(page.error().fault.has_value());
  return page.error().message;
}

// Same rows: class names, property names, types, nil flags and values.
void check_same_rows(const EnumerationPage& expected, const EnumerationPage& actual) {
  CHECK(actual.context == expected.context);
  CHECK(actual.end_of_sequence == expected.end_of_sequence);
  CHECK(actual.relates_to == expected.relates_to);
  REQUIRE(actual.rows.size() == expected.rows.size());
  for (std::size_t r = 0; r < expected.rows.size(); ++r) {
    const Row& a = actual.rows[r];
    const Row& e = expected.rows[r];
    CHECK(a.class_name() == e.class_name());
    REQUIRE(a.properties().size() == e.properties().size());
    for (std::size_t p = 0; p < e.properties().size(); ++p) {
      const Property& ap = a.properties()[p];
      const Property& ep = e.properties()[p];
      CAPTURE(ep.name);
      CHECK(ap.name == ep.name);
      CHECK(ap.type == ep.type);
      CHECK(ap.is_null == ep.is_null);
      CHECK(ap.values == ep.values);
    }
  }
}

double seconds_to_parse(const std::string& body, const ParseLimits& limits,
                        std::size_t expected_properties) {
  // Best of three: the machine is shared, and only the shape of the growth matters.
  double best = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto start = std::chrono::steady_clock::now();
    auto page = winrm::parse_enumeration_response(body, {}, limits);
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
    REQUIRE(page.has_value());
    REQUIRE(page->rows.size() == 1);
    REQUIRE(page->rows[0].properties().size() == expected_properties);
    best = std::min(best, elapsed.count());
  }
  return best;
}

}  // namespace

TEST_CASE("every bound is a typed Limit on the error, not only text") {
  auto limit_of = [](std::string_view body, const ParseLimits& limits = {}) {
    auto page = winrm::parse_enumeration_response(body, {}, limits);
    REQUIRE_FALSE(page.has_value());
    CHECK(page.error().kind == ErrorKind::kParse);
    return page.error().limit;
  };
  ParseLimits limits;
  limits.max_rows = 1;
  CHECK(limit_of(envelope_with({"<p:A>1</p:A>", "<p:A>2</p:A>"}), limits) == winrm::Limit::kRows);
  limits = {};
  limits.max_properties_per_instance = 1;
  CHECK(limit_of(envelope_with({"<p:A>1</p:A><p:B>2</p:B>"}), limits) == winrm::Limit::kProperties);
  limits = {};
  limits.max_values_per_property = 1;
  CHECK(limit_of(envelope_with({"<p:A>1</p:A><p:A>2</p:A>"}), limits) == winrm::Limit::kValues);
  limits = {};
  limits.max_attributes_per_element = 1;
  CHECK(limit_of(envelope_with({"<p:A x='1' y='2'>1</p:A>"}), limits) == winrm::Limit::kAttributes);
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "<p:D>";
  CHECK(limit_of(envelope_with({deep})) == winrm::Limit::kDepth);
  // Malformed input is not a limit.
  CHECK(limit_of(envelope_with({"<p:A>1</p:B>"})) == winrm::Limit::kNone);
  CHECK(winrm::to_string(winrm::Limit::kProperties) == "max_properties_per_instance");
}

TEST_CASE("default limits are the documented ones") {
  ParseLimits limits;
  CHECK(limits.max_rows == 100000);
  CHECK(limits.max_properties_per_instance == 10000);
  CHECK(limits.max_values_per_property == 100000);
  CHECK(limits.max_attributes_per_element == 64);
}

TEST_CASE("max_rows: a page with more rows is refused, naming the limit") {
  const std::string page = read_fixture("enum/txw2008_service_star_p001.xml");  // 50 rows
  ParseLimits limits;
  limits.max_rows = 10;
  CHECK(parse_error_of(page, limits) == "response has more than 10 rows (max_rows)");
  limits.max_rows = 50;
  auto exact = winrm::parse_enumeration_response(page, {}, limits);
  REQUIRE(exact.has_value());
  CHECK(exact->rows.size() == 50);
}

TEST_CASE("max_properties_per_instance, with the default of 10000") {
  ParseLimits limits;
  limits.max_properties_per_instance = 5;
  CHECK(parse_error_of(read_fixture("enum/txw2012_os_star_single.xml"), limits) ==
        "instance has more than 5 properties (max_properties_per_instance)");

  CHECK(parse_error_of(envelope_with({properties_xml(10001)})) ==
        "instance has more than 10000 properties (max_properties_per_instance)");
  auto at_limit = winrm::parse_enumeration_response(envelope_with({properties_xml(10000)}));
  REQUIRE(at_limit.has_value());
  CHECK(at_limit->rows[0].properties().size() == 10000);

  // Nil properties count too.
  std::string nils;
  for (int i = 0; i < 6; ++i) {
    nils += "<p:N" + std::to_string(i) +
            " xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' xsi:nil='true'/>";
  }
  CHECK(parse_error_of(envelope_with({nils}), limits) ==
        "instance has more than 5 properties (max_properties_per_instance)");
}

TEST_CASE("max_values_per_property: arrays are bounded, naming the property") {
  std::string array;
  for (int i = 0; i < 11; ++i)
    array += "<p:IPAddress>10.0.0." + std::to_string(i) + "</p:IPAddress>";
  ParseLimits limits;
  limits.max_values_per_property = 10;
  CHECK(parse_error_of(envelope_with({array}), limits) ==
        "property \"IPAddress\" has more than 10 values (max_values_per_property)");
  limits.max_values_per_property = 11;
  auto ok = winrm::parse_enumeration_response(envelope_with({array}), {}, limits);
  REQUIRE(ok.has_value());
  CHECK(ok->rows[0].find("ipaddress")->values.size() == 11);

  // Repeats that are not adjacent still land in one property and count against the bound.
  limits.max_values_per_property = 2;
  CHECK(
      parse_error_of(envelope_with({"<p:A>1</p:A><p:B>x</p:B><p:A>2</p:A><p:A>3</p:A>"}), limits) ==
      "property \"A\" has more than 2 values (max_values_per_property)");
}

TEST_CASE("max_attributes_per_element bounds tinyxml2's quadratic attribute check") {
  auto with_attributes = [](std::size_t count, std::string_view value) {
    std::string tag = "<p:A";
    for (std::size_t i = 0; i < count; ++i) {
      tag += " a" + std::to_string(i) + "='";
      tag += value;
      tag += "'";
    }
    return envelope_with({tag + ">1</p:A>"});
  };
  CHECK(winrm::parse_enumeration_response(with_attributes(64, "v")).has_value());
  CHECK(parse_error_of(with_attributes(65, "v")) ==
        "element has more than 64 attributes (max_attributes_per_element)");
  // '>' and quotes of the other kind inside values do not hide attributes from the count.
  CHECK(parse_error_of(with_attributes(65, "> \" =")) ==
        "element has more than 64 attributes (max_attributes_per_element)");
  // 200,000 attributes: refused before tinyxml2 would spend ~10^10 comparisons on them.
  CHECK(parse_error_of(with_attributes(200000, "")) ==
        "element has more than 64 attributes (max_attributes_per_element)");
  // '=' in text, comments, CDATA and processing instructions is not an attribute.
  std::string equals(500, '=');
  auto ok = winrm::parse_enumeration_response(
      "<?xml version='1.0' encoding='utf-8'?><?pi " + equals + " <x a='1'>?><!-- " + equals +
      " <x a='1'> -->" +
      envelope_with({"<p:A>" + equals + "<![CDATA[" + equals + "<b c='d'>]]></p:A>"}));
  REQUIRE(ok.has_value());
  CHECK(ok->rows[0].string("A") == equals + equals + "<b c='d'>");
}

namespace {
struct ParseCounts {
  std::size_t allocations = 0;
  std::size_t allocated_bytes = 0;
  std::size_t page_faults = 0;  // reported only: depends on what the allocator kept
  winrm::Row::IndexStats index;
};

ParseCounts count_parse(const std::string& body, const ParseLimits& limits,
                        std::size_t expected_properties) {
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  g_allocations = g_allocated_bytes = 0;
  g_counting = true;
  auto page = winrm::parse_enumeration_response(body, {}, limits);
  g_counting = false;
  ParseCounts counts{g_allocations, g_allocated_bytes, 0, {}};
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  counts.page_faults = static_cast<std::size_t>(after.ru_minflt - before.ru_minflt);
  REQUIRE(page.has_value());
  REQUIRE(page->rows.size() == 1);
  REQUIRE(page->rows[0].properties().size() == expected_properties);
  counts.index = page->rows[0].index_stats();
  return counts;
}
}  // namespace

TEST_CASE("parsing is linear in operation counts: allocations, bytes, index probes") {
  // 4x the input must cost at most ~4x: heap allocations and bytes allocated (which include
  // every reallocation of the property vector, the name index and the arena), and the probes
  // of the name index per property (collisions, or a lost index, would grow them). No timing.
  ParseLimits limits;
  limits.max_properties_per_instance = 1000000;
  const std::string small = envelope_with({properties_xml(75000)});
  const std::string large = envelope_with({properties_xml(300000)});
  const ParseCounts s = count_parse(small, limits, 75000);
  const ParseCounts l = count_parse(large, limits, 300000);
  MESSAGE("75,000 properties (" << small.size() << " bytes): " << s.allocations << " allocations, "
                                << s.allocated_bytes << " bytes, " << s.index.probes
                                << " probes in " << s.index.slots << " slots, " << s.page_faults
                                << " page faults");
  MESSAGE("300,000 properties (" << large.size() << " bytes): " << l.allocations << " allocations, "
                                 << l.allocated_bytes << " bytes, " << l.index.probes
                                 << " probes in " << l.index.slots << " slots, " << l.page_faults
                                 << " page faults");
  // Few allocations at all (the arena's chunks, vector growth): not one per property.
  CHECK(s.allocations < 75000 / 100);
  CHECK(l.allocations < 300000 / 100);
  CHECK(l.allocations <= 5 * s.allocations);
  // Bytes: under 10 per input byte (7.7 here: the property vector's 56 bytes per ~34-byte
  // property and its doublings, the index, the arena; the DOM alone used to add ~8), and linear.
  CHECK(s.allocated_bytes < 10 * small.size());
  CHECK(l.allocated_bytes < 10 * large.size());
  CHECK(l.allocated_bytes <= 5 * s.allocated_bytes);
  // Every name found in about one probe.
  REQUIRE(s.index.slots > 0);
  REQUIRE(l.index.slots > 0);
  CHECK(s.index.probes < 2 * 75000);
  CHECK(l.index.probes < 2 * 300000);
}

TEST_CASE("300,000 properties in one instance parse (time reported)") {
  ParseLimits limits;
  limits.max_properties_per_instance = 1000000;
  const std::string small = envelope_with({properties_xml(75000)});
  const std::string large = envelope_with({properties_xml(300000)});
  const double small_seconds = seconds_to_parse(small, limits, 75000);
  const double large_seconds = seconds_to_parse(large, limits, 300000);
  // Reported, not asserted: timings belong in bench/; the operation counts above are the
  // linearity check. The 27-30x wall ratio seen since 3d46075 was not the algorithm: the
  // 75,000 runs reused memory glibc kept from the first run, while each 300,000 run needed
  // more than glibc keeps (it trims above 64 MiB), so it faulted ~29,000 fresh pages, costly on
  // this VM. docs/parser.md has the measurements.
  MESSAGE("75,000 properties: " << small_seconds << " s; 300,000: " << large_seconds << " s");

  // Same with the default limit: refused on the limit, not after quadratic work.
  CHECK(parse_error_of(large) ==
        "instance has more than 10000 properties (max_properties_per_instance)");

  auto page = winrm::parse_enumeration_response(large, {}, limits);
  REQUIRE(page.has_value());
  const Row& row = page->rows[0];
  CHECK(row.uint64("prop0") == 0u);
  CHECK(row.uint64("PROP299999") == 299999u);
  CHECK(row.find("Prop300000") == nullptr);
}

namespace {
// `count` items, each declaring its own prefix (pN) and using it for its property.
std::string distinct_prefixes(int count) {
  std::string body = kHead;
  for (int i = 0; i < count; ++i) {
    const std::string prefix = "p" + std::to_string(i);
    body += "<" + prefix + ":Win32_Foo xmlns:" + prefix + "='urn:" + prefix +
            "' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><" + prefix + ":A>" +
            std::to_string(i) + "</" + prefix + ":A><" + prefix + ":B xsi:nil='true'/></" + prefix +
            ":Win32_Foo>";
  }
  return body + kTail;
}

double seconds_for_prefixes(const std::string& body, std::size_t rows) {
  double best = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto start = std::chrono::steady_clock::now();
    auto page = winrm::parse_enumeration_response(body);
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
    REQUIRE(page.has_value());
    REQUIRE(page->rows.size() == rows);
    CHECK(page->rows.back().uint64("A") == rows - 1);
    CHECK(page->rows.back().find("B")->is_null);
    best = std::min(best, elapsed.count());
  }
  return best;
}
}  // namespace

TEST_CASE("100,000 distinct namespace prefixes resolve (time reported)") {
  const double small = seconds_for_prefixes(distinct_prefixes(25000), 25000);
  const double large = seconds_for_prefixes(distinct_prefixes(100000), 100000);
  // Reported, not asserted (see the properties case above).
  MESSAGE("25,000 prefixes: " << small << " s; 100,000: " << large << " s");
}

TEST_CASE("UTF-16 fixtures parse to the same rows as the UTF-8 originals") {
  for (const char* file : {"enum/txw2012_os_star_single.xml", "enum/txw2008_service_star_p001.xml",
                           "enum/opennms_logicaldisk_fragment_pull_last_deDE.xml",
                           "enum/txw2012_nicconfig_star_p001.xml"}) {
    CAPTURE(file);
    const std::string utf8 = read_fixture(file);
    auto original = winrm::parse_enumeration_response(utf8, "application/soap+xml;charset=UTF-8");
    REQUIRE(original.has_value());
    REQUIRE_FALSE(original->rows.empty());
    const std::string le = iconv_from_utf8(utf8, "UTF-16LE");
    const std::string be = iconv_from_utf8(utf8, "UTF-16BE");
    struct Variant {
      std::string body;
      std::string content_type;
    };
    for (const Variant& variant :
         std::vector<Variant>{{"\xFF\xFE" + le, "application/soap+xml;charset=UTF-16"},
                              {le, "application/soap+xml;charset=UTF-16"},
                              {le, "application/soap+xml;charset=utf-16le"},
                              {"\xFE\xFF" + be, "application/soap+xml;charset=UTF-16"},
                              {be, "application/soap+xml; charset=\"UTF-16BE\""},
                              {"\xFE\xFF" + be, ""}}) {
      CAPTURE(variant.content_type);
      auto decoded = winrm::parse_enumeration_response(variant.body, variant.content_type);
      REQUIRE_MESSAGE(decoded.has_value(), decoded.error().describe());
      check_same_rows(*original, *decoded);
    }
  }
  // Non-ASCII text ("Web Services \u2013 Discovery") survives the round trip.
  const std::string with_dash = read_fixture("enum/txw2008_service_star_p001.xml");
  auto page = winrm::parse_enumeration_response(iconv_from_utf8(with_dash, "UTF-16LE"),
                                                "application/soap+xml;charset=UTF-16LE");
  REQUIRE(page.has_value());
  bool non_ascii = false;
  for (const Row& row : page->rows) {
    for (const Property& property : row.properties()) {
      for (const auto& value : property.values) {
        CHECK(winrm::is_valid_utf8(value));
        non_ascii |= std::any_of(value.begin(), value.end(),
                                 [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
      }
    }
  }
  CHECK(non_ascii);
}

TEST_CASE("fault bodies are decoded by charset too") {
  const std::string utf8 =
      read_fixture("faults/winrb2008r2_cannot_process_filter_invalid_class.xml");
  auto original = winrm::parse_fault(utf8);
  REQUIRE(original.has_value());
  auto utf16 =
      winrm::parse_fault(iconv_from_utf8(utf8, "UTF-16LE"), "application/soap+xml;charset=UTF-16");
  REQUIRE(utf16.has_value());
  CHECK(utf16->wsman_code == original->wsman_code);
  CHECK(utf16->message == original->message);
  CHECK(utf16->subcode == original->subcode);
  auto unknown = winrm::parse_fault(utf8, "application/soap+xml;charset=koi8-r");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().message.find("koi8-r") != std::string::npos);
}

TEST_CASE("values are valid UTF-8: invalid bytes and lone surrogates become U+FFFD") {
  // Invalid UTF-8 in the body itself.
  auto bad_bytes = winrm::parse_enumeration_response(envelope_with({"<p:A>caf\xE9 \xFF</p:A>"}));
  REQUIRE(bad_bytes.has_value());
  CHECK(bad_bytes->rows[0].string("A") == "caf" + kFffd + " " + kFffd);

  // Character references to surrogates or beyond U+10FFFF, which tinyxml2 encodes as bytes
  // that are not UTF-8.
  auto refs = winrm::parse_enumeration_response(
      envelope_with({"<p:A>x&#xD800;y</p:A><p:B>&#x110000;</p:B><p:C>&#xFC;</p:C>"}));
  REQUIRE(refs.has_value());
  for (const char* name : {"A", "B", "C"}) {
    CAPTURE(name);
    auto value = refs->rows[0].string(name);
    REQUIRE(value.has_value());
    CHECK(winrm::is_valid_utf8(*value));
  }
  CHECK(refs->rows[0].string("A")->starts_with("x"));
  CHECK(refs->rows[0].string("A")->find(kFffd) != std::string::npos);
  CHECK(refs->rows[0].string("C") == "\xC3\xBC");

  // A lone surrogate in a UTF-16 body.
  const std::string text = envelope_with({"<p:A>aXb</p:A>"});
  std::string le = iconv_from_utf8(text, "UTF-16LE");
  const std::size_t x = le.find(std::string("X\0", 2));
  REQUIRE(x != std::string::npos);
  le[x] = '\x3D';
  le[x + 1] = '\xD8';  // D83D, a high surrogate without its low half
  auto lone = winrm::parse_enumeration_response(le, "application/soap+xml;charset=UTF-16LE");
  REQUIRE(lone.has_value());
  CHECK(lone->rows[0].string("A") == "a" + kFffd + "b");
}

TEST_CASE("hostile shapes: classified errors or correct rows, never a crash") {
  // 100,000 levels of nesting: tinyxml2's depth limit, reported as such (no stack overflow).
  std::string deep = kHead + "<p:X xmlns:p='urn:x'>";
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  for (int i = 0; i < 100000; ++i) deep += "</a>";
  deep += "</p:X>" + kTail;
  CHECK(parse_error_of(deep) == "XML elements nested deeper than 100 levels");
  auto deep_fault = winrm::parse_fault(deep);
  REQUIRE_FALSE(deep_fault.has_value());
  CHECK(deep_fault.error().kind == ErrorKind::kParse);

  CHECK(parse_error_of("") == "empty response body");
  CHECK(parse_error_of(" \r\n\t ") == "empty response body");
  CHECK(parse_error_of("\xEF\xBB\xBF") == "empty response body");
  CHECK(parse_error_of("\xFF\xFE", {}, "application/soap+xml;charset=UTF-16") ==
        "empty response body");
  CHECK(parse_error_of("<html><body>IIS</body></html>") ==
        "root element is not a SOAP 1.2 Envelope");
  CHECK(parse_error_of("<a><b></a>").starts_with("malformed XML"));
  // A UTF-16 body labelled UTF-8 has NUL bytes: named, not silently truncated.
  const std::string le = iconv_from_utf8(envelope_with({"<p:A>1</p:A>"}), "UTF-16LE");
  CHECK(parse_error_of(le, {}, "application/soap+xml;charset=UTF-8").starts_with("NUL character"));

  // Entity tricks: no DTD entity is ever expanded (billion laughs stays literal text).
  std::string laughs = "<?xml version='1.0'?><!DOCTYPE s:Envelope [<!ENTITY lol 'lol'>";
  laughs += "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>";
  for (int i = 2; i < 10; ++i) {
    laughs += "<!ENTITY lol" + std::to_string(i) + " '";
    for (int j = 0; j < 10; ++j) laughs += "&lol" + std::to_string(i - 1) + ";";
    laughs += "'>";
  }
  laughs += "]>" + envelope_with({"<p:A>&lol9;</p:A><p:B>&unknown;&#;&#xZZ;&</p:B>"});
  auto page = winrm::parse_enumeration_response(laughs);
  if (page.has_value()) {
    REQUIRE(page->rows.size() == 1);
    for (const Property& property : page->rows[0].properties()) {
      for (const auto& value : property.values) CHECK(value.size() < 64);
    }
  } else {
    CHECK(page.error().kind == ErrorKind::kParse);
  }

  // Mixed namespaces: the same prefix rebound per item, a default namespace, an unbound
  // prefix on a property, and 50 prefixes declared at once on one item.
  std::string many_prefixes = "<p:Win32_Many xmlns:p='urn:many'";
  for (int i = 0; i < 50; ++i) {
    many_prefixes += " xmlns:q" + std::to_string(i) + "='urn:q" + std::to_string(i) + "'";
  }
  many_prefixes += "><q7:A>1</q7:A><zz:B>2</zz:B></p:Win32_Many>";
  std::string mixed = kHead + many_prefixes +
                      "<Win32_Bar xmlns='urn:bar'><C>3</C></Win32_Bar>"
                      "<p:Win32_Foo xmlns:p='urn:foo'><p:D>4</p:D></p:Win32_Foo>" +
                      kTail;
  auto mixed_page = winrm::parse_enumeration_response(mixed);
  REQUIRE(mixed_page.has_value());
  REQUIRE(mixed_page->rows.size() == 3);
  CHECK(mixed_page->rows[0].class_name() == "Win32_Many");
  CHECK(mixed_page->rows[0].uint64("A") == 1u);
  CHECK(mixed_page->rows[0].uint64("B") == 2u);
  CHECK(mixed_page->rows[1].uint64("C") == 3u);
  CHECK(mixed_page->rows[2].uint64("D") == 4u);
}

TEST_CASE("markup tinyxml2 would spend quadratic time on is refused") {
  // Each declaration is checked against every earlier top-level node.
  std::string declarations;
  for (int i = 0; i < 200000; ++i) declarations += "<?a?>";
  CHECK(parse_error_of(declarations + envelope_with({})) == "more than 16 processing instructions");
  // Each "&#" makes tinyxml2 search its whole text node for a ';'.
  std::string refs;
  for (int i = 0; i < 1000000; ++i) refs += "&#x";
  const std::string prefix = "<p:Win32_Foo xmlns:p='urn:foo'><p:A>";
  CHECK(parse_error_of(envelope_with({"<p:A>" + refs + "</p:A>"})) ==
        "malformed character reference at byte " + std::to_string(kHead.size() + prefix.size()));
  // Well-formed references are fine, in text and attribute values.
  auto ok = winrm::parse_enumeration_response(
      envelope_with({"<p:A t='&#x41;'>&#x10FFFF;&#65;&#0000000066;</p:A>"}));
  REQUIRE(ok.has_value());
  CHECK(ok->rows[0].string("A") ==
        "\xF4\x8F\xBF\xBF"
        "AB");
}

TEST_CASE("a 100 MB text node is one correct value") {
  constexpr std::size_t kSize = 100u << 20;
  // Built in place: every extra 100 MB copy costs seconds of page faults on a small VM.
  std::string body;
  body.reserve(kSize + 1024);
  body += kHead + "<p:Win32_Foo xmlns:p='urn:foo'><p:Blob>";
  const std::size_t text_start = body.size();
  body.append(kSize, 'x');
  body.replace(text_start + 12345, 1, "&amp;");  // entities are still decoded in a huge node
  body += "</p:Blob></p:Win32_Foo>" + kTail;
  auto page = winrm::parse_enumeration_response(body);
  REQUIRE(page.has_value());
  const auto& values = page->rows[0].find("Blob")->values;
  REQUIRE(values.size() == 1);
  CHECK(values[0].size() == kSize);
  CHECK(values[0][12345] == '&');
  CHECK(values[0].find_first_not_of('x') == 12345);
}

TEST_CASE("stored_bytes: the parser's estimate of the rows' memory matches a walk over them") {
  // What the rows hold: Row objects, property vectors, and every text byte (values, class
  // names, and property names once per page, as the page's rows share them).
  auto walk = [&](const std::vector<Row>& rows) {
    std::size_t bytes = rows.capacity() * sizeof(Row);
    std::set<std::string_view> names;
    for (const auto& row : rows) {
      bytes += row.class_name().size() + row.properties().capacity() * sizeof(Property);
      for (const auto& property : row.properties()) {
        names.insert(property.name);
        for (const auto& value : property.values) bytes += value.size();
        // Arrays keep their views in an arena block.
        if (property.values.size() > 1) bytes += property.values.size() * sizeof(std::string_view);
      }
    }
    for (auto name : names) bytes += name.size();
    return bytes;
  };
  for (const char* fixture :
       {"enum/txw2008_service_star_p001.xml", "enum/txw2012_os_star_single.xml"}) {
    CAPTURE(fixture);
    auto page = winrm::parse_enumeration_response(read_fixture(fixture));
    REQUIRE(page.has_value());
    const std::size_t walked = walk(page->rows);
    CAPTURE(walked);
    CAPTURE(page->stored_bytes);
    CHECK(walked > 0);
    // Same order of magnitude: the estimate adds block overheads, the name index and the
    // unused tail of the arena's last chunk (at most 64 KiB).
    CHECK(page->stored_bytes >= walked);
    CHECK(page->stored_bytes <= 2 * walked + 64 * 1024);
  }
  // Arrays: every element is counted.
  std::string array;
  for (int i = 0; i < 100; ++i) array += "<p:A>a value longer than sixteen bytes</p:A>";
  auto page = winrm::parse_enumeration_response(envelope_with({array}));
  REQUIRE(page.has_value());
  REQUIRE(page->rows.at(0).find("A")->values.size() == 100);
  CHECK(page->stored_bytes >= 100 * (sizeof(std::string_view) + 37));
}

}  // namespace test_parse_limits
