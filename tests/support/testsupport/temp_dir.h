// Test support: a temporary directory removed with its contents at scope exit, and whole-
// file reads and writes. One copy for every test (tests/support, CONTRIBUTING.md).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace testsupport {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Replaces the file's contents; throws when it cannot be written.
inline void write_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// $TMPDIR/<prefix>-XXXXXX. Kept after the test when WINRM_TEST_KEEP (or the older
// WINRM_E2E_KEEP) is set, to read the logs of a failure.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "winrm-test") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    if (std::getenv("WINRM_TEST_KEEP") || std::getenv("WINRM_E2E_KEEP")) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Writes `name` (relative, parent folders created) with `mode`; returns its full path.
  std::string write(const std::string& name, std::string_view content, mode_t mode = 0600) const {
    const std::filesystem::path file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    write_file(file, content);
    ::chmod(file.c_str(), mode);
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace testsupport
