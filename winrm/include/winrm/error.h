// Error values for every I/O path of the WinRM client. Exceptions are reserved for
// bugs and start-up configuration; anything a remote host can cause is an Error.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace winrm {

enum class ErrorKind {
  kTransport,   // connect/read/write failures, connection closed, response over the size cap
  kTls,         // handshake or certificate verification failure
  kAuth,        // 401, rejected credentials, Kerberos/NTLM failures
  kHttp,        // unexpected HTTP status without a parsable SOAP fault
  kWsmanFault,  // a SOAP fault from the WinRM service (see Fault)
  kParse,       // malformed XML or an envelope that is not what WS-Man says
  kTimeout,     // the per-operation deadline elapsed (including trickling servers)
};
inline constexpr int kErrorKindCount = 7;

// Stable snake_case label for metrics and logs ("wsman_fault", "tls", ...).
std::string_view to_string(ErrorKind kind);

// A parsed SOAP fault. Texts are localised by the server (w:Locale): key logic on
// wsman_code, never on message.
struct Fault {
  std::string code;              // s:Code/s:Value, e.g. "s:Sender"
  std::string subcode;           // s:Subcode/s:Value local name, e.g. "CannotProcessFilter"
  std::uint64_t wsman_code = 0;  // f:WSManFault/@Code or MSFT_WmiError/error_Code
  std::string machine;           // f:WSManFault/@Machine
  std::string message;           // innermost provider message, else s:Reason/s:Text, trimmed
  std::string fault_detail;      // w:FaultDetail URI when present
};

// What a caller should do about a fault; derived from wsman_code and subcode.
enum class FaultClass {
  kAccessDenied,
  kInvalidClass,          // CannotProcessFilter: bad WQL or unknown class
  kInvalidResourceUri,    // unknown WMI namespace
  kTimedOut,              // w:TimedOut / n:TimedOut: retry the Pull with its context
  kQuotaExceeded,         // MaxConcurrentOperationsPerUser / shells quota: back off
  kContextExpired,        // n:InvalidEnumerationContext, or invalid after a failed Pull:
                          // restart the enumeration once
  kMaxEnvelopeExceeded,   // response larger than MaxEnvelopeSize: fewer MaxElements
  kEnvelopeSizeTooLarge,  // 2150858823: the MaxEnvelopeSize we asked for is over the
                          // server's MaxEnvelopeSizekb: ask again with a smaller one
  kOther,
};
FaultClass classify(const Fault& fault);
std::string_view to_string(FaultClass fault_class);

// What an operator can do about a fault ("winrm set winrm/config/Service @{...}"), or
// empty. Part of describe(); never contains anything the server sent.
std::string_view remedy(const Fault& fault);

struct Error {
  ErrorKind kind = ErrorKind::kTransport;
  std::string message;         // never contains credentials or Authorization headers
  int http_status = 0;         // 0 when no HTTP response was read
  std::optional<Fault> fault;  // set for kWsmanFault

  // "wsman_fault (2150858778 CannotProcessFilter): The specified class does not exist."
  std::string describe() const;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> make_error(ErrorKind kind, std::string message, int http_status = 0) {
  return std::unexpected(Error{kind, std::move(message), http_status, std::nullopt});
}

}  // namespace winrm
