#include "xml_ns.h"

#include "seeded_hash.h"

namespace winrm::xml {

std::pair<std::string_view, std::string_view> split_qname(std::string_view qname) {
  auto colon = qname.find(':');
  if (colon == std::string_view::npos) return {std::string_view{}, qname};
  return {qname.substr(0, colon), qname.substr(colon + 1)};
}

std::size_t NamespaceStack::SeededHash::operator()(std::string_view text) const {
  return static_cast<std::size_t>(detail::seeded_hash(text, false));
}

std::uint32_t NamespaceStack::slot_of(std::string_view prefix) const {
  if (slot_index_.empty()) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].prefix == prefix) return static_cast<std::uint32_t>(i);
    }
    return kNone;
  }
  auto it = slot_index_.find(prefix);
  return it == slot_index_.end() ? kNone : it->second;
}

std::uint32_t NamespaceStack::add_slot(std::string_view prefix) {
  constexpr std::size_t kLinearSlots = 16;
  auto slot = static_cast<std::uint32_t>(slots_.size());
  slots_.push_back({prefix, kNone});
  if (slots_.size() > kLinearSlots) {
    if (slot_index_.empty()) {
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        slot_index_.emplace(slots_[i].prefix, static_cast<std::uint32_t>(i));
      }
    } else {
      slot_index_.emplace(prefix, slot);
    }
  }
  return slot;
}

std::size_t NamespaceStack::push(const tinyxml2::XMLElement* element) {
  const std::size_t mark = bindings_.size();
  for (const auto* attr = element->FirstAttribute(); attr != nullptr; attr = attr->Next()) {
    std::string_view name = attr->Name();
    if (!name.starts_with("xmlns")) continue;
    std::string_view prefix;
    if (name.size() > 5) {
      if (name[5] != ':') continue;  // e.g. "xmlnsfoo": an ordinary attribute
      prefix = name.substr(6);
    }
    // A later declaration of the same prefix on one element (illegal) wins, as before.
    bind(prefix, attr->Value());
  }
  return mark;
}

void NamespaceStack::bind(std::string_view prefix, std::string_view uri) {
  std::uint32_t slot = slot_of(prefix);
  if (slot == kNone) slot = add_slot(prefix);
  bindings_.push_back({slot, slots_[slot].top, uri});
  slots_[slot].top = static_cast<std::uint32_t>(bindings_.size() - 1);
}

void NamespaceStack::pop(std::size_t mark) {
  while (bindings_.size() > mark) {
    const Binding& binding = bindings_.back();
    slots_[binding.prefix_slot].top = binding.shadowed;
    bindings_.pop_back();
  }
}

std::optional<std::string_view> NamespaceStack::resolve(std::string_view prefix) const {
  if (prefix == "xml") return kNsXml;
  std::uint32_t slot = slot_of(prefix);
  if (slot != kNone && slots_[slot].top != kNone) return bindings_[slots_[slot].top].uri;
  // No default namespace declared: unprefixed names are in no namespace.
  if (prefix.empty()) return std::string_view{};
  return std::nullopt;
}

QName NamespaceStack::name_of(const tinyxml2::XMLElement* element) const {
  auto [prefix, local] = split_qname(element->Name());
  QName name;
  name.local = local;
  if (auto uri = resolve(prefix)) {
    name.ns = *uri;
  } else {
    name.bound = false;
  }
  return name;
}

const char* NamespaceStack::attribute(const tinyxml2::XMLElement* element, std::string_view ns,
                                      std::string_view local) const {
  for (const auto* attr = element->FirstAttribute(); attr != nullptr; attr = attr->Next()) {
    auto [prefix, name] = split_qname(attr->Name());
    if (name != local || prefix == "xmlns") continue;
    if (prefix.empty()) {
      if (ns.empty()) return attr->Value();
      continue;
    }
    auto uri = resolve(prefix);
    if (uri && *uri == ns) return attr->Value();
  }
  return nullptr;
}

std::string direct_text(const tinyxml2::XMLElement* element) {
  const tinyxml2::XMLNode* node = element->FirstChild();
  // The common case, one text child, is copied once without appends.
  if (node != nullptr && node->NextSibling() == nullptr) {
    const auto* text = node->ToText();
    return text != nullptr ? std::string(text->Value()) : std::string();
  }
  std::string out;
  for (; node != nullptr; node = node->NextSibling()) {
    if (const auto* text = node->ToText()) out += text->Value();
  }
  return out;
}

namespace {
void append_text(const tinyxml2::XMLNode* node, std::string& out) {
  for (const auto* child = node->FirstChild(); child != nullptr; child = child->NextSibling()) {
    if (const auto* text = child->ToText()) {
      out += text->Value();
    } else if (child->ToElement() != nullptr) {
      append_text(child, out);  // depth is bounded by tinyxml2's parse depth limit
    }
  }
}
}  // namespace

std::string all_text(const tinyxml2::XMLElement* element) {
  std::string out;
  append_text(element, out);
  return out;
}

namespace {
bool is_xml_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
}  // namespace

std::string collapse_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : trim(text)) {
    if (is_xml_space(c)) {
      pending_space = true;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

}  // namespace winrm::xml
