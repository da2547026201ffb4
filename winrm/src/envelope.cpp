#include "winrm/envelope.h"

#include <openssl/rand.h>
#include <tinyxml2.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "page_builder.h"
#include "winrm/charset.h"
#include "xml_ns.h"

namespace winrm {

namespace {

constexpr std::string_view kActionEnumerate =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
constexpr std::string_view kActionPull = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
constexpr std::string_view kActionRelease =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
constexpr std::string_view kAnonymous =
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

std::string format_duration(std::chrono::milliseconds timeout) {
  long long ms = timeout.count() < 0 ? 0 : static_cast<long long>(timeout.count());
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "PT%lld.%03lldS", ms / 1000, ms % 1000);
  return buffer;
}

enum class Operation { kEnumerate, kPull, kRelease };

// Shared header block, in the order every maintained client sends it (protocol notes 2.1).
std::string build_envelope(const RequestOptions& options, Operation operation,
                           std::string_view body) {
  // Release follows the hand-written template: no MS extension headers.
  const bool ms_headers = operation != Operation::kRelease;
  std::string out;
  out.reserve(1500 + body.size());
  out +=
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\""
      " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\""
      " xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\""
      " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"";
  if (ms_headers) out += " xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\"";
  out += "><s:Header><a:To>";
  append_xml_escaped(out, options.endpoint_url);
  out += "</a:To><w:ResourceURI s:mustUnderstand=\"true\">";
  append_xml_escaped(out, resource_uri_for(options.wmi_namespace));
  out += "</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand=\"true\">";
  out += kAnonymous;
  out += "</a:Address></a:ReplyTo><a:Action s:mustUnderstand=\"true\">";
  out += operation == Operation::kEnumerate ? kActionEnumerate
         : operation == Operation::kPull    ? kActionPull
                                            : kActionRelease;
  out += "</a:Action><w:MaxEnvelopeSize s:mustUnderstand=\"true\">";
  out += std::to_string(options.max_envelope_size);
  out += "</w:MaxEnvelopeSize><a:MessageID>";
  append_xml_escaped(out, options.message_id.empty() ? new_message_id() : options.message_id);
  out += "</a:MessageID>";
  if (ms_headers && !options.locale.empty()) {
    out += "<w:Locale xml:lang=\"";
    append_xml_escaped(out, options.locale);
    out += "\" s:mustUnderstand=\"false\"/><p:DataLocale xml:lang=\"";
    append_xml_escaped(out, options.locale);
    out += "\" s:mustUnderstand=\"false\"/>";
  }
  if (ms_headers && !options.session_id.empty()) {
    out += "<p:SessionId s:mustUnderstand=\"false\">";
    append_xml_escaped(out, options.session_id);
    out += "</p:SessionId>";
  }
  out += "<w:OperationTimeout>";
  out += format_duration(options.operation_timeout);
  out += "</w:OperationTimeout></s:Header><s:Body>";
  out += body;
  out += "</s:Body></s:Envelope>";
  return out;
}

}  // namespace

std::string resource_uri_for(std::string_view wmi_namespace) {
  std::string path(wmi_namespace);
  for (char& c : path) {
    if (c == '\\') c = '/';
  }
  std::string_view trimmed = path;
  while (!trimmed.empty() && (trimmed.front() == '/' || trimmed.front() == ' ')) {
    trimmed.remove_prefix(1);
  }
  while (!trimmed.empty() && (trimmed.back() == '/' || trimmed.back() == ' ')) {
    trimmed.remove_suffix(1);
  }
  if (trimmed.empty()) trimmed = "root/cimv2";
  std::string uri = "http://schemas.microsoft.com/wbem/wsman/1/wmi/";
  uri += trimmed;
  uri += "/*";
  return uri;
}

