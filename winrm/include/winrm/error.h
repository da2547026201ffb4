// Error values for every I/O path of the WinRM client. Exceptions are reserved for
// bugs and start-up configuration; anything a remote host can cause is an Error.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace winrm {

enum class ErrorKind {
  kTransport,   // connect/read/write failures, connection closed, response over the size cap
  kTls,         // handshake or certificate verification failure
  kAuth,        // 401, rejected credentials, Kerberos/NTLM failures
  kHttp,        // unexpected HTTP status without a parsable SOAP fault
  kWsmanFault,  // a SOAP fault from the WinRM service (see Fault)
  kParse,       // malformed XML or an envelope that is not what WS-Man says
  kTimeout,     // the per-operation deadline elapsed (including trickling servers)
  kCancelled,   // the process is shutting down (EndpointOptions::cancel): not the host's fault
};
// Counted from the last kind (per-kind arrays are sized by it): a new kind goes before
// kCancelled or moves this expression; to_string's exhaustive switch flags a forgotten one.
inline constexpr int kErrorKindCount = static_cast<int>(ErrorKind::kCancelled) + 1;

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

// Which bound of the client a poll ran into, so callers name the config key without
// reading message text.
enum class Limit {
  kNone,
  kResponseBytes,  // one HTTP response body (EndpointOptions / limits.max_response_bytes)
  kHeaderBytes,    // response head bytes (max_header_bytes)
  kHeaderLine,     // one response header line over libcurl's CURL_MAX_HTTP_HEADER
  kHeaderCount,    // response header lines (max_header_count)
  kPollBytes,      // bytes received + rows held by one poll (limits.max_poll_bytes)
  kRows,           // instances of one page (ParseLimits::max_rows) or poll (max_rows_per_poll)
  kProperties,     // properties of one instance (max_properties_per_instance)
  kValues,         // elements of one array property (max_values_per_property)
  kAttributes,     // attributes of one XML element (max_attributes_per_element)
  kDepth,          // XML element nesting (TINYXML2_MAX_ELEMENT_DEPTH)
  kPages,          // pages of one enumeration
};
std::string_view to_string(Limit limit);  // "max_rows", ...; "" for kNone

// Why an authentication failed (ErrorKind::kAuth), for metrics and troubleshooting.
enum class AuthErrorClass {
  kNoCredentials,       // no keytab/password/cache, or no usable ticket in it
  kKdcUnreachable,      // KDC down or not configured for the realm
  kClockSkew,           // clocks differ by more than clockskew
  kPrincipalUnknown,    // client or service principal (SPN) not in the KDC database
  kCredentialsInvalid,  // wrong keytab/password: preauthentication failed
  kServerRejected,      // the server refused our token, or mutual auth failed
  kOther,
};
// kOther stays last: the count (and the per-class arrays) follow from it.
inline constexpr int kAuthErrorClassCount = static_cast<int>(AuthErrorClass::kOther) + 1;
std::string_view to_string(AuthErrorClass error_class);  // "clock_skew", ...

struct Error {
  Error() = default;
  Error(ErrorKind kind_, std::string message_, int http_status_ = 0,
        std::optional<Fault> fault_ = std::nullopt, Limit limit_ = Limit::kNone)
      : kind(kind_),
        message(std::move(message_)),
        http_status(http_status_),
        fault(std::move(fault_)),
        limit(limit_) {}

  ErrorKind kind = ErrorKind::kTransport;
  std::string message;                       // never contains credentials or Authorization headers
  int http_status = 0;                       // 0 when no HTTP response was read
  std::optional<Fault> fault;                // set for kWsmanFault
  Limit limit = Limit::kNone;                // set when a bound of ours ended the poll
  bool cancelled = false;                    // kind is kCancelled: the process is shutting down
  std::optional<AuthErrorClass> auth_class;  // set by the Kerberos/NTLM layer (kAuth)

  // "wsman_fault (2150858778 CannotProcessFilter): The specified class does not exist."
  std::string describe() const;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> make_error(ErrorKind kind, std::string message, int http_status = 0) {
  return std::unexpected(Error{kind, std::move(message), http_status, std::nullopt});
}

inline std::unexpected<Error> make_limit_error(ErrorKind kind, Limit limit, std::string message,
                                               int http_status = 0) {
  return std::unexpected(Error{kind, std::move(message), http_status, std::nullopt, limit});
}

// Errors of the Kerberos/NTLM layer: ErrorKind::kAuth with Error::auth_class set and
// message "<class>: <detail>". auth_error_class returns the class (nullopt for other errors).
std::optional<AuthErrorClass> auth_error_class(const Error& error);
std::unexpected<Error> make_auth_error(AuthErrorClass error_class, std::string_view detail,
                                       int http_status = 0);

}  // namespace winrm
