// The single-pass EnumerateResponse/PullResponse scanner (see page_builder.h and
// docs/parser.md). It reads the decoded body once, front to back, keeps nothing but the
// element stack (bounded depth), and builds rows straight from spans of the body: no DOM, no
// copy of the body, no per-node allocation. It accepts a conservative subset of what tinyxml2
// accepts and declines (nullopt) everything else, so tinyxml2 stays the reference for
// errors and odd documents. Where it accepts, it reproduces tinyxml2's view of the text:
// whitespace-only text runs are dropped (tinyxml2 skips isspace() before any markup), CDATA is
// kept raw, the five predefined entities are decoded.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "page_builder.h"
#include "xml_ns.h"

namespace winrm::detail {

namespace {

// Deeper documents go to tinyxml2, whose limit (100) gives the depth error. WinRM nests ~10.
constexpr std::size_t kMaxDepth = 64;
// As check_markup (envelope.cpp): more declarations are refused there.
constexpr std::size_t kMaxDeclarations = 16;
// Attributes per element the scanner handles; more go to tinyxml2 and check_markup's bound.
constexpr std::size_t kMaxAttributes = 64;

// isspace() in the C locale: what tinyxml2 skips between markup.
constexpr bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// tinyxml2's XMLUtil::IsNameStartChar / IsNameChar (bytes >= 0x80 are name characters).
constexpr auto kNameStart = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    table[c] =
        c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ':' || c == '_';
  }
  return table;
}();
constexpr auto kNameChar = [] {
  std::array<bool, 256> table = kNameStart;
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  table['.'] = table['-'] = true;
  return table;
}();

bool all_space(const char* a, const char* b) {
  while (a < b && is_space(*a)) ++a;
  return a == b;
}

std::string_view local_of(std::string_view qname) { return xml::split_qname(qname).second; }

