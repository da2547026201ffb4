// Helpers shared by the winrm XML/data-layer tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace winrm_test {

inline std::filesystem::path fixture_path(const std::string& relative) {
  return std::filesystem::path(WINRM_TEST_FIXTURES) / relative;
}

inline std::string read_fixture(const std::string& relative) {
  std::ifstream in(fixture_path(relative), std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + relative);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace winrm_test
