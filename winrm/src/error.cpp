#include "winrm/error.h"

#include <algorithm>
#include <array>
#include <string>

namespace winrm {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTransport:
      return "transport";
    case ErrorKind::kTls:
      return "tls";
    case ErrorKind::kAuth:
      return "auth";
    case ErrorKind::kHttp:
      return "http";
    case ErrorKind::kWsmanFault:
      return "wsman_fault";
    case ErrorKind::kParse:
      return "parse";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view to_string(Limit limit) {
  switch (limit) {
    case Limit::kNone:
      return "";
    case Limit::kResponseBytes:
      return "max_response_bytes";
    case Limit::kHeaderBytes:
      return "max_header_bytes";
    case Limit::kHeaderLine:
      return "max_header_line";
    case Limit::kHeaderCount:
      return "max_header_count";
    case Limit::kPollBytes:
      return "max_poll_bytes";
    case Limit::kRows:
      return "max_rows";
    case Limit::kProperties:
      return "max_properties_per_instance";
    case Limit::kValues:
      return "max_values_per_property";
    case Limit::kAttributes:
      return "max_attributes_per_element";
    case Limit::kDepth:
      return "max_element_depth";
    case Limit::kPages:
      return "max_pages";
  }
  return "";
}

std::string_view to_string(FaultClass fault_class) {
  switch (fault_class) {
    case FaultClass::kAccessDenied:
      return "access_denied";
    case FaultClass::kInvalidClass:
      return "invalid_class";
    case FaultClass::kInvalidResourceUri:
      return "invalid_resource_uri";
    case FaultClass::kTimedOut:
      return "timed_out";
    case FaultClass::kQuotaExceeded:
      return "quota_exceeded";
    case FaultClass::kContextExpired:
      return "context_expired";
    case FaultClass::kMaxEnvelopeExceeded:
      return "max_envelope_exceeded";
    case FaultClass::kEnvelopeSizeTooLarge:
      return "envelope_size_too_large";
    case FaultClass::kOther:
      return "other";
  }
  return "other";
}

namespace {

// WSManFault codes from wsmerror.h (see the protocol notes, section 4).
std::optional<FaultClass> classify_code(std::uint64_t code) {
  switch (code) {
    case 5:           // ERROR_ACCESS_DENIED
    case 2147942405:  // 0x80070005 E_ACCESSDENIED
      return FaultClass::kAccessDenied;
    case 2150858778:  // 0x8033801A ERROR_WSMAN_CANNOT_PROCESS_FILTER
      return FaultClass::kInvalidClass;
    case 2150858752:  // 0x80338000 ERROR_WSMAN_RESOURCE_NOT_FOUND
      return FaultClass::kInvalidResourceUri;
    case 2150858793:  // 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT
    case 2150858780:  // 0x8033801C enumeration pull timed out, context still valid
      return FaultClass::kTimedOut;
    case 2150858815:  // 0x8033803F ERROR_WSMAN_QUOTA_LIMIT
    case 2150859173:  // 0x803381A5 ERROR_WSMAN_QUOTA_MAX_SHELLS
    case 2150859174:  // 0x803381A6 ERROR_WSMAN_QUOTA_MAX_OPERATIONS
    case 2150859175:  // 0x803381A7 ERROR_WSMAN_QUOTA_USER
    case 2150859176:  // 0x803381A8 ERROR_WSMAN_QUOTA_SYSTEM
    case 2150859179:  // 0x803381AB ERROR_WSMAN_QUOTA_MAX_SHELLUSERS
    case 2150859236:  // 0x803381E4..E9: plugin ("PPQ") quotas
    case 2150859237:
    case 2150859238:
    case 2150859239:
    case 2150859240:
    case 2150859241:
      return FaultClass::kQuotaExceeded;
    case 2150858779:  // 0x8033801B ERROR_WSMAN_INVALID_CONTEXT
    case 2150858884:  // 0x80338084 ERROR_WSMAN_ENUMERATION_INVALID: "previous Pull failed"
      return FaultClass::kContextExpired;
    case 2150858824:  // 0x80338048 response exceeds the request's MaxEnvelopeSize
    case 2150858825:  // 0x80338049 response exceeds the service's envelope limit
      return FaultClass::kMaxEnvelopeExceeded;
    case 2150858823:  // 0x80338047 ERROR_WSMAN_MAX_ENVELOPE_SIZE: requested size too large
      return FaultClass::kEnvelopeSizeTooLarge;
    default:
      return std::nullopt;
  }
}

bool ends_with_ci(std::string_view text, std::string_view suffix) {
  if (text.size() < suffix.size()) return false;
  text = text.substr(text.size() - suffix.size());
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    char a = text[i], b = suffix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

}  // namespace

std::string_view remedy(const Fault& fault) {
  switch (fault.wsman_code) {
    case 2150859173:
      return "raise the quota on the host: winrm set winrm/config/winrs "
             "@{MaxShellsPerUser=\"30\"}";
    case 2150859176:
      return "raise the quota on the host: winrm set winrm/config/Service "
             "@{MaxConcurrentOperations=\"4294967295\"}";
    case 2150859239:
    case 2150859240:
      return "raise the WMI plugin quota on the host: winrm set "
             "\"winrm/config/Plugin/WMI Provider/Quotas\" "
             "@{MaxConcurrentOperationsPerUser=\"1500\"}, or lower per_target_concurrency";
    default:
      break;
  }
  switch (classify(fault)) {
    case FaultClass::kQuotaExceeded:
      // 15 on Windows Server 2008 R2, 1500 from 2012 on.
      return "raise the quota on the host: winrm set winrm/config/Service "
             "@{MaxConcurrentOperationsPerUser=\"1500\"}, or lower per_target_concurrency";
    case FaultClass::kMaxEnvelopeExceeded:
      return "raise winrm.max_envelope_size (the host's limit: winrm set winrm/config "
             "@{MaxEnvelopeSizekb=\"500\"}) or lower winrm.max_elements";
    case FaultClass::kEnvelopeSizeTooLarge:
      return "lower winrm.max_envelope_size to the host's MaxEnvelopeSizekb x 1024 "
             "(150 KiB = 153600 on Windows Server 2008 R2)";
    default:
      return {};
  }
}

FaultClass classify(const Fault& fault) {
  if (auto by_code = classify_code(fault.wsman_code)) return *by_code;
  // Subcode may still carry a prefix if a caller filled the Fault by hand.
  std::string_view subcode = fault.subcode;
  if (auto colon = subcode.rfind(':'); colon != std::string_view::npos) {
    subcode = subcode.substr(colon + 1);
  }
  if (subcode == "AccessDenied") return FaultClass::kAccessDenied;
  if (subcode == "CannotProcessFilter") return FaultClass::kInvalidClass;
  if (subcode == "TimedOut") return FaultClass::kTimedOut;
  if (subcode == "QuotaLimit") return FaultClass::kQuotaExceeded;
  if (subcode == "InvalidEnumerationContext") return FaultClass::kContextExpired;
  if (subcode == "DestinationUnreachable" &&
      ends_with_ci(fault.fault_detail, "InvalidResourceURI")) {
    return FaultClass::kInvalidResourceUri;
  }
  // DSP0226: EncodingLimit + faultDetail/MaxEnvelopeSize = the response would not fit.
  if (subcode == "EncodingLimit" && (ends_with_ci(fault.fault_detail, "MaxEnvelopeSize") ||
                                     ends_with_ci(fault.fault_detail, "MaxEnvelopeSizeExceeded"))) {
    return FaultClass::kMaxEnvelopeExceeded;
  }
  return FaultClass::kOther;
}

namespace {

constexpr std::size_t kMaxDescribedMessage = 512;

// One line, control characters dropped, whitespace collapsed, bounded in length so a
// hostile server cannot flood the logs. Cuts on a UTF-8 character boundary.
std::string sanitize_for_log(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxDescribedMessage) + 3);
  bool pending_space = false;
  bool truncated = false;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) {
      pending_space = !out.empty();
      continue;
    }
    if (out.size() + (pending_space ? 1 : 0) >= kMaxDescribedMessage) {
      truncated = true;
      break;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  if (truncated && !out.empty()) {
    // Drop a trailing incomplete UTF-8 sequence so no character is split.
    std::size_t start = out.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(out[start]) & 0xC0) == 0x80) --start;
    auto lead = static_cast<unsigned char>(out[start]);
    std::size_t length = lead < 0x80    ? 1
                         : lead >= 0xF0 ? 4
                         : lead >= 0xE0 ? 3
                         : lead >= 0xC0 ? 2
                                        : 1;
    if (start + length > out.size()) out.resize(start);
    out += "...";
  }
  return out;
}

}  // namespace

