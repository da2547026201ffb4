// The native transport's name lookups (docs/transport.md, "Native transport"): getaddrinfo
// on a thread each, a bounded number at once, the others queued. For tests and diagnostics.
#pragma once

#include <cstddef>

namespace winrm {

struct NameLookupStats {
  std::size_t running = 0;  // lookup threads started and not yet handed back
  std::size_t queued = 0;   // waiting for a turn (abandoned ones included, until their turn)
  std::size_t limit = 0;    // the most that run at once
};

NameLookupStats native_name_lookups();

}  // namespace winrm
