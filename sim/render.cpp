#include "render.h"

#include <random>

#include "winrm/envelope.h"

namespace sim::render {
namespace {

// The client library's escaper: one definition of what XML text may carry.
using winrm::append_xml_escaped;

constexpr std::string_view kEnvelopeOpen =
    "xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
    "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
    "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
    "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" "
    "xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">";
constexpr std::string_view kFaultEnvelopeOpen =
    "xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
    "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
    "xmlns:x=\"http://schemas.xmlsoap.org/ws/2004/09/transfer\" "
    "xmlns:e=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\" "
    "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
    "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" "
    "xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">";
constexpr std::string_view kXsi = "http://www.w3.org/2001/XMLSchema-instance";
constexpr std::string_view kCim = "http://schemas.dmtf.org/wbem/wscim/1/common";
constexpr std::string_view kAnonymous =
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

void append_header(std::string& out, std::string_view env_open, std::string_view action,
                   std::string_view relates_to, std::string_view lang) {
  out += "<s:Envelope xml:lang=\"";
  append_xml_escaped(out, lang.empty() ? "en-US" : lang);
  out += "\" ";
  out += env_open;
  out += "<s:Header><a:Action>";
  out += action;
  out += "</a:Action><a:MessageID>uuid:";
  out += new_uuid();
  out += "</a:MessageID><p:ActivityId>";
  out += new_uuid();
  out += "</p:ActivityId><a:To>";
  out += kAnonymous;
  out += "</a:To>";
  if (!relates_to.empty()) {
    out += "<a:RelatesTo>";
    append_xml_escaped(out, relates_to);
    out += "</a:RelatesTo>";
  }
  out += "</s:Header><s:Body>";
}

// Value children; `prefix` is "p:" for SELECT * and "" for fragments.
void append_properties(std::string& out, const ClassDef& cls, const Instance& inst, int index,
                       std::string_view prefix) {
  const std::string& name = cls.properties[static_cast<std::size_t>(index)];
  const Value& v = inst.values[static_cast<std::size_t>(index)];
  if (v.is_null()) {
    out += '<';
    out += prefix;
    out += name;
    out += " xsi:nil=\"true\"/>";
    return;
  }
  for (const auto& item : v.items) {
    out += '<';
    out += prefix;
    out += name;
    out += '>';
    if (v.kind == ValueKind::kDatetime) {
      out += prefix.empty() ? "<Datetime>" : "<cim:Datetime>";
      append_xml_escaped(out, item);
      out += prefix.empty() ? "</Datetime>" : "</cim:Datetime>";
    } else {
      append_xml_escaped(out, item);
    }
    out += "</";
    out += prefix;
    out += name;
    out += '>';
  }
}

struct FaultShape {
  std::string_view action;
  std::string_view code;
  std::string_view subcode;
  std::string_view reason;
  std::string_view fault_detail;  // optional w:FaultDetail
  unsigned long long wsman_code;
  bool provider_fault;       // nest the message in a WMI ProviderFault like the WMI plugin does
  std::string_view message;  // inner message; empty = reason
};

constexpr std::string_view kEnumFault = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault";
constexpr std::string_view kWsmanFault = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
constexpr std::string_view kAddrFault = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
constexpr std::string_view kFilterReason =
    "The data source could not process the filter. The filter might be missing or it might be "
    "invalid. Change "
    "the filter and try the request again.  ";

FaultShape shape(FaultKind kind) {
  switch (kind) {
    case FaultKind::kAccessDenied:
      return {kWsmanFault, "s:Sender", "w:AccessDenied", "Access is denied. ", "", 5, false, ""};
    case FaultKind::kInvalidClass:
      return {kEnumFault,
              "s:Sender",
              "n:CannotProcessFilter",
              kFilterReason,
              "",
              2150858778ull,
              true,
              "The specified class does not exist in the given namespace. "};
    case FaultKind::kInvalidQuery:
      return {kEnumFault, "s:Sender", "n:CannotProcessFilter", kFilterReason, "", 2150858778ull,
              true,       ""};
    case FaultKind::kInvalidResourceUri:
      return {kAddrFault,
              "s:Sender",
              "a:DestinationUnreachable",
              "The WS-Management service cannot process the request. The service cannot find the "
              "resource "
              "identified by the resource URI and selectors. ",
              "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidResourceURI",
              2150858752ull,
              true,
              ""};
    case FaultKind::kQuotaExceeded:
      return {
          kWsmanFault,
          "s:Receiver",
          "w:InternalError",
          "The WS-Management service cannot process the request. The maximum number of concurrent "
          "operations for this user has been exceeded. Close existing operations for this user, or "
          "raise "
          "the quota for this user. ",
          "",
          2150859174ull,
          false,
          "The WS-Management service cannot process the request. This user is allowed a maximum "
          "number of "
          "15 concurrent operations, which has been exceeded. Close existing operations for this "
          "user, or "
          "raise the quota for this user. "};
    case FaultKind::kTimedOut:
      return {
          kWsmanFault,
          "s:Receiver",
          "w:TimedOut",
          "The WS-Management service cannot complete the operation within the time specified in "
          "OperationTimeout.  ",
          "",
          2150858793ull,
          false,
          ""};
    case FaultKind::kContextExpired:
      return {kEnumFault,
              "s:Sender",
              "n:InvalidEnumerationContext",
              "The supplied enumeration context is invalid. An invalid enumeration context may be "
              "caused by an "
              "expired enumeration or the enumeration has already been released. ",
              "",
              2150858779ull,
              false,
              ""};
    case FaultKind::kMaxEnvelope:
      return {kWsmanFault,
              "s:Sender",
              "w:EncodingLimit",
              "The WS-Management service cannot process the request because the response would "
              "exceed the "
              "maximum envelope size that the client requested. ",
              "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/MaxEnvelopeSize",
              2150858824ull,
              false,
              "The response that the WS-Management service computed exceeds the maximum envelope "
              "size in the "
              "request. "};
    case FaultKind::kInvalidSelectors:
      return {kWsmanFault,
              "s:Sender",
              "w:InvalidSelectors",
              "The WS-Management service cannot process the request because the request contained "
              "invalid "
              "selectors for the resource. ",
              "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
              2150858843ull,
              true,
              ""};
    case FaultKind::kInvalidHeader:
      return {kAddrFault,
              "s:Sender",
              "a:InvalidMessageInformationHeader",
              "The WS-Management service cannot process the request. The request contains one or "
              "more invalid "
              "SOAP headers. ",
              "",
              2150858767ull,
              false,
              ""};
    case FaultKind::kSchemaValidation:
      return {kWsmanFault,
              "s:Sender",
              "w:SchemaValidationError",
              "The SOAP XML in the message does not match the corresponding XML schema definition. "
              "Change the "
              "XML and retry. ",
              "",
              2150858817ull,
              false,
              ""};
  }
  return {};
}

}  // namespace

std::string new_uuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::uint64_t a = rng(), b = rng();
  a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant
  std::string s(36, '-');
  int pos = 0;
  auto put = [&](std::uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      if (pos == 8 || pos == 13 || pos == 18 || pos == 23) ++pos;
      s[static_cast<std::size_t>(pos++)] = kHex[(v >> (i * 4)) & 0xF];
    }
  };
  put(a, 16);
  put(b, 16);
  return s;
}

