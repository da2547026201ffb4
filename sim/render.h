// SOAP response rendering, byte-for-byte in the shapes the Windows captures show.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inventory.h"

namespace sim::render {

inline constexpr std::string_view kWqlDialect = "http://schemas.microsoft.com/wbem/wsman/1/WQL";
inline constexpr std::string_view kWmiResourcePrefix =
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/";

std::string new_uuid();  // upper-case, without "uuid:"

// One item of a SELECT * answer: <p:Class xmlns:p=".../root/cimv2/Class" ...>.
void append_instance(std::string& out, const ClassDef& cls, const Instance& inst);
// One item of a projection: <w:XmlFragment> with unqualified children; `props` are
// property indexes already in alphabetical (class) order.
void append_fragment(std::string& out, const ClassDef& cls, const Instance& inst,
                     const std::vector<int>& props);

// `context` empty = the empty <n:EnumerationContext/> Windows sends when everything fit.
std::string enumerate_response(std::string_view relates_to, std::string_view context,
                               std::string_view items, bool has_items, bool end_of_sequence,
                               std::string_view lang);
// `context` empty = no EnumerationContext element (last page).
std::string pull_response(std::string_view relates_to, std::string_view context,
                          std::string_view items, bool end_of_sequence, std::string_view lang);
std::string release_response(std::string_view relates_to, std::string_view lang);

enum class FaultKind {
  kAccessDenied,
  kInvalidClass,  // CannotProcessFilter, class not found
  kInvalidQuery,  // CannotProcessFilter, WQL parse error
  kInvalidResourceUri,
  kQuotaExceeded,
  kTimedOut,        // w:TimedOut 2150858793
  kContextExpired,  // n:InvalidEnumerationContext 2150858779
  kMaxEnvelope,     // 2150858824
  kInvalidSelectors,
  kInvalidHeader,     // a:InvalidMessageInformationHeader 2150858767 (bad OperationTimeout)
  kSchemaValidation,  // malformed request, unsupported action/dialect
};

std::optional<FaultKind> fault_from_name(std::string_view name);

// detail: the WQL (invalid class), the parse message (invalid query) or a header value.
std::string fault(FaultKind kind, std::string_view relates_to, std::string_view machine,
                  std::string_view detail, std::string_view lang);

}  // namespace sim::render