std::string new_message_id() {
  // Message IDs need uniqueness, not secrecy: a per-thread engine seeded once from OpenSSL's
  // RNG (RAND_bytes on every request showed in the one-row poll's profile: DRBG, locks).
  thread_local std::mt19937_64 engine = [] {
    std::uint32_t seed[8];
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed), sizeof seed) != 1) {
      std::random_device device;  // OpenSSL's RNG failing is near-impossible
      for (auto& word : seed) word = device();
    }
    std::seed_seq sequence(std::begin(seed), std::end(seed));
    return std::mt19937_64(sequence);
  }();
  unsigned char bytes[16];
  for (int half = 0; half < 2; ++half) {
    const std::uint64_t word = engine();
    std::memcpy(bytes + 8 * half, &word, sizeof word);
  }
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string id = "uuid:";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
    id += kHex[bytes[i] >> 4];
    id += kHex[bytes[i] & 0x0F];
  }
  return id;
}

std::string build_enumerate(const RequestOptions& options, std::string_view wql) {
  std::string body = "<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>";
  body += std::to_string(options.max_elements);
  body += "</w:MaxElements><w:Filter Dialect=\"";
  body += kWqlDialect;
  body += "\">";
  append_xml_escaped(body, wql);
  body += "</w:Filter></n:Enumerate>";
  return build_envelope(options, Operation::kEnumerate, body);
}

std::string build_pull(const RequestOptions& options, std::string_view context) {
  std::string body = "<n:Pull><n:EnumerationContext>";
  append_xml_escaped(body, context);
  body += "</n:EnumerationContext><n:MaxElements>";
  body += std::to_string(options.max_elements);
  body += "</n:MaxElements></n:Pull>";
  return build_envelope(options, Operation::kPull, body);
}

std::string build_release(const RequestOptions& options, std::string_view context) {
  std::string body = "<n:Release><n:EnumerationContext>";
  append_xml_escaped(body, context);
  body += "</n:EnumerationContext></n:Release>";
  return build_envelope(options, Operation::kRelease, body);
}

// ---------------------------------------------------------------------------
// Parsing

