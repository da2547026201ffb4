// Test helpers: a self-removing temp directory and error capture for config::load.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "winrm-config-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Writes name (relative, parent folders created) and returns its full path.
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const std::filesystem::path file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    ::chmod(file.c_str(), mode);
    return file.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The ConfigError text load() throws; fails the test when it does not throw.
inline std::string load_error(const std::string& path) {
  try {
    config::load(path);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError from " << path);
  return {};
}
