// libFuzzer: an EnumerateResponse/PullResponse body from the network. Any bytes must give
// a page or an error; every typed accessor of every parsed row runs on the result. It is also
// a differential target: the single-pass scanner (with its tinyxml2 fallback) must give exactly
// what the tinyxml2 path alone gives, or the input is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "winrm/envelope.h"

namespace {

std::string render(const winrm::Result<winrm::EnumerationPage>& result) {
  if (!result) {
    return "error " + std::to_string(static_cast<int>(result.error().kind)) + " " +
           std::string(winrm::to_string(result.error().limit)) + " " + result.error().message;
  }
  std::string out = result->context + "|" + result->relates_to + "|" +
                    std::to_string(result->end_of_sequence) + "\n";
  for (const auto& row : result->rows) {
    out += std::string(row.class_name()) + "\n";
    for (const auto& property : row.properties()) {
      out += std::string(property.name) + " " + std::to_string(static_cast<int>(property.type)) +
             " " + std::to_string(property.is_null);
      for (std::string_view value : property.values) {
        out += " [";
        out += value;
        out += ']';
      }
      out += '\n';
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto page = winrm::parse_enumeration_response(body);
  auto dom = winrm::detail::parse_enumeration_response_via(winrm::detail::ParsePath::kDom, body);
  if (!dom || render(page) != render(*dom)) {
    std::fprintf(stderr, "scanner and tinyxml2 disagree\n");
    __builtin_trap();
  }
  if (!page) {
    // A fault body carries its parsed fault; the message must be readable either way.
    volatile std::size_t sink = page.error().message.size();
    (void)sink;
    return 0;
  }
  std::size_t sink = page->context.size() + page->relates_to.size() + page->done();
  for (const auto& row : page->rows) {
    sink += row.class_name().size();
    for (const auto& property : row.properties()) {
      const std::string_view name = property.name;
      sink += row.string(name).value_or("").size();
      sink += row.number(name).has_value() + row.uint64(name).has_value();
      sink += row.int64(name).has_value() + row.boolean(name).has_value();
      sink += row.unix_time(name).has_value() + row.seconds(name).has_value();
      sink += row.find(name) != nullptr;
    }
  }
  volatile std::size_t keep = sink;
  (void)keep;
  return 0;
}
