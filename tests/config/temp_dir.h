// Config test helpers: the shared temp directory and error capture for config::load.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "config/config.h"
#include "testsupport/temp_dir.h"

using testsupport::TempDir;

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
