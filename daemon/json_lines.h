// Rows as JSON objects (the `query` command's output, one object per line).
#pragma once

#include <string>

#include "winrm/row.h"

namespace exporter {

// {"Name":"x","Nil":null,"Array":["a","b"]}: values stay strings (as on the wire),
// property order as received, UTF-8 sanitised, JSON-escaped.
std::string row_to_json(const winrm::Row& row);

}  // namespace exporter