// Appends [a, b) as tinyxml2 reads a text (`entities`) or CDATA section: line ends normalised
// (CR LF, LF CR and a lone CR become LF) and, in text, the five predefined entities decoded.
// False on any other '&': tinyxml2 keeps unknown entities in a way not worth copying (it can
// leave stale bytes behind), so such text goes to the DOM path.
bool append_text(const char* a, const char* b, std::string& out, bool entities) {
  out.reserve(out.size() + static_cast<std::size_t>(b - a));
  while (a < b) {
    const char c = *a;
    if (c == '\r' || c == '\n') {
      const char pair = c == '\r' ? '\n' : '\r';
      a += (a + 1 < b && a[1] == pair) ? 2 : 1;
      out += '\n';
      continue;
    }
    if (c != '&' || !entities) {
      out += c;
      ++a;
      continue;
    }
    const std::string_view rest(a + 1, static_cast<std::size_t>(b - a - 1));
    static constexpr std::pair<std::string_view, char> kEntities[] = {
        {"quot;", '"'}, {"amp;", '&'}, {"apos;", '\''}, {"lt;", '<'}, {"gt;", '>'}};
    bool found = false;
    for (const auto& [pattern, value] : kEntities) {
      if (rest.starts_with(pattern)) {
        out += value;
        a += 1 + pattern.size();
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

// Whether [a, b) reads as itself: no line end to normalise, no entity to decode.
bool is_verbatim(const char* a, const char* b, bool entities) {
  const auto size = static_cast<std::size_t>(b - a);
  return std::memchr(a, '\r', size) == nullptr &&
         (!entities || std::memchr(a, '&', size) == nullptr);
}

enum class Role : unsigned char {
  kOther,  // validated, otherwise ignored
  kEnvelope,
  kHeader,     // the first soap:Header
  kRelatesTo,  // the first a:RelatesTo in it
  kBody,       // the first soap:Body
  kResponse,   // its first child element: EnumerateResponse or PullResponse
  kContext,    // n:EnumerationContext
  kItems,
  kItem,
  kProp,
  kInProp,  // anything inside a property
};

struct Frame {
  std::string_view qname;
  std::size_t ns_mark = 0;
  Role role = Role::kOther;
};

struct Attribute {
  std::string_view name;
  std::string_view value;
};

class Scanner {
 public:
  Scanner(std::string_view text, const ParseLimits& limits)
      : p_(text.data()), end_(text.data() + text.size()), limits_(limits) {}

  std::optional<EnumerationPage> run() {
    if (!prolog() || !start_element()) return std::nullopt;
    while (depth_ > 0) {
      const char* lt =
          static_cast<const char*>(std::memchr(p_, '<', static_cast<std::size_t>(end_ - p_)));
      if (lt == nullptr || end_ - lt < 2) return std::nullopt;
      if (lt != p_ && !all_space(p_, lt) && !on_text(p_, lt, false)) return std::nullopt;
      p_ = lt;
      const char next = p_[1];
      bool ok;
      if (next == '/') {
        ok = end_element();
      } else if (next == '!') {
        ok = comment_or_cdata();
      } else if (next == '?') {
        ok = false;  // declarations only before the root (tinyxml2 refuses them elsewhere)
      } else {
        ok = start_element();
      }
      if (!ok) return std::nullopt;
    }
    if (!epilog() || !body_seen_ || !response_seen_) return std::nullopt;
    page_.stored_bytes = builder_.stored_bytes(page_);
    return std::move(page_);
  }

 private:
  bool starts_with(std::string_view prefix) const {
    return static_cast<std::size_t>(end_ - p_) >= prefix.size() &&
           std::memcmp(p_, prefix.data(), prefix.size()) == 0;
  }
  // Moves past the next `terminator`; false when there is none.
  bool skip_past(std::size_t from, std::string_view terminator) {
    const std::string_view rest(p_ + from, static_cast<std::size_t>(end_ - p_) - from);
    const std::size_t found = rest.find(terminator);
    if (found == std::string_view::npos) return false;
    p_ = rest.data() + found + terminator.size();
    return true;
  }
  void skip_space() {
    while (p_ < end_ && is_space(*p_)) ++p_;
  }
  const char* name_end(const char* q) const {
    if (q == end_ || !kNameStart[static_cast<unsigned char>(*q)]) return nullptr;
    ++q;
    while (q < end_ && kNameChar[static_cast<unsigned char>(*q)]) ++q;
    return q;
  }

  // Before the root: whitespace, declarations (first, at most 16) and comments.
  bool prolog() {
    std::size_t declarations = 0;
    bool other_nodes = false;
    while (true) {
      skip_space();
      if (starts_with("<?")) {
        if (other_nodes || ++declarations > kMaxDeclarations || !skip_past(2, "?>")) return false;
      } else if (starts_with("<!--")) {
        if (!skip_past(4, "-->")) return false;
        other_nodes = true;
      } else {
        // The root element, or something left to tinyxml2 (text, DOCTYPE, an end tag).
        return starts_with("<") && end_ - p_ >= 2 && p_[1] != '!' && p_[1] != '/';
      }
    }
  }

  // After the root: whitespace and comments only.
  bool epilog() {
    while (true) {
      skip_space();
      if (p_ == end_) return true;
      if (!starts_with("<!--") || !skip_past(4, "-->")) return false;
    }
  }

  bool comment_or_cdata() {
    if (starts_with("<!--")) return skip_past(4, "-->");
    if (!starts_with("<![CDATA[")) return false;  // DOCTYPE and the like
    const char* start = p_ + 9;
    if (!skip_past(9, "]]>")) return false;
    return on_text(start, p_ - 3, true);
  }

  // At '<' of a start tag.
  bool start_element() {
    const char* name_start = p_ + 1;
    const char* q = name_end(name_start);
    if (q == nullptr) return false;
    const std::string_view qname(name_start, static_cast<std::size_t>(q - name_start));
    attributes_.clear();
    bool self_closing = false;
    while (true) {
      if (q == end_) return false;
      if (*q == '>') {
        ++q;
        break;
      }
      if (*q == '/') {
        if (end_ - q < 2 || q[1] != '>') return false;
        q += 2;
        self_closing = true;
        break;
      }
      if (!is_space(*q)) return false;
      while (q < end_ && is_space(*q)) ++q;
      if (q == end_ || !kNameStart[static_cast<unsigned char>(*q)]) continue;
      // An attribute: name, '=', a quoted value without '&' (entities in attribute values go
      // to tinyxml2; WinRM sends none).
      const char* attr_name = q;
      q = name_end(q);
      const std::string_view name(attr_name, static_cast<std::size_t>(q - attr_name));
      while (q < end_ && is_space(*q)) ++q;
      if (q == end_ || *q != '=') return false;
      ++q;
      while (q < end_ && is_space(*q)) ++q;
      if (q == end_ || (*q != '"' && *q != '\'')) return false;
      const char* value_start = q + 1;
      const char* close = static_cast<const char*>(
          std::memchr(value_start, *q, static_cast<std::size_t>(end_ - value_start)));
      if (close == nullptr) return false;
      const std::string_view value(value_start, static_cast<std::size_t>(close - value_start));
      if (!is_verbatim(value.data(), value.data() + value.size(), true)) return false;
      if (attributes_.size() >= kMaxAttributes ||
          attributes_.size() >= limits_.max_attributes_per_element) {
        return false;
      }
      for (const Attribute& earlier : attributes_) {
        if (earlier.name == name) return false;  // tinyxml2: XML_ERROR_PARSING_ATTRIBUTE
      }
      attributes_.push_back({name, value});
      q = close + 1;
    }
    p_ = q;
    if (depth_ == kMaxDepth) return false;
    Frame& frame = stack_[depth_];
    frame.qname = qname;
    frame.ns_mark = namespaces_.mark();
    for (const Attribute& attribute : attributes_) {
      if (!attribute.name.starts_with("xmlns")) continue;
      if (attribute.name.size() == 5) {
        namespaces_.bind({}, attribute.value);
      } else if (attribute.name[5] == ':') {
        namespaces_.bind(attribute.name.substr(6), attribute.value);
      }
    }
    if (!open(frame)) return false;
    ++depth_;
    return self_closing ? close_top() : true;
  }

  // At "</".
  bool end_element() {
    const char* name_start = p_ + 2;
    const char* q = name_end(name_start);
    if (q == nullptr) return false;
    const std::string_view name(name_start, static_cast<std::size_t>(q - name_start));
    if (name != stack_[depth_ - 1].qname) return false;  // tinyxml2: mismatched element
    while (q < end_ && is_space(*q)) ++q;
    if (q == end_ || *q != '>') return false;
    p_ = q + 1;
    return close_top();
  }

  xml::QName resolve(std::string_view qname) const {
    auto [prefix, local] = xml::split_qname(qname);
    xml::QName name;
    name.local = local;
    if (auto uri = namespaces_.resolve(prefix)) {
      name.ns = *uri;
    } else {
      name.bound = false;
    }
    return name;
  }
  static bool is(const xml::QName& name, std::string_view ns, std::string_view local) {
    return name.local == local && name.ns == ns;
  }

  // Decides what a new element is to us, from its parent's role (the rules of the DOM walk in
  // envelope.cpp: first Header, first Body, the Body's first child, ...).
  bool open(Frame& frame) {
    if (depth_ == 0) {
      if (!is(resolve(frame.qname), xml::kNsSoap, "Envelope")) return false;
      frame.role = Role::kEnvelope;
      return true;
    }
    frame.role = Role::kOther;
    switch (stack_[depth_ - 1].role) {
      case Role::kEnvelope: {
        const xml::QName name = resolve(frame.qname);
        if (!header_seen_ && is(name, xml::kNsSoap, "Header")) {
          header_seen_ = true;
          frame.role = Role::kHeader;
        } else if (!body_seen_ && is(name, xml::kNsSoap, "Body")) {
          body_seen_ = true;
          frame.role = Role::kBody;
        }
        return true;
      }
      case Role::kHeader:
        if (!relates_seen_ && is(resolve(frame.qname), xml::kNsAddressing, "RelatesTo")) {
          relates_seen_ = true;
          frame.role = Role::kRelatesTo;
          direct_text_.clear();
        }
        return true;
      case Role::kBody: {
        if (response_seen_) return true;
        response_seen_ = true;
        const xml::QName name = resolve(frame.qname);
        // Faults and unexpected bodies: tinyxml2's path parses and reports them.
        if (!is(name, xml::kNsEnumeration, "EnumerateResponse") &&
            !is(name, xml::kNsEnumeration, "PullResponse")) {
          return false;
        }
        frame.role = Role::kResponse;
        return true;
      }
      case Role::kResponse: {
        const xml::QName name = resolve(frame.qname);
        // Windows puts Items/EndOfSequence in w: for EnumerateResponse and n: for
        // PullResponse; either is accepted for both.
        const bool known_ns = name.ns == xml::kNsEnumeration || name.ns == xml::kNsWsman;
        if (name.ns == xml::kNsEnumeration && name.local == "EnumerationContext") {
          frame.role = Role::kContext;
          direct_text_.clear();
        } else if (known_ns && name.local == "EndOfSequence") {
          page_.end_of_sequence = true;
        } else if (known_ns && name.local == "Items") {
          frame.role = Role::kItems;
        }
        return true;
      }
      case Role::kItems:
        frame.role = Role::kItem;
        return open_item(frame);
      case Role::kItem:
        frame.role = Role::kProp;
        return open_prop(frame);
      case Role::kProp:
      case Role::kInProp:
        frame.role = Role::kInProp;
        open_in_prop();
        return true;
      default:
        return true;
    }
  }

  bool open_item(const Frame& frame) {
    if (page_.rows.size() >= limits_.max_rows) return false;  // tinyxml2's path names it
    const xml::QName name = resolve(frame.qname);
    const bool fragment = is(name, xml::kNsWsman, "XmlFragment");
    row_.emplace(builder_.arena, fragment ? std::string_view() : name.local);
    row_->reserve(std::min(builder_.previous_names.size(), limits_.max_properties_per_instance));
    return true;
  }

  bool open_prop(const Frame& frame) {
    prop_name_ = builder_.stored_name(*row_, local_of(frame.qname));
    prop_nil_ = false;
    // xsi:nil, resolved with the property's own declarations in scope.
    for (const Attribute& attribute : attributes_) {
      auto [prefix, local] = xml::split_qname(attribute.name);
      if (local != "nil" || prefix == "xmlns" || prefix.empty()) continue;
      auto uri = namespaces_.resolve(prefix);
      if (uri && *uri == xml::kNsXsi) {
        std::string_view value = xml::trim(attribute.value);
        prop_nil_ = value == "true" || value == "1";
        break;
      }
    }
    mode_ = Mode::kText;
    type_ = Property::Type::kPlain;
    pieces_ = 0;
    first_piece_ = {};
    value_.clear();
    piece_ends_.clear();
    prop_depth_ = depth_;
    return true;
  }

  // A child element of a property: the first one decides the value's shape, as in
  // store_value (envelope.cpp): Datetime/Interval text, or an object's joined text.
  void open_in_prop() {
    if (mode_ != Mode::kText || depth_ != prop_depth_ + 1) return;
    const std::string_view local = local_of(stack_[depth_].qname);
    if (local == "Datetime" || local == "Interval") {
      mode_ = Mode::kTimed;
      type_ = local == "Datetime" ? Property::Type::kDatetime : Property::Type::kInterval;
      value_.clear();  // the property's own text does not count
      timed_open_ = true;
      return;
    }
    mode_ = Mode::kObject;
    type_ = Property::Type::kObject;
    // The text pieces before the element become the object's first pieces.
    std::string before;
    std::vector<std::string_view> pieces;
    if (pieces_ == 1 && value_.empty()) {
      pieces.push_back(first_piece_);
    } else {
      before.swap(value_);
      std::size_t start = 0;
      for (std::size_t end : piece_ends_) {
        pieces.push_back(std::string_view(before).substr(start, end - start));
        start = end;
      }
    }
    value_.clear();
    for (std::string_view piece : pieces) append_object_piece(piece);
  }

  void append_object_piece(std::string_view piece) {
    std::string collapsed = xml::collapse_whitespace(piece);
    if (collapsed.empty()) return;
    if (!value_.empty()) value_ += ' ';
    value_ += collapsed;
  }

  // A text run (not whitespace-only) or a CDATA section in the innermost element.
  bool on_text(const char* a, const char* b, bool cdata) {
    const Role role = stack_[depth_ - 1].role;
    if (role == Role::kRelatesTo || role == Role::kContext) {
      return append_text(a, b, direct_text_, !cdata);
    }
    if (role != Role::kProp && role != Role::kInProp) return true;
    switch (mode_) {
      case Mode::kText:
        // Only the property's direct text can come before its first child element.
        if (pieces_ == 0 && is_verbatim(a, b, !cdata)) {
          first_piece_ = std::string_view(a, static_cast<std::size_t>(b - a));
          pieces_ = 1;
          return true;
        }
        if (pieces_ == 1 && value_.empty()) {
          value_.assign(first_piece_);
          piece_ends_.push_back(value_.size());
        }
        if (!append_text(a, b, value_, !cdata)) return false;
        ++pieces_;
        piece_ends_.push_back(value_.size());
        return true;
      case Mode::kTimed:
        // all_text() of the first child element: text anywhere inside it, nothing else.
        if (!timed_open_ || role == Role::kProp) return true;
        return append_text(a, b, value_, !cdata);
      case Mode::kObject: {
        piece_.clear();
        if (!append_text(a, b, piece_, !cdata)) return false;
        append_object_piece(piece_);
        return true;
      }
    }
    return true;
  }

  bool close_top() {
    Frame& frame = stack_[depth_ - 1];
    bool ok = true;
    switch (frame.role) {
      case Role::kRelatesTo:
        page_.relates_to = std::string(xml::trim(direct_text_));
        break;
      case Role::kContext:
        page_.context = std::string(xml::trim(direct_text_));
        break;
      case Role::kItem:
        builder_.finish_row(*row_);
        page_.rows.push_back(std::move(*row_));
        row_.reset();
        break;
      case Role::kProp:
        ok = close_prop();
        break;
      case Role::kInProp:
        if (mode_ == Mode::kTimed && depth_ - 1 == prop_depth_ + 1) timed_open_ = false;
        break;
      default:
        break;
    }
    namespaces_.pop(frame.ns_mark);
    --depth_;
    return ok;
  }

  bool close_prop() {
    const std::size_t limit = limits_.max_properties_per_instance;
    if (prop_nil_) {
      row_->add_null_stored(prop_name_);
      return row_->properties().size() <= limit;
    }
    std::string_view value;
    if (mode_ == Mode::kText && pieces_ == 1 && value_.empty()) {
      value = builder_.arena->copy(first_piece_);
    } else if (mode_ == Mode::kTimed) {
      value = builder_.arena->copy(xml::trim(value_));
    } else {
      value = builder_.arena->copy(value_);
    }
    const Property& added = row_->add_stored(prop_name_, value, type_);
    return row_->properties().size() <= limit &&
           added.values.size() <= limits_.max_values_per_property;
  }

  enum class Mode : unsigned char { kText, kTimed, kObject };

  const char* p_;
  const char* const end_;
  const ParseLimits& limits_;
  std::array<Frame, kMaxDepth> stack_{};
  std::size_t depth_ = 0;
  xml::NamespaceStack namespaces_;
  std::vector<Attribute> attributes_;  // of the start tag just read
  bool header_seen_ = false;
  bool relates_seen_ = false;
  bool body_seen_ = false;
  bool response_seen_ = false;
  std::string direct_text_;  // RelatesTo / EnumerationContext

  EnumerationPage page_;
  PageBuilder builder_;
  std::optional<Row> row_;
  // The property being read.
  std::string_view prop_name_;
  bool prop_nil_ = false;
  std::size_t prop_depth_ = 0;  // its frame's index
  Mode mode_ = Mode::kText;
  Property::Type type_ = Property::Type::kPlain;
  bool timed_open_ = false;
  std::size_t pieces_ = 0;
  std::string_view first_piece_;  // the only piece, undecoded, while value_ is empty
  std::string value_;
  std::vector<std::size_t> piece_ends_;  // offsets in value_, while mode_ is kText
  std::string piece_;
};

}  // namespace

std::optional<EnumerationPage> scan_enumeration_response(std::string_view text,
                                                         const ParseLimits& limits) {
  return Scanner(text, limits).run();
}

}  // namespace winrm::detail
