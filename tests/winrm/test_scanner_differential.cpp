// The single-pass scanner against its oracle, tinyxml2's DOM path: for every fixture, every
// fuzz-corpus input, hand-written edge cases and deterministic mutations of the fixtures,
// parse_enumeration_response (scanner first, DOM where it declines) must give exactly what the
// DOM path alone gives: the same rows, or the same error (kind, message, limit).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "test_envelope_fixtures.h"
#include "winrm/envelope.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_scanner_differential {

using winrm::EnumerationPage;
using winrm::ParseLimits;
using winrm::Property;
using winrm::Row;
using winrm::detail::ParsePath;

namespace {

std::string read_path(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::filesystem::path> files_under(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A printable rendering of a page or an error, compared as one string so a failure shows the
// first difference.
std::string render(const winrm::Result<EnumerationPage>& result) {
  std::ostringstream out;
  if (!result) {
    const auto& error = result.error();
    out << "error kind=" << static_cast<int>(error.kind)
        << " limit=" << winrm::to_string(error.limit) << " fault=" << error.fault.has_value()
        << " message=" << error.message;
    if (error.fault) out << " code=" << error.fault->wsman_code << " text=" << error.fault->message;
    return out.str();
  }
  out << "context=[" << result->context << "] eos=" << result->end_of_sequence << " relates=["
      << result->relates_to << "] rows=" << result->rows.size() << "\n";
  for (const Row& row : result->rows) {
    out << "row class=[" << row.class_name() << "]\n";
    for (const Property& property : row.properties()) {
      out << "  [" << property.name << "] type=" << static_cast<int>(property.type)
          << " nil=" << property.is_null << " values=" << property.values.size();
      for (std::string_view value : property.values) out << " [" << value << "]";
      out << "\n";
    }
  }
  return out.str();
}

// Parses both ways and compares; returns whether the scanner itself accepted the body.
bool check_same(std::string_view body, const ParseLimits& limits = {},
                std::string_view content_type = {}) {
  auto dom =
      winrm::detail::parse_enumeration_response_via(ParsePath::kDom, body, content_type, limits);
  auto automatic =
      winrm::detail::parse_enumeration_response_via(ParsePath::kAuto, body, content_type, limits);
  auto scanner = winrm::detail::parse_enumeration_response_via(ParsePath::kScanner, body,
                                                               content_type, limits);
  REQUIRE(dom.has_value());
  REQUIRE(automatic.has_value());
  CHECK(render(*automatic) == render(*dom));
  // Where the scanner answers (a page, or an error found before parsing), it is the DOM's.
  if (scanner.has_value()) CHECK(render(*scanner) == render(*dom));
  return scanner.has_value();
}

const std::string kHead =
    "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
    "xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing' "
    "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
    "xmlns:w='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd'>"
    "<s:Header><a:RelatesTo>uuid:1</a:RelatesTo></s:Header><s:Body><n:PullResponse>"
    "<n:EnumerationContext>ctx</n:EnumerationContext><n:Items>";
const std::string kTail = "</n:Items><n:EndOfSequence/></n:PullResponse></s:Body></s:Envelope>";

std::string item(std::string_view inner) {
  return "<p:Win32_Foo xmlns:p='urn:foo' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
         "xmlns:cim='http://schemas.dmtf.org/wbem/wscim/1/common'>" +
         std::string(inner) + "</p:Win32_Foo>";
}

}  // namespace

TEST_CASE("every fixture parses the same through the scanner as through tinyxml2") {
  std::size_t accepted = 0;
  std::size_t total = 0;
  for (const char* dir : {"enum", "sim", "faults"}) {
    for (const auto& path : files_under(winrm_test::fixture_path(dir))) {
      if (path.extension() != ".xml") continue;
      CAPTURE(path.string());
      const std::string body = read_path(path);
      const bool scanned = check_same(body);
      ++total;
      accepted += scanned;
      // Every Enumerate/Pull response fixture takes the fast path; faults never do.
      if (std::string_view(dir) == "faults") {
        CHECK_FALSE(scanned);
      } else {
        CHECK(scanned);
      }
      // And with limits that the fixture reaches: both paths give the same limit error.
      ParseLimits tight;
      tight.max_rows = 1;
      tight.max_properties_per_instance = 3;
      tight.max_values_per_property = 1;
      tight.max_attributes_per_element = 2;
      check_same(body, tight);
    }
  }
  MESSAGE(accepted << " of " << total << " fixtures taken by the scanner");
  CHECK(accepted > 80);
}

TEST_CASE("the fuzz corpus parses the same both ways") {
  const auto dir =
      std::filesystem::path(WINRM_SOURCE_DIR) / "fuzz" / "corpus" / "fuzz_enumeration_response";
  std::size_t count = 0;
  for (const auto& path : files_under(dir)) {
    CAPTURE(path.string());
    check_same(read_path(path));
    ++count;
  }
  CHECK(count > 10);
}

TEST_CASE("edge cases of text, markup and namespaces parse the same both ways") {
  const std::vector<std::string> inners = {
      // text shapes
      "<p:A>plain</p:A><p:B></p:B><p:C/><p:D> </p:D><p:E>\t\n\v\f</p:E>",
      "<p:A> lead and trail </p:A><p:B>a<!--c-->b</p:B><p:C>x <!-- c --> </p:C>",
      "<p:A><![CDATA[ raw <x> &amp; ]]></p:A><p:B><![CDATA[]]></p:B><p:C>a<![CDATA[b]]>c</p:C>",
      "<p:A><![CDATA[ ]]></p:A><p:B> <![CDATA[x]]> </p:B>",
      "<p:A>&lt;&gt;&amp;&quot;&apos;</p:A><p:B>a &amp; b</p:B><p:C>&amp;</p:C>",
      "<p:A>&amp</p:A>",
      "<p:A>&foo;</p:A>",
      "<p:A>x&amp;&foo;y</p:A>",
      "<p:A>&</p:A>",
      "<p:A>&lt;<!--c-->&gt;</p:A>",
      // line ends: CR LF, LF CR, lone CR, in text, CDATA, objects, Datetime and attributes
      "<p:A>a\r\nb\n\rc\rd\r\r\n\n\n\r</p:A><p:B><![CDATA[x\r\ny\r]]></p:B><p:C>\r\n</p:C>",
      "<p:A>&amp;\r\n</p:A><p:O>a\r\n<x>b\rc</x></p:O>"
      "<p:T><cim:Datetime>\r\n2013-03-09T02:57:32Z\r</cim:Datetime></p:T>",
      "<p:A\r\nx='1'\r>v</p:A><p:B x='a\r\nb'>v</p:B>",
      // arrays, repeats, case
      "<p:A>1</p:A><p:A>2</p:A><p:A>3</p:A><p:B>x</p:B><p:A>4</p:A><p:a>5</p:a>",
      // nil
      "<p:A xsi:nil='true'/><p:B xsi:nil=' 1 '>text</p:B><p:C xsi:nil='false'>v</p:C>"
      "<p:D nil='true'>d</p:D><p:E q:nil='true' "
      "xmlns:q='http://www.w3.org/2001/XMLSchema-instance'/>"
      "<p:F xmlns:xsi='urn:other' xsi:nil='true'>f</p:F><p:G xsi:nil='true'/><p:G>g</p:G>",
      // Datetime, Interval, objects
      "<p:T><cim:Datetime>2013-03-09T02:57:32.5-08:00</cim:Datetime></p:T>"
      "<p:I><cim:Interval> P1DT2H </cim:Interval></p:I>",
      "<p:T>before<cim:Datetime> 2013-<![CDATA[03]]>-09T00:00:00Z<x>in</x> </cim:Datetime>after"
      "<cim:Datetime>second</cim:Datetime></p:T>",
      "<p:O><a:Address>http://x/</a:Address><a:ReferenceParameters><w:ResourceURI>uri"
      "</w:ResourceURI><w:SelectorSet><w:Selector Name='a'>  v  1 </w:Selector></w:SelectorSet>"
      "</a:ReferenceParameters></p:O>",
      "<p:O> lead  text <x>in <![CDATA[ c  d ]]> </x> tail <!--c--> more</p:O>",
      "<p:O>a<x/>b</p:O><p:P><x/></p:P><p:Q><Datetime/></p:Q>",
      // attributes and odd spacing
      "<p:A  x = '1'  y=\"2\" >v</p:A ><p:B x='&lt;'>v</p:B><p:C x='a>b'>v</p:C>",
      "<p:A x='1'y='2'>v</p:A>",
      "<p:A x='1' x='2'>v</p:A>",
      "<p:A/ >",
      "< p:A/>",
      "<p:A></p:A x='1'>",
      // names
      "<p:\xC3\xA9t\xC3\xA9>v</p:\xC3\xA9t\xC3\xA9><p:a.b-c_d>v</p:a.b-c_d><p:x:y>v</p:x:y>",
      "<1A>v</1A>",
      "<p:A>v</p:a>",
      // nesting
      "<p:A><b><c><d><e>deep</e></d></c></b></p:A>",
  };
  for (const std::string& inner : inners) {
    CAPTURE(inner);
    check_same(kHead + item(inner) + kTail);
    check_same(kHead + item(inner) + item(inner) + kTail);
  }

  const std::vector<std::string> documents = {
      // prolog and epilog
      "<?xml version='1.0'?>" + kHead + kTail,
      "<?xml version='1.0'?><?pi x?>\n" + kHead + kTail + "\n<!-- after -->\n",
      "<!-- c --><?xml version='1.0'?>" + kHead + kTail,
      "<!DOCTYPE x>" + kHead + kTail,
      "junk" + kHead + kTail,
      kHead + kTail + "junk",
      kHead + kTail + "<x/>",
      kHead + kTail + "<?pi?>",
      "  \xEF\xBB\xBF" + kHead + kTail,
      "<![CDATA[x]]>" + kHead + kTail,
      kHead + kTail + "</x>",
      // envelope structure
      "<Envelope>" + kTail,
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'/>",
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body/></s:Envelope>",
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><x/></s:Body>"
      "</s:Envelope>",
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration'><s:Body>text<!--c-->"
      "<n:EnumerateResponse/><n:PullResponse><n:Items><p:X xmlns:p='u'/></n:Items>"
      "</n:PullResponse></s:Body><s:Body><n:PullResponse/></s:Body></s:Envelope>",
      // two Headers, two RelatesTo, RelatesTo with entities and CDATA, after the Body
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:a='http://schemas.xmlsoap.org/ws/2004/08/addressing' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration'><s:Body><n:PullResponse>"
      "<n:EnumerationContext> a&amp;b <x>no</x><![CDATA[c]]> </n:EnumerationContext>"
      "<n:EnumerationContext>second</n:EnumerationContext></n:PullResponse></s:Body>"
      "<s:Header><a:RelatesTo> r1 <!--c-->r2 </a:RelatesTo><a:RelatesTo>no</a:RelatesTo>"
      "</s:Header><s:Header><a:RelatesTo>no</a:RelatesTo></s:Header></s:Envelope>",
      // Items and EndOfSequence in w:, several Items, XmlFragment rows, a default namespace
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope' "
      "xmlns:n='http://schemas.xmlsoap.org/ws/2004/09/enumeration' "
      "xmlns:w='http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd'><s:Body><n:EnumerateResponse>"
      "<w:Items><w:XmlFragment><Name>a</Name><Size>1</Size></w:XmlFragment></w:Items>"
      "<n:Items><Win32_Bar xmlns='urn:bar'><C>3</C></Win32_Bar>text</n:Items>"
      "<x:Items xmlns:x='urn:other'><p:Z xmlns:p='u'/></x:Items><w:EndOfSequence/>"
      "</n:EnumerateResponse></s:Body></s:Envelope>",
      // a fault, an unexpected body element
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body><s:Fault>"
      "<s:Reason><s:Text>no</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>",
      // prefixes rebound inside the response
      "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Body>"
      "<s:PullResponse xmlns:s='http://schemas.xmlsoap.org/ws/2004/09/enumeration'>"
      "<s:Items><s:Thing><s:A>1</s:A></s:Thing></s:Items></s:PullResponse></s:Body></s:Envelope>",
      // truncated and unclosed
      kHead + item("<p:A>1</p:A>"),
      kHead + item("<p:A>1"),
      kHead + "<",
      "<",
      kHead + item("<p:A><!-- open") + kTail,
      kHead + item("<p:A><![CDATA[ open") + kTail,
  };
  for (const std::string& document : documents) {
    CAPTURE(document);
    check_same(document);
  }
}

TEST_CASE("mutated fixtures parse the same both ways") {
  // Deterministic, bounded mutations of real pages: truncations, deleted and inserted bytes at
  // spread positions. Each body is parsed three ways; ~2,400 bodies of a few KiB.
  const std::vector<std::string> fixtures = {"enum/txw2012_os_star_single.xml",
                                             "enum/txw2008_service_star_p001.xml",
                                             "enum/txw2012_nicconfig_star_p001.xml",
                                             "enum/opennms_logicaldisk_fragment_pull_last_deDE.xml",
                                             "sim/process_0_p001.xml",
                                             "enum/txw2012_logicaldisk_fragment_single.xml"};
  const std::vector<std::string> inserts = {"<",   ">",   "&",    "&amp;",    " ",
                                            "/",   "'",   "\"",   "=",        "<!--x-->",
                                            "]]>", "<x>", "</x>", "\xC3\xA9", ":"};
  std::size_t bodies = 0;
  for (const std::string& fixture : fixtures) {
    const std::string body = winrm_test::read_fixture(fixture);
    const std::size_t step = std::max<std::size_t>(1, body.size() / 25);
    for (std::size_t at = 0; at < body.size(); at += step) {
      CAPTURE(fixture);
      CAPTURE(at);
      check_same(body.substr(0, at));
      std::string deleted = body;
      deleted.erase(at, 1);
      check_same(deleted);
      for (const std::string& insert : inserts) {
        std::string inserted = body;
        inserted.insert(at, insert);
        check_same(inserted);
        ++bodies;
      }
    }
  }
  CHECK(bodies > 1000);
}

}  // namespace test_scanner_differential
