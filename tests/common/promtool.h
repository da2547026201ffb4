// Runs `promtool check metrics` on an exposition text (tests only; shared by
// tests/daemon and tests/e2e).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

struct PromtoolResult {
  int status = -1;
  std::string output;
};

// windows_exporter types three *_total families as gauges and the built-ins copy that
// (collectors/src/definition.cpp, windows_exporter_gauge_total); promtool's lint (exit 3)
// flags their names. True when those are the only problems reported.
inline bool only_windows_exporter_lint(const std::string& output) {
  static const std::string kSuffix = " non-counter metrics should not have \"_total\" suffix";
  static const std::string kAllowed[] = {"windows_memory_pool_nonpaged_allocs_total" + kSuffix,
                                         "windows_cache_copy_read_hits_total" + kSuffix,
                                         "windows_udp_datagram_received_total" + kSuffix};
  std::size_t start = 0;
  bool any = false;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string line = output.substr(start, end - start);
    if (!line.empty()) {
      if (std::find(std::begin(kAllowed), std::end(kAllowed), line) == std::end(kAllowed))
        return false;
      any = true;
    }
    start = end + 1;
  }
  return any;
}

inline PromtoolResult promtool_check_metrics(const std::string& text) {
  char path[] = "/tmp/winrm_exporter_promtool_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return {};
  ::close(fd);
  std::ofstream(path) << text;
  std::string command = std::string("promtool check metrics < ") + path + " 2>&1";
  PromtoolResult result;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe)) result.output += buffer;
    int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::remove(path);
  if (result.status == 3 && only_windows_exporter_lint(result.output)) result.status = 0;
  return result;
}
