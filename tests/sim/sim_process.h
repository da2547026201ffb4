// Test helper: runs the winrm-sim binary in a temp dir and stops it by PID (RAII).
#pragma once
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace simtest {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "winrm-sim-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

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
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Die with the test even when ctest kills it on a timeout (no orphaned servers).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      execl(binary.c_str(), binary.c_str(), "--config", config.c_str(), "--ports-file",
            ports.c_str(), "--log-level", "warn", static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(ports)) break;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("winrm-sim exited early; log: " + slurp(log));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
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
  pid_t pid() const { return pid_; }

  // SIGTERM, then SIGKILL after 5 s; returns the exit status (or -1).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return status;
  }

  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::map<std::string, int> ports_;
};

}  // namespace simtest
