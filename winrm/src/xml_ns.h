// Namespace-aware helpers on top of tinyxml2, which knows nothing about namespaces.
// Prefixes are resolved by walking element scopes (nearest xmlns declaration wins),
// because Windows rebinds the same prefix ("p") to different URIs in one document.
#pragma once

#include <tinyxml2.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace winrm::xml {

inline constexpr std::string_view kNsSoap = "http://www.w3.org/2003/05/soap-envelope";
inline constexpr std::string_view kNsAddressing =
    "http://schemas.xmlsoap.org/ws/2004/08/addressing";
inline constexpr std::string_view kNsEnumeration =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
inline constexpr std::string_view kNsWsman = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
inline constexpr std::string_view kNsMsWsman =
    "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
inline constexpr std::string_view kNsXsi = "http://www.w3.org/2001/XMLSchema-instance";
inline constexpr std::string_view kNsWsmanFault =
    "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
inline constexpr std::string_view kNsXml = "http://www.w3.org/XML/1998/namespace";

struct QName {
  std::string_view ns;  // empty when unqualified (or the prefix is unbound)
  std::string_view local;
  bool bound = true;  // false when the prefix had no declaration in scope
};

// The in-scope prefix bindings of one element; `parent` is the enclosing scope and
// must outlive this object (scopes live on the recursion stack).
class Scope {
 public:
  Scope(const tinyxml2::XMLElement* element, const Scope* parent);

  std::optional<std::string_view> resolve(std::string_view prefix) const;
  QName element_name() const { return element_name_; }
  const tinyxml2::XMLElement* element() const { return element_; }
  // Resolves an attribute by namespace URI and local name (unprefixed attributes have no
  // namespace).
  const char* attribute(std::string_view ns, std::string_view local) const;
  bool is(std::string_view ns, std::string_view local) const {
    return element_name_.ns == ns && element_name_.local == local;
  }

 private:
  const tinyxml2::XMLElement* element_;
  const Scope* parent_;
  std::vector<std::pair<std::string_view, std::string_view>> bindings_;  // prefix -> URI
  QName element_name_;
};

std::pair<std::string_view, std::string_view> split_qname(std::string_view qname);

// Concatenated text and CDATA children directly under `element` (not descendants).
std::string direct_text(const tinyxml2::XMLElement* element);
// All descendant text in document order.
std::string all_text(const tinyxml2::XMLElement* element);
// Trims and collapses runs of XML whitespace into single spaces.
std::string collapse_whitespace(std::string_view text);
std::string_view trim(std::string_view text);

}  // namespace winrm::xml
