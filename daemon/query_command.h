// `winrm_exporter query`: one WQL query against one host, rows printed as JSON Lines.
#pragma once

#include <iosfwd>

#include "flags.h"

namespace exporter {

// Returns the process exit status: 0 ok, 1 query or config error.
int run_query(const QueryFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace exporter