namespace {

using tinyxml2::XMLDocument;
using tinyxml2::XMLElement;
using xml::NamespaceStack;
using xml::Scope;

std::unexpected<Error> parse_error(std::string message) {
  return make_error(ErrorKind::kParse, std::move(message));
}

// "instance has more than 10000 properties (max_properties_per_instance)"
std::unexpected<Error> limit_error(Limit which, std::string_view subject, std::size_t limit,
                                   std::string_view what) {
  std::string message(subject);
  message += " more than " + std::to_string(limit) + " ";
  message += what;
  message += " (";
  message += to_string(which);
  message += ')';
  return make_limit_error(ErrorKind::kParse, which, std::move(message));
}

// A bounded rendering of a name from the response for an error message (already UTF-8).
std::string quoted_name(std::string_view name) {
  constexpr std::size_t kMax = 80;
  std::string out = "\"";
  if (name.size() > kMax) {
    std::size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
    out.append(name.substr(0, cut));
    out += "...";
  } else {
    out.append(name);
  }
  out += '"';
  return out;
}

// Characters that end a run of name bytes inside a start tag.
constexpr auto kTagStops = [] {
  std::array<bool, 256> stops{};
  for (unsigned char c : {'"', '\'', '=', '<', '>'}) stops[c] = true;
  return stops;
}();

// First byte in [p, end) that is one of kTagStops, or end. Names in tags are short, so the
// SSE2 path (16 bytes per step, baseline on x86-64) mostly answers in one step.
const char* next_tag_stop(const char* p, const char* const end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i apostrophe = _mm_set1_epi8('\'');
  const __m128i equals = _mm_set1_epi8('=');
  const __m128i less = _mm_set1_epi8('<');
  const __m128i greater = _mm_set1_epi8('>');
  while (end - p >= 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, apostrophe)),
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(block, equals), _mm_cmpeq_epi8(block, less)),
                     _mm_cmpeq_epi8(block, greater)));
    const int mask = _mm_movemask_epi8(hits);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && !kTagStops[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// tinyxml2 checks every declaration (<?...?>) against all earlier top-level nodes; WinRM
// sends at most the one XML declaration.
constexpr std::size_t kMaxProcessingInstructions = 16;
// "&#x10FFFF;" is 10 bytes; tinyxml2 searches a whole text node for the ';' of each "&#".
constexpr std::size_t kMaxCharacterReference = 16;

// Refuses markup on which tinyxml2 would spend super-linear time, in one pass: start tags with
// more than `max_attributes` attributes (tinyxml2 compares each new attribute with all earlier
// ones, so 10^5 of them cost 10^10 comparisons), many processing instructions, and "&#" without
// a nearby ';'. Attributes are counted as '=' outside quoted values (an upper bound): memchr
// from tag to tag and over quoted values, a table look-up per name byte.
struct MarkupRefusal {
  std::string message;
  Limit limit = Limit::kNone;
};

std::optional<MarkupRefusal> check_markup(std::string_view text, std::size_t max_attributes) {
  for (std::size_t ref = text.find("&#"); ref != std::string_view::npos;
       ref = text.find("&#", ref + 2)) {
    if (text.substr(ref, kMaxCharacterReference).find(';') == std::string_view::npos) {
      return MarkupRefusal{"malformed character reference at byte " + std::to_string(ref)};
    }
  }
  const char* p = text.data();
  const char* const end = p + text.size();
  const auto skip_past = [&](const char* from, std::string_view terminator) -> const char* {
    std::string_view rest(from, static_cast<std::size_t>(end - from));
    std::size_t found = rest.find(terminator);
    return found == std::string_view::npos ? nullptr : from + found + terminator.size();
  };
  std::size_t processing_instructions = 0;
  while (p != nullptr && p < end) {
    p = static_cast<const char*>(std::memchr(p, '<', static_cast<std::size_t>(end - p)));
    if (p == nullptr || ++p == end) break;
    // Markup whose content may hold '<' or quotes is skipped as tinyxml2 skips it.
    const std::string_view rest(p, static_cast<std::size_t>(end - p));
    if (*p == '!') {
      p = rest.starts_with("!--")        ? skip_past(p + 3, "-->")
          : rest.starts_with("![CDATA[") ? skip_past(p + 8, "]]>")
                                         : skip_past(p, ">");
      continue;
    }
    if (*p == '?') {
      if (++processing_instructions > kMaxProcessingInstructions) {
        return MarkupRefusal{"more than " + std::to_string(kMaxProcessingInstructions) +
                             " processing instructions"};
      }
      p = skip_past(p, "?>");
      continue;
    }
    // An end tag holds no quotes or attributes: the search for the next '<' passes over it.
    if (*p == '/') continue;
    std::size_t equals = 0;
    while (true) {
      p = next_tag_stop(p, end);
      if (p == end) return std::nullopt;
      const char c = *p;
      if (c == '=') {
        if (++equals > max_attributes) {
          return MarkupRefusal{"element has more than " + std::to_string(max_attributes) +
                                   " attributes (max_attributes_per_element)",
                               Limit::kAttributes};
        }
        ++p;
      } else if (c == '"' || c == '\'') {
        p = static_cast<const char*>(std::memchr(p + 1, c, static_cast<std::size_t>(end - p - 1)));
        if (p == nullptr) return std::nullopt;  // unterminated: tinyxml2 rejects it
        ++p;
      } else {
        break;  // '>' ends the tag; '<' is an error tinyxml2 reports
      }
    }
  }
  return std::nullopt;
}

struct ParseContext {
  NamespaceStack namespaces;
  // tinyxml2 turns character references (&#xD800;) into bytes that need not be valid
  // UTF-8; the body itself was validated while decoding, so values are only re-checked when
  // the body has character references at all.
  bool has_character_references = false;
};

// Out of line: inlined into parse_document, g++ 12 reports a false -Wmaybe-uninitialized on
// the error's empty Fault.
[[gnu::noinline]] std::unexpected<Error> refusal_error(MarkupRefusal refused) {
  return make_limit_error(ErrorKind::kParse, refused.limit, std::move(refused.message));
}

// Decodes `body` to UTF-8 (in `storage` when it needs a copy) and refuses what neither parser
// can read: an empty body, NUL characters.
Result<std::string_view> decoded_text(std::string_view body, std::string_view content_type,
                                      std::string& storage) {
  if (body.empty()) return parse_error("empty response body");
  auto decoded = decode_to_utf8(body, content_type, storage);
  if (!decoded) return std::unexpected(decoded.error());
  std::string_view text = *decoded;
  if (xml::trim(text).empty()) return parse_error("empty response body");
  // tinyxml2 reads a C string: it would stop at a NUL and mis-report what follows.
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    return parse_error("NUL character at byte " + std::to_string(nul) +
                       " of the decoded response (is the charset right?)");
  }
  return text;
}

