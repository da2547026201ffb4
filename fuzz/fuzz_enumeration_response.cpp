// libFuzzer: an EnumerateResponse/PullResponse body from the network. Any bytes must give
// a page or an error; every typed accessor of every parsed row runs on the result.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "winrm/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto page = winrm::parse_enumeration_response(body);
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
