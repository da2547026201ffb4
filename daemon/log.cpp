#include "log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/utf8.h"

namespace exporter {

namespace {

// logfmt's double-quoted string: backslash escapes, other control characters as \xNN.
std::string logfmt_escaped(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned char>(c));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string logfmt_quote(std::string_view value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '=' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      needs_quotes = true;
    }
  }
  if (!needs_quotes) return std::string(value);
  return logfmt_escaped(value);
}

std::string json_string(std::string_view value) {
  return common::sanitize_utf8(value, common::Utf8Repair::kEachByte);
}

std::string json_quote(std::string_view value) { return nlohmann::json(json_string(value)).dump(); }

namespace {

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    default:
      return "error";
  }
}

std::string rfc3339(spdlog::log_clock::time_point time) {
  auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(time);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time - seconds).count();
  std::time_t t = spdlog::log_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[40];
  std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buffer + n, sizeof buffer - n, ".%03dZ", static_cast<int>(millis));
  return buffer;
}

// The message is the text after an optional "caller: " prefix; key=value pairs the
// caller wrote stay inside msg (no structured-field API in spdlog 1.10).
class ExporterFormatter : public spdlog::formatter {
 public:
  explicit ExporterFormatter(LogFormat format) : format_(format) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == LogFormat::kJson) {
      // ordered_json: the keys in this order, as before (json sorts them).
      const nlohmann::ordered_json entry = {{"ts", rfc3339(msg.time)},
                                            {"level", std::string(level_name(msg.level))},
                                            {"msg", json_string(text)}};
      line = entry.dump() + "\n";
    } else {
      line = "ts=" + rfc3339(msg.time) + " level=" + std::string(level_name(msg.level)) +
             " msg=" + logfmt_quote(text) + "\n";
    }
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<ExporterFormatter>(format_);
  }

 private:
  LogFormat format_;
};

}  // namespace

void setup_logging(std::string_view level, LogFormat format) {
  spdlog::level::level_enum parsed;
  if (level == "debug") {
    parsed = spdlog::level::debug;
  } else if (level == "info") {
    parsed = spdlog::level::info;
  } else if (level == "warn") {
    parsed = spdlog::level::warn;
  } else if (level == "error") {
    parsed = spdlog::level::err;
  } else {
    throw std::invalid_argument("unknown log level");
  }
  auto logger = std::make_shared<spdlog::logger>("winrm_exporter",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::make_unique<ExporterFormatter>(format));
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace exporter