// Parses decoded `text` into `doc`, or a kParse error.
Result<const XMLElement*> parse_document(XMLDocument& doc, std::string_view text,
                                         std::size_t max_attributes, ParseContext& context) {
  if (auto refused = check_markup(text, max_attributes)) return refusal_error(std::move(*refused));
  context.has_character_references = text.find("&#") != std::string_view::npos;
  const tinyxml2::XMLError status = doc.Parse(text.data(), text.size());
  if (status == tinyxml2::XML_ELEMENT_DEPTH_EXCEEDED) {
    return make_limit_error(ErrorKind::kParse, Limit::kDepth,
                            "XML elements nested deeper than " +
                                std::to_string(TINYXML2_MAX_ELEMENT_DEPTH) + " levels");
  }
  if (status != tinyxml2::XML_SUCCESS) {
    std::string message = "malformed XML: ";
    message += doc.ErrorName();
    message += " at line " + std::to_string(doc.ErrorLineNum());
    return parse_error(std::move(message));
  }
  const XMLElement* root = doc.RootElement();
  if (root == nullptr) return parse_error("no root element");
  return root;
}

std::uint64_t parse_code(std::string_view text) {
  text = xml::trim(text);
  int base = 10;
  if (text.starts_with("0x") || text.starts_with("0X")) {
    text.remove_prefix(2);
    base = 16;
  }
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc{} || end != text.data() + text.size()) return 0;
  return value;
}

struct MessageCandidate {
  int depth = -1;
  std::string text;
};

// Finds the deepest non-empty f:WSManFault/f:Message (or f:ProviderFault) text: the
// provider's own words ("The specified class does not exist...") sit innermost. Recursion
// depth is bounded by tinyxml2's element depth limit.
void collect_fault_messages(const Scope& scope, int depth, MessageCandidate& best) {
  for (const XMLElement* child = scope.element()->FirstChildElement(); child != nullptr;
       child = child->NextSiblingElement()) {
    Scope child_scope(scope.stack(), child);
    auto name = child_scope.element_name();
    if (name.ns != xml::kNsWsmanFault) continue;
    if (name.local == "ExtendedError") continue;  // embedded __ExtendedStatus, not a message
    if (name.local == "Message" || name.local == "ProviderFault") {
      std::string text = xml::collapse_whitespace(xml::direct_text(child));
      if (!text.empty() && depth > best.depth) best = {depth, std::move(text)};
    }
    collect_fault_messages(child_scope, depth + 1, best);
  }
}

