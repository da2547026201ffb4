// WS-Management SOAP envelopes: building Enumerate/Pull/Release requests and parsing
// their responses and faults. Pure functions, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
std::string new_message_id();

// Appends text escaped as XML character data or attribute value (&, <, >, ", ');
// C0 controls XML 1.0 cannot carry (other than tab, LF, CR) are dropped.
void append_xml_escaped(std::string& out,
                        std::string_view text);  // "uuid:" + random upper-case UUID v4

std::string build_enumerate(const RequestOptions& options, std::string_view wql);
std::string build_pull(const RequestOptions& options, std::string_view context);
std::string build_release(const RequestOptions& options, std::string_view context);

// One EnumerateResponse or PullResponse.
struct EnumerationPage {
  std::string context;  // empty when absent or empty: nothing more to pull
  std::vector<Row> rows;
  bool end_of_sequence = false;
  std::string relates_to;  // a:RelatesTo, to check against the request MessageID

  bool done() const { return end_of_sequence || context.empty(); }
};

// Parses an EnumerateResponse/PullResponse. A body that is a SOAP fault yields a
// kWsmanFault error carrying the parsed Fault; malformed XML yields kParse.
Result<EnumerationPage> parse_enumeration_response(std::string_view body);

// Parses a SOAP fault envelope (nullopt-equivalent: kParse error when body is not a fault).
Result<Fault> parse_fault(std::string_view body);

}  // namespace winrm
