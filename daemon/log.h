// spdlog set-up with exporter-convention output: logfmt or JSON lines on stderr.
#pragma once

#include <string>
#include <string_view>

namespace exporter {

enum class LogFormat { kLogfmt, kJson };

// Installs the default logger. level: debug|info|warn|error. Throws std::invalid_argument.
void setup_logging(std::string_view level, LogFormat format);

// Helpers for the formatter (exposed for tests).
std::string logfmt_quote(std::string_view value);
std::string json_quote(std::string_view value);
// `value` as valid UTF-8 (one U+FFFD per invalid byte) for a nlohmann::json string, which
// refuses invalid UTF-8 when dumped.
std::string json_string(std::string_view value);

}  // namespace exporter