Fault parse_fault_element(const Scope& fault_scope) {
  NamespaceStack& ns = fault_scope.stack();
  Fault fault;
  std::string reason;
  MessageCandidate wsman_message;
  std::string wmi_error_message;
  for (const XMLElement* part = fault_scope.element()->FirstChildElement(); part != nullptr;
       part = part->NextSiblingElement()) {
    Scope part_scope(ns, part);
    if (part_scope.is(xml::kNsSoap, "Code")) {
      for (const XMLElement* c = part->FirstChildElement(); c != nullptr;
           c = c->NextSiblingElement()) {
        Scope c_scope(ns, c);
        if (c_scope.is(xml::kNsSoap, "Value")) {
          fault.code = xml::collapse_whitespace(xml::direct_text(c));
        } else if (c_scope.is(xml::kNsSoap, "Subcode")) {
          for (const XMLElement* v = c->FirstChildElement(); v != nullptr;
               v = v->NextSiblingElement()) {
            Scope v_scope(ns, v);
            if (v_scope.is(xml::kNsSoap, "Value")) {
              std::string qname = xml::collapse_whitespace(xml::direct_text(v));
              fault.subcode = std::string(xml::split_qname(qname).second);
            }
          }
        }
      }
    } else if (part_scope.is(xml::kNsSoap, "Reason")) {
      for (const XMLElement* t = part->FirstChildElement(); t != nullptr && reason.empty();
           t = t->NextSiblingElement()) {
        Scope t_scope(ns, t);
        if (t_scope.is(xml::kNsSoap, "Text")) reason = xml::collapse_whitespace(xml::all_text(t));
      }
    } else if (part_scope.is(xml::kNsSoap, "Detail")) {
      for (const XMLElement* d = part->FirstChildElement(); d != nullptr;
           d = d->NextSiblingElement()) {
        Scope d_scope(ns, d);
        auto name = d_scope.element_name();
        if (d_scope.is(xml::kNsWsman, "FaultDetail")) {
          fault.fault_detail = xml::collapse_whitespace(xml::all_text(d));
        } else if (d_scope.is(xml::kNsWsmanFault, "WSManFault")) {
          if (fault.wsman_code == 0) {
            if (const char* code = d->Attribute("Code")) fault.wsman_code = parse_code(code);
          }
          if (fault.machine.empty()) {
            if (const char* machine = d->Attribute("Machine")) {
              fault.machine = xml::collapse_whitespace(machine);
            }
          }
          collect_fault_messages(d_scope, 0, wsman_message);
        } else if (name.local == "MSFT_WmiError") {
          // CIM error instance (WinRM 3.0+): error_Code carries the WSMan code.
          for (const XMLElement* p = d->FirstChildElement(); p != nullptr;
               p = p->NextSiblingElement()) {
            auto local = xml::split_qname(p->Name()).second;
            if (local == "error_Code" && fault.wsman_code == 0) {
              fault.wsman_code = parse_code(xml::direct_text(p));
            } else if (local == "Message" && wmi_error_message.empty()) {
              wmi_error_message = xml::collapse_whitespace(xml::direct_text(p));
            }
          }
        }
      }
    }
  }
  if (!wsman_message.text.empty()) {
    fault.message = std::move(wsman_message.text);
  } else if (!wmi_error_message.empty()) {
    fault.message = std::move(wmi_error_message);
  } else {
    fault.message = std::move(reason);
  }
  // Character references can smuggle invalid UTF-8 into fault texts, which reach logs.
  for (std::string* text :
       {&fault.code, &fault.subcode, &fault.machine, &fault.message, &fault.fault_detail}) {
    sanitize_utf8_in_place(*text);
  }
  return fault;
}

// The first child of `parent` with this expanded name.
const XMLElement* find_child(const Scope& parent, std::string_view ns, std::string_view local) {
  for (const XMLElement* child = parent.element()->FirstChildElement(); child != nullptr;
       child = child->NextSiblingElement()) {
    if (Scope(parent.stack(), child).is(ns, local)) return child;
  }
  return nullptr;
}

// Text content of an embedded object or EPR: non-empty text pieces joined by a space.
// Recursion depth is bounded by tinyxml2's element depth limit.
void append_object_text(const XMLElement* element, std::string& out) {
  for (const auto* node = element->FirstChild(); node != nullptr; node = node->NextSibling()) {
    if (const auto* text = node->ToText()) {
      auto piece = xml::collapse_whitespace(text->Value());
      if (piece.empty()) continue;
      if (!out.empty()) out += ' ';
      out += piece;
    } else if (const auto* child = node->ToElement()) {
      append_object_text(child, out);
    }
  }
}

bool is_true(const char* value) {
  if (value == nullptr) return false;
  std::string_view v = xml::trim(value);
  return v == "true" || v == "1";
}

using detail::PageBuilder;

// A property's value, stored in the page's arena. The common case, one text child, is copied
// straight from tinyxml2's buffer.
std::string_view store_value(const ParseContext& context, const XMLElement* prop, PageBuilder& page,
                             Property::Type& type) {
  type = Property::Type::kPlain;
  std::string& scratch = page.scratch;
  scratch.clear();
  const XMLElement* inner = prop->FirstChildElement();
  if (inner == nullptr) {
    const tinyxml2::XMLNode* node = prop->FirstChild();
    if (node == nullptr) return {};  // empty element = empty string, not null
    if (node->NextSibling() == nullptr && !context.has_character_references) {
      const auto* text = node->ToText();
      return text != nullptr ? page.arena->copy(text->Value()) : std::string_view{};
    }
    for (; node != nullptr; node = node->NextSibling()) {
      if (const auto* text = node->ToText()) scratch += text->Value();
    }
  } else {
    auto inner_local = xml::split_qname(inner->Name()).second;
    if (inner_local == "Datetime" || inner_local == "Interval") {
      type = inner_local == "Datetime" ? Property::Type::kDatetime : Property::Type::kInterval;
      scratch = xml::all_text(inner);
      std::string_view trimmed = xml::trim(scratch);
      if (trimmed.size() != scratch.size()) scratch = std::string(trimmed);
    } else {
      type = Property::Type::kObject;
      append_object_text(prop, scratch);
    }
  }
  if (context.has_character_references) sanitize_utf8_in_place(scratch);
  return page.arena->copy(scratch);
}

