// The simulator's data files (sim/data/*.yml: WMI classes and their properties, the
// catalogues hosts draw from), embedded at build time like collectors/builtin/*.yml, so
// winrm-sim reads no file to know what it serves.
#pragma once

#include <string_view>

namespace sim::data {

// The text of "sim/data/<file>" (e.g. "sim/data/classes.yml", the name errors carry).
// std::logic_error for a name not embedded: a bug.
std::string_view text(std::string_view name);

}  // namespace sim::data