std::string Error::describe() const {
  std::string out{to_string(kind)};
  if (fault) {
    out += ' ';
    out += std::to_string(fault->wsman_code);
    out += " (";
    out += sanitize_for_log(fault->subcode.empty() ? fault->code : fault->subcode);
    out += ", ";
    out += to_string(classify(*fault));
    out += ")";
    const std::string& text = fault->message.empty() ? message : fault->message;
    if (!text.empty()) {
      out += ": ";
      out += sanitize_for_log(text);
    }
    if (auto hint = remedy(*fault); !hint.empty()) {
      out += " (";
      out += hint;
      out += ")";
    }
    if (http_status != 0) out += " [HTTP " + std::to_string(http_status) + "]";
    return out;
  }
  if (http_status != 0) out += " (HTTP " + std::to_string(http_status) + ")";
  if (!message.empty()) {
    out += ": ";
    out += sanitize_for_log(message);
  }
  return out;
}

namespace {
constexpr std::array<std::string_view, kAuthErrorClassCount> kClassNames = {
    "no_credentials",      "kdc_unreachable", "clock_skew", "principal_unknown",
    "credentials_invalid", "server_rejected", "other"};
}  // namespace

std::string_view to_string(AuthErrorClass error_class) {
  return kClassNames[static_cast<int>(error_class)];
}

std::optional<AuthErrorClass> auth_error_class(const Error& error) {
  if (error.kind != ErrorKind::kAuth) return std::nullopt;
  return error.auth_class;
}

std::unexpected<Error> make_auth_error(AuthErrorClass error_class, std::string_view detail,
                                       int http_status) {
  auto error =
      make_error(ErrorKind::kAuth, std::string(to_string(error_class)) + ": " + std::string(detail),
                 http_status);
  error.error().auth_class = error_class;
  return error;
}

}  // namespace winrm