Result<Row> parse_item(ParseContext& context, const XMLElement* item_element,
                       const ParseLimits& limits, PageBuilder& page) {
  Scope item(context.namespaces, item_element);
  const bool fragment = item.is(xml::kNsWsman, "XmlFragment");
  Row row(page.arena, fragment ? std::string_view() : item.element_name().local);
  row.reserve(std::min(page.previous_names.size(), limits.max_properties_per_instance));
  for (const XMLElement* prop = item_element->FirstChildElement(); prop != nullptr;
       prop = prop->NextSiblingElement()) {
    // Property names are matched by local name; only attributes need namespace resolution.
    const std::string_view stored_name =
        page.stored_name(row, xml::split_qname(prop->Name()).second);
    bool nil = false;
    if (prop->FirstAttribute() != nullptr) {
      Scope prop_scope(context.namespaces, prop);
      nil = is_true(prop_scope.attribute(xml::kNsXsi, "nil"));
    }
    const Property* added = nullptr;
    if (nil) {
      row.add_null_stored(stored_name);
    } else {
      Property::Type type;
      std::string_view value = store_value(context, prop, page, type);
      added = &row.add_stored(stored_name, value, type);
    }
    if (row.properties().size() > limits.max_properties_per_instance) {
      return limit_error(Limit::kProperties, "instance has", limits.max_properties_per_instance,
                         "properties");
    }
    if (added != nullptr && added->values.size() > limits.max_values_per_property) {
      return limit_error(Limit::kValues, "property " + quoted_name(added->name) + " has",
                         limits.max_values_per_property, "values");
    }
  }
  page.finish_row(row);
  return row;
}

}  // namespace

Result<Fault> parse_fault(std::string_view body, std::string_view content_type) {
  std::string storage;  // only used when the body is not already valid UTF-8
  auto text = decoded_text(body, content_type, storage);
  if (!text) return std::unexpected(text.error());
  XMLDocument doc(true, tinyxml2::PRESERVE_WHITESPACE);
  ParseContext context;
  auto root = parse_document(doc, *text, ParseLimits{}.max_attributes_per_element, context);
  if (!root) return std::unexpected(root.error());
  Scope envelope(context.namespaces, *root);
  if (!envelope.is(xml::kNsSoap, "Envelope")) {
    return parse_error("root element is not a SOAP 1.2 Envelope");
  }
  const XMLElement* body_element = find_child(envelope, xml::kNsSoap, "Body");
  if (body_element == nullptr) return parse_error("SOAP envelope without Body");
  Scope body_scope(context.namespaces, body_element);
  const XMLElement* fault = find_child(body_scope, xml::kNsSoap, "Fault");
  if (fault == nullptr) return parse_error("SOAP body is not a fault");
  Scope fault_scope(context.namespaces, fault);
  return parse_fault_element(fault_scope);
}

