// Runs `promtool check metrics` on an exposition text (tests only; shared by
// tests/daemon and tests/e2e).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

struct PromtoolResult {
  int status = -1;
  std::string output;
};

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
  return result;
}