void append_instance(std::string& out, const ClassDef& cls, const Instance& inst) {
  out += "<p:";
  out += cls.name;
  out += " xmlns:xsi=\"";
  out += kXsi;
  out += "\" xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wmi/";
  out += cls.wmi_namespace;
  out += '/';
  out += cls.name;
  out += "\" xmlns:cim=\"";
  out += kCim;
  out += "\" xsi:type=\"p:";
  out += cls.name;
  out += "_Type\">";
  for (std::size_t i = 0; i < cls.properties.size(); ++i)
    append_properties(out, cls, inst, static_cast<int>(i), "p:");
  out += "</p:";
  out += cls.name;
  out += '>';
}

void append_fragment(std::string& out, const ClassDef& cls, const Instance& inst,
                     const std::vector<int>& props) {
  out += "<w:XmlFragment xmlns:xsi=\"";
  out += kXsi;
  out +=
      "\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" "
      "xmlns:m=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">";
  for (int i : props) append_properties(out, cls, inst, i, "");
  out += "</w:XmlFragment>";
}

std::string enumerate_response(std::string_view relates_to, std::string_view context,
                               std::string_view items, bool has_items, bool end_of_sequence,
                               std::string_view lang) {
  std::string out;
  out.reserve(items.size() + 1200);
  append_header(out, kEnvelopeOpen,
                "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse", relates_to,
                lang);
  out += "<n:EnumerateResponse><n:EnumerationContext>";
  if (!context.empty()) {
    out += "uuid:";
    out += context;
  }
  out += "</n:EnumerationContext>";
  if (has_items) {
    out += "<w:Items>";
    out += items;
    out += "</w:Items>";
  }
  if (end_of_sequence) out += "<w:EndOfSequence/>";
  out += "</n:EnumerateResponse></s:Body></s:Envelope>";
  return out;
}