namespace {

// The tinyxml2 path: any body, every error. `text` is decoded UTF-8.
Result<EnumerationPage> parse_dom(std::string_view text, const ParseLimits& limits) {
  XMLDocument doc(true, tinyxml2::PRESERVE_WHITESPACE);
  ParseContext context;
  auto root = parse_document(doc, text, limits.max_attributes_per_element, context);
  if (!root) return std::unexpected(root.error());
  Scope envelope(context.namespaces, *root);
  if (!envelope.is(xml::kNsSoap, "Envelope")) {
    return parse_error("root element is not a SOAP 1.2 Envelope");
  }

  EnumerationPage page;
  PageBuilder builder;
  if (const XMLElement* header = find_child(envelope, xml::kNsSoap, "Header")) {
    Scope header_scope(context.namespaces, header);
    if (const XMLElement* relates = find_child(header_scope, xml::kNsAddressing, "RelatesTo")) {
      page.relates_to = std::string(xml::trim(xml::direct_text(relates)));
    }
  }

  const XMLElement* body_element = find_child(envelope, xml::kNsSoap, "Body");
  if (body_element == nullptr) return parse_error("SOAP envelope without Body");
  Scope body_scope(context.namespaces, body_element);
  const XMLElement* response = body_element->FirstChildElement();
  if (response == nullptr) return parse_error("empty SOAP Body");
  Scope response_scope(context.namespaces, response);

  if (response_scope.is(xml::kNsSoap, "Fault")) {
    Fault fault = parse_fault_element(response_scope);
    std::string message = fault.message;
    return std::unexpected(Error{ErrorKind::kWsmanFault, std::move(message), 0, std::move(fault)});
  }
  if (!response_scope.is(xml::kNsEnumeration, "EnumerateResponse") &&
      !response_scope.is(xml::kNsEnumeration, "PullResponse")) {
    std::string message = "unexpected SOAP body element ";
    message += quoted_name(xml::collapse_whitespace(response_scope.element_name().local));
    return parse_error(std::move(message));
  }

  for (const XMLElement* child = response->FirstChildElement(); child != nullptr;
       child = child->NextSiblingElement()) {
    Scope child_scope(context.namespaces, child);
    auto name = child_scope.element_name();
    // Windows puts Items/EndOfSequence in w: for EnumerateResponse and n: for
    // PullResponse; accept either namespace for both.
    const bool known_ns = name.ns == xml::kNsEnumeration || name.ns == xml::kNsWsman;
    if (name.ns == xml::kNsEnumeration && name.local == "EnumerationContext") {
      page.context = std::string(xml::trim(xml::direct_text(child)));
      sanitize_utf8_in_place(page.context);
    } else if (known_ns && name.local == "EndOfSequence") {
      page.end_of_sequence = true;
    } else if (known_ns && name.local == "Items") {
      std::size_t items = 0;
      for (const XMLElement* item = child->FirstChildElement();
           item != nullptr && items <= limits.max_rows; item = item->NextSiblingElement()) {
        ++items;
      }
      if (page.rows.size() + items > limits.max_rows) {
        return limit_error(Limit::kRows, "response has", limits.max_rows, "rows");
      }
      page.rows.reserve(page.rows.size() + items);
      for (const XMLElement* item = child->FirstChildElement(); item != nullptr;
           item = item->NextSiblingElement()) {
        auto row = parse_item(context, item, limits, builder);
        if (!row) return std::unexpected(std::move(row.error()));
        page.rows.push_back(std::move(*row));
      }
    }
  }
  sanitize_utf8_in_place(page.relates_to);
  page.stored_bytes = builder.stored_bytes(page);
  return page;
}

}  // namespace

namespace detail {

std::optional<Result<EnumerationPage>> parse_enumeration_response_via(ParsePath path,
                                                                      std::string_view body,
                                                                      std::string_view content_type,
                                                                      const ParseLimits& limits) {
  std::string storage;  // only used when the body is not already valid UTF-8
  auto text = decoded_text(body, content_type, storage);
  if (!text) return Result<EnumerationPage>(std::unexpected(std::move(text.error())));
  // The scanner leaves character references to tinyxml2, whose decoding of them (surrogates,
  // out-of-range values, a missing ';') is the reference.
  if (path != ParsePath::kDom && text->find("&#") == std::string_view::npos) {
    if (auto page = scan_enumeration_response(*text, limits)) {
      return Result<EnumerationPage>(std::move(*page));
    }
  }
  if (path == ParsePath::kScanner) return std::nullopt;
  return parse_dom(*text, limits);
}

}  // namespace detail

Result<EnumerationPage> parse_enumeration_response(std::string_view body,
                                                   std::string_view content_type,
                                                   const ParseLimits& limits) {
  return *detail::parse_enumeration_response_via(detail::ParsePath::kAuto, body, content_type,
                                                 limits);
}

}  // namespace winrm
