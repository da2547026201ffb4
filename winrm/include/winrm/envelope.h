// WS-Management SOAP envelopes: building Enumerate/Pull/Release requests and parsing
// their responses and faults. Pure functions, no I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "winrm/error.h"
#include "winrm/row.h"

namespace winrm {

inline constexpr std::string_view kWqlDialect = "http://schemas.microsoft.com/wbem/wsman/1/WQL";

struct RequestOptions {
  std::string endpoint_url;                  // a:To, e.g. "https://host:5986/wsman"
  std::string wmi_namespace = "root/cimv2";  // "root/cimv2", "root\\wmi" accepted
  std::uint32_t max_envelope_size = 512000;  // response bytes we accept (w:MaxEnvelopeSize)
  std::uint32_t max_elements = 32000;        // items per page
  std::chrono::milliseconds operation_timeout{20000};  // w:OperationTimeout
  std::string locale = "en-US";
  std::string message_id;  // "uuid:..."; generated when empty
  std::string session_id;  // optional p:SessionId ("uuid:..."), omitted when empty
};

// "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*"
std::string resource_uri_for(std::string_view wmi_namespace);
std::string new_message_id();  // "uuid:" + random upper-case UUID v4

// XML escaping for envelopes (and the simulator's responses): one copy, in common/.
using common::append_xml_escaped;

std::string build_enumerate(const RequestOptions& options, std::string_view wql);
std::string build_pull(const RequestOptions& options, std::string_view context);
std::string build_release(const RequestOptions& options, std::string_view context);

// One EnumerateResponse or PullResponse.
struct EnumerationPage {
  std::string context;  // empty when absent or empty: nothing more to pull
  std::vector<Row> rows;
  bool end_of_sequence = false;
  std::string relates_to;  // a:RelatesTo, to check against the request MessageID
  // Estimated heap memory the rows hold (the Row objects, their property vectors and name
  // indexes, the page's TextArena chunks, malloc block overhead), summed while parsing so that
  // Session's limits.max_poll_bytes needs no second walk over every value.
  std::size_t stored_bytes = 0;

  bool done() const { return end_of_sequence || context.empty(); }
};

// Bounds on what one response may make the parser build, so a hostile or broken host
// costs bounded memory and time per poll. Exceeding one is a kParse error naming it, e.g.
// "instance has more than 10000 properties (max_properties_per_instance)". Independently,
// elements nested deeper than 100 levels (tinyxml2's TINYXML2_MAX_ELEMENT_DEPTH) are a
// kParse error, and the body size is the caller's cap (Transport).
struct ParseLimits {
  std::size_t max_rows = 100000;  // instances in one page (Session sums its pages against it)
  std::size_t max_properties_per_instance = 10000;  // distinct properties of one instance
  std::size_t max_values_per_property = 100000;     // elements of one array property
  // Attributes on one element. WMI sends at most a handful; the bound exists because
  // tinyxml2 checks each new attribute against all earlier ones of its element (quadratic),
  // so it also caps the parse cost per byte.
  std::size_t max_attributes_per_element = 64;
};

// Parses an EnumerateResponse/PullResponse. A body that is a SOAP fault yields a
// kWsmanFault error carrying the parsed Fault; malformed XML yields kParse.
// `content_type` is the response's Content-Type header: its charset (UTF-8, UTF-16LE/BE,
// see charset.h) decides the decoding; empty means UTF-8 unless a byte order mark says
// otherwise. Values are valid UTF-8 (invalid sequences become U+FFFD). Time and memory are
// linear in the body size.
Result<EnumerationPage> parse_enumeration_response(std::string_view body,
                                                   std::string_view content_type = {},
                                                   const ParseLimits& limits = {});

namespace detail {
// Which parser parse_enumeration_response runs, for tests and bench/parse_bench only. kAuto
// (what parse_enumeration_response does): the single-pass scanner, and tinyxml2's DOM for any
// body the scanner declines (faults, malformed or unusual XML, limits). kDom: tinyxml2 alone,
// the reference. kScanner: the scanner alone; nullopt where it declines.
enum class ParsePath { kAuto, kDom, kScanner };
std::optional<Result<EnumerationPage>> parse_enumeration_response_via(
    ParsePath path, std::string_view body, std::string_view content_type = {},
    const ParseLimits& limits = {});
}  // namespace detail

// Parses a SOAP fault envelope (nullopt-equivalent: kParse error when body is not a fault).
Result<Fault> parse_fault(std::string_view body, std::string_view content_type = {});

}  // namespace winrm