std::string pull_response(std::string_view relates_to, std::string_view context,
                          std::string_view items, bool end_of_sequence, std::string_view lang) {
  std::string out;
  out.reserve(items.size() + 1200);
  append_header(out, kEnvelopeOpen,
                "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse", relates_to, lang);
  out += "<n:PullResponse>";
  if (!context.empty()) {
    out += "<n:EnumerationContext>uuid:";
    out += context;
    out += "</n:EnumerationContext>";
  }
  out += "<n:Items>";
  out += items;
  out += "</n:Items>";
  if (end_of_sequence) out += "<n:EndOfSequence/>";
  out += "</n:PullResponse></s:Body></s:Envelope>";
  return out;
}

std::string release_response(std::string_view relates_to, std::string_view lang) {
  std::string out;
  append_header(out, kEnvelopeOpen,
                "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse", relates_to,
                lang);
  out += "</s:Body></s:Envelope>";
  return out;
}

std::optional<FaultKind> fault_from_name(std::string_view name) {
  if (name == "access_denied") return FaultKind::kAccessDenied;
  if (name == "invalid_class") return FaultKind::kInvalidClass;
  if (name == "invalid_resource_uri") return FaultKind::kInvalidResourceUri;
  if (name == "quota_exceeded") return FaultKind::kQuotaExceeded;
  if (name == "timed_out") return FaultKind::kTimedOut;
  if (name == "context_expired") return FaultKind::kContextExpired;
  if (name == "max_envelope") return FaultKind::kMaxEnvelope;
  if (name == "invalid_selectors") return FaultKind::kInvalidSelectors;
  return std::nullopt;
}

std::string fault(FaultKind kind, std::string_view relates_to, std::string_view machine,
                  std::string_view detail, std::string_view lang) {
  const FaultShape f = shape(kind);
  std::string message(f.message.empty() ? f.reason : f.message);
  if (kind == FaultKind::kInvalidQuery) {
    message = "The WQL query is invalid: ";
    message += detail;
    message += ". ";
  } else if (kind == FaultKind::kInvalidHeader && !detail.empty()) {
    message =
        "The WS-Management service cannot process the request. The XML contains an invalid timeout "
        "field "
        "in the SOAP header: ";
    message += detail;
    message += ". ";
  }
  const std::string code = std::to_string(f.wsman_code);
  std::string out;
  out.reserve(2048);
  append_header(out, kFaultEnvelopeOpen, f.action, relates_to, lang);
  out += "<s:Fault><s:Code><s:Value>";
  out += f.code;
  out += "</s:Value><s:Subcode><s:Value>";
  out += f.subcode;
  out += "</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"";
  append_xml_escaped(out, lang.empty() ? "en-US" : lang);
  out += "\">";
  append_xml_escaped(out, f.reason);
  out += "</s:Text></s:Reason><s:Detail>";
  if (!f.fault_detail.empty()) {
    out += "<w:FaultDetail>";
    out += f.fault_detail;
    out += "</w:FaultDetail>";
  }
  out += "<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" Code=\"";
  out += code;
  out += "\" Machine=\"";
  append_xml_escaped(out, machine);
  out += "\"><f:Message>";
  if (f.provider_fault) {
    out +=
        "<f:ProviderFault provider=\"WMI Provider\" path=\"%systemroot%\\system32\\WsmWmiPl.dll\">"
        "<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" Code=\"";
    out += code;
    out += "\" Machine=\"";
    append_xml_escaped(out, machine);
    out += "\"><f:Message>";
    append_xml_escaped(out, message);
    out += "</f:Message></f:WSManFault>";
    if (kind == FaultKind::kInvalidClass || kind == FaultKind::kInvalidQuery) {
      out +=
          "<f:ExtendedError><p:__ExtendedStatus "
          "xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wmi/root/"
          "cimv2/__ExtendedStatus\" xmlns:xsi=\"";
      out += kXsi;
      out += "\" xmlns:cim=\"";
      out += kCim;
      out +=
          "\" xsi:type=\"p:__ExtendedStatus_Type\"><p:Description "
          "xsi:nil=\"true\"/><p:Operation>ExecQuery"
          "</p:Operation><p:ParameterInfo>";
      append_xml_escaped(out, kind == FaultKind::kInvalidClass ? detail : std::string_view{});
      out +=
          "</p:ParameterInfo><p:ProviderName>WinMgmt</p:ProviderName><p:StatusCode "
          "xsi:nil=\"true\"/>"
          "</p:__ExtendedStatus></f:ExtendedError>";
    }
    out += "</f:ProviderFault>";
  } else {
    append_xml_escaped(out, message);
  }
  out += "</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>";
  return out;
}

}  // namespace sim::render
