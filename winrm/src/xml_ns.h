// Namespace-aware helpers on top of tinyxml2, which knows nothing about namespaces.
// Prefixes are resolved through a stack of the xmlns declarations in scope (nearest wins),
// because Windows rebinds the same prefix ("p") to different URIs in one document. Each
// declaration is pushed and popped once and a lookup is O(1), so resolving every name of a
// document is linear in its size however deep it nests or however many prefixes it declares.
#pragma once

#include <tinyxml2.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/strings.h"

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

// The xmlns declarations in scope during a depth-first walk. Views point into the tinyxml2
// document, which must outlive the stack.
class NamespaceStack {
 public:
  // Pushes the declarations on `element`; returns the mark to pop back to.
  std::size_t push(const tinyxml2::XMLElement* element);
  void pop(std::size_t mark);
  // For parsers without a tinyxml2 DOM: declares `prefix` (empty: the default namespace) as
  // `uri` until pop() returns below mark(). `uri` must outlive the binding.
  void bind(std::string_view prefix, std::string_view uri);
  std::size_t mark() const { return bindings_.size(); }

  std::optional<std::string_view> resolve(std::string_view prefix) const;
  QName name_of(const tinyxml2::XMLElement* element) const;
  // Value of the attribute with this namespace URI and local name (unprefixed attributes have
  // no namespace); nullptr when absent. The element's own declarations must be pushed.
  const char* attribute(const tinyxml2::XMLElement* element, std::string_view ns,
                        std::string_view local) const;

 private:
  static constexpr std::uint32_t kNone = static_cast<std::uint32_t>(-1);
  struct Binding {
    std::uint32_t prefix_slot;
    std::uint32_t shadowed;  // binding this one hides, restored on pop (kNone: unbound)
    std::string_view uri;
  };
  struct PrefixSlot {
    std::string_view prefix;
    std::uint32_t top = kNone;  // innermost binding in scope
  };
  std::uint32_t slot_of(std::string_view prefix) const;  // kNone when never declared
  std::uint32_t add_slot(std::string_view prefix);

  // Seeded per process: std::hash's fixed seed would let a response pick colliding prefixes.
  struct SeededHash {
    std::size_t operator()(std::string_view text) const;
  };

  std::vector<Binding> bindings_;
  std::vector<PrefixSlot> slots_;  // one per distinct prefix ever declared
  // Searched linearly while small (Windows uses a handful of prefixes), hashed beyond.
  std::unordered_map<std::string_view, std::uint32_t, SeededHash> slot_index_;
};

// One element's scope: pushes its declarations on construction, pops them on destruction.
// Scopes must nest like the elements they stand for.
class Scope {
 public:
  Scope(NamespaceStack& stack, const tinyxml2::XMLElement* element)
      : stack_(stack),
        element_(element),
        mark_(stack.push(element)),
        element_name_(stack.name_of(element)) {}
  ~Scope() { stack_.pop(mark_); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  QName element_name() const { return element_name_; }
  const tinyxml2::XMLElement* element() const { return element_; }
  NamespaceStack& stack() const { return stack_; }
  const char* attribute(std::string_view ns, std::string_view local) const {
    return stack_.attribute(element_, ns, local);
  }
  bool is(std::string_view ns, std::string_view local) const {
    return element_name_.local == local && element_name_.ns == ns;
  }

 private:
  NamespaceStack& stack_;
  const tinyxml2::XMLElement* element_;
  std::size_t mark_;
  QName element_name_;
};

std::pair<std::string_view, std::string_view> split_qname(std::string_view qname);

// Concatenated text and CDATA children directly under `element` (not descendants).
std::string direct_text(const tinyxml2::XMLElement* element);
// All descendant text in document order.
std::string all_text(const tinyxml2::XMLElement* element);
// Trims and collapses runs of XML whitespace into single spaces.
std::string collapse_whitespace(std::string_view text);
// XML whitespace (space, tab, CR, LF) off both ends.
using common::trim;

}  // namespace winrm::xml
