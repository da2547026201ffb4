#include "xml_ns.h"

#include <cstring>

namespace winrm::xml {

std::pair<std::string_view, std::string_view> split_qname(std::string_view qname) {
  auto colon = qname.find(':');
  if (colon == std::string_view::npos) return {std::string_view{}, qname};
  return {qname.substr(0, colon), qname.substr(colon + 1)};
}

Scope::Scope(const tinyxml2::XMLElement* element, const Scope* parent)
    : element_(element), parent_(parent) {
  for (const auto* attr = element->FirstAttribute(); attr != nullptr; attr = attr->Next()) {
    std::string_view name = attr->Name();
    if (name == "xmlns") {
      bindings_.emplace_back(std::string_view{}, attr->Value());
    } else if (name.starts_with("xmlns:")) {
      bindings_.emplace_back(name.substr(6), attr->Value());
    }
  }
  auto [prefix, local] = split_qname(element->Name());
  element_name_.local = local;
  if (auto uri = resolve(prefix)) {
    element_name_.ns = *uri;
  } else {
    element_name_.bound = false;
  }
}

std::optional<std::string_view> Scope::resolve(std::string_view prefix) const {
  if (prefix == "xml") return kNsXml;
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent_) {
    // Last declaration on an element wins if a prefix is (illegally) declared twice.
    for (auto it = scope->bindings_.rbegin(); it != scope->bindings_.rend(); ++it) {
      if (it->first == prefix) return it->second;
    }
  }
  // No default namespace declared: unprefixed names are in no namespace.
  if (prefix.empty()) return std::string_view{};
  return std::nullopt;
}

const char* Scope::attribute(std::string_view ns, std::string_view local) const {
  for (const auto* attr = element_->FirstAttribute(); attr != nullptr; attr = attr->Next()) {
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
  std::string out;
  for (const auto* node = element->FirstChild(); node != nullptr; node = node->NextSibling()) {
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

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_xml_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_xml_space(text.back())) text.remove_suffix(1);
  return text;
}

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
