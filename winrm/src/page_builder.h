// Row building shared by the two EnumerateResponse parsers (the tinyxml2 DOM walk in
// envelope.cpp and the single-pass scanner in enumeration_scanner.cpp), so that both store
// names, values and the page's memory estimate the same way. Internal to winrm/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/envelope.h"
#include "winrm/row.h"

namespace winrm::detail {

// malloc's per-block overhead, for the estimate of EnumerationPage::stored_bytes.
inline constexpr std::size_t kMallocOverhead = 16;

// State shared by the rows of one page: their text arena, the previous row's property names
// (rows of a page are usually one class, so names are stored once per page, not per row) and
// a scratch string for values that need assembling.
struct PageBuilder {
  std::shared_ptr<TextArena> arena = std::make_shared<TextArena>();
  std::vector<std::string_view> previous_names;
  std::string scratch;
  std::size_t row_bytes = 0;  // stored_bytes beyond the arena

  // The stored copy of a property name: the previous row's at this position, this row's last
  // (array repeats), or a new one in the arena.
  std::string_view stored_name(const Row& row, std::string_view name) {
    const auto& properties = row.properties();
    if (properties.size() < previous_names.size() && previous_names[properties.size()] == name) {
      return previous_names[properties.size()];
    }
    if (!properties.empty() && properties.back().name == name) return properties.back().name;
    return arena->copy(name);
  }

  // Called once a row is complete: its names become the next row's, and its own memory (the
  // property vector and the name index, about two 4-byte slots per property) is counted; the
  // text is in the arena, counted once per page.
  void finish_row(const Row& row) {
    previous_names.clear();
    previous_names.reserve(row.properties().size());  // one allocation, not doublings
    for (const auto& property : row.properties()) previous_names.push_back(property.name);
    row_bytes += row.properties().capacity() * sizeof(Property) + kMallocOverhead +
                 row.properties().size() * 2 * sizeof(std::uint32_t);
  }

  std::size_t stored_bytes(const EnumerationPage& page) const {
    return row_bytes + page.rows.capacity() * sizeof(Row) + arena->allocated_bytes() +
           arena->chunk_count() * kMallocOverhead;
  }
};

// Single-pass scanner for EnumerateResponse/PullResponse bodies (enumeration_scanner.cpp).
// `text` is the decoded UTF-8 body, without NUL bytes or character references ("&#"). Returns
// nullopt whenever the body is anything but a well-formed response it fully understands (faults,
// malformed or unusual XML, a limit reached): the caller then parses it with tinyxml2, which gives
// the error or the page. For every body it accepts, the page equals the tinyxml2 path's
// (tests/winrm/test_scanner_differential.cpp).
std::optional<EnumerationPage> scan_enumeration_response(std::string_view text,
                                                         const ParseLimits& limits);

}  // namespace winrm::detail
