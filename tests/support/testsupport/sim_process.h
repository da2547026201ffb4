// Test helper: runs the winrm-sim binary in a temp dir and stops it by PID (RAII), on the
// shared tests/support process and temp dir.
#pragma once
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace simtest {

using testsupport::TempDir;
using testsupport::write_file;

// Generates certs into dir (once per dir) with tests/scripts/gen-certs.sh.
inline void gen_certs(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "server.pem")) return;
  std::string cmd = std::string("sh '") + WINRM_TEST_SCRIPTS + "/gen-certs.sh' '" + dir.string() +
                    "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("gen-certs.sh failed");
}

class SimProcess {
 public:
  // config_yaml may reference "{dir}" for the temp dir (certs live there).
  explicit SimProcess(const std::filesystem::path& dir, std::string config_yaml,
                      const std::string& name = "sim") {
    for (auto pos = config_yaml.find("{dir}"); pos != std::string::npos;
         pos = config_yaml.find("{dir}"))
      config_yaml.replace(pos, 5, dir.string());
    const auto config = dir / (name + ".yaml");
    const auto ports = dir / (name + ".ports");
    const auto log = dir / (name + ".log");
    write_file(config, config_yaml);
    std::filesystem::remove(ports);
    const std::string binary = std::string(WINRM_BINARY_DIR) + "/sim/winrm-sim";
    process_ = std::make_unique<testsupport::Process>(
        std::vector<std::string>{binary, "--config", config.string(), "--ports-file",
                                 ports.string(), "--log-level", "warn"},
        "/dev/null", log);
    testsupport::wait_until([&] { return std::filesystem::exists(ports) || !process_->running(); },
                            std::chrono::seconds(10), std::chrono::milliseconds(20));
    if (!process_->running() && !std::filesystem::exists(ports)) {
      throw std::runtime_error("winrm-sim exited early; log: " + slurp(log));
    }
    std::ifstream in(ports);
    std::string scheme;
    int port = 0;
    while (in >> scheme >> port) ports_[scheme] = port;
    if (ports_.empty()) {
      stop();
      throw std::runtime_error("winrm-sim did not write its ports file");
    }
  }
  ~SimProcess() { stop(); }
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  int port(const std::string& scheme) const {
    auto it = ports_.find(scheme);
    return it == ports_.end() ? 0 : it->second;
  }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // SIGTERM, then SIGKILL after 5 s; returns the exit status (or -1).
  int stop() { return process_ ? process_->stop() : -1; }

  static std::string slurp(const std::filesystem::path& p) { return testsupport::read_file(p); }

 private:
  std::unique_ptr<testsupport::Process> process_;
  std::map<std::string, int> ports_;
};

}  // namespace simtest
