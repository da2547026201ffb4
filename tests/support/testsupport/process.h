// Test support: a child process (a server or a command under test) with stdout and stderr
// to files, stopped and reaped by PID; and bounded waiting.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace testsupport {

class Process {
 public:
  // argv[0] is the binary's path. `extra_env` entries are "NAME=value". stdout_path and
  // stderr_path may name the same file (both streams then go there, in order).
  Process(std::vector<std::string> argv, const std::filesystem::path& stdout_path,
          const std::filesystem::path& stderr_path, std::vector<std::string> extra_env = {}) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Die with the test even when ctest kills it on a timeout (no orphaned servers).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = stderr_path == stdout_path
                          ? out
                          : ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(out, 1);
      ::dup2(err, 2);
      for (auto& kv : extra_env) ::putenv(kv.data());
      std::vector<char*> args;
      for (auto& arg : argv) args.push_back(arg.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Process() { stop(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  // False once it has exited (reaped here; exit_status() and raw_status() tell how).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped(status);
      return false;
    }
    return true;
  }

  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // Waits up to `limit` (polling every 10 ms): the raw wait status, or nullopt while it runs.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (!running()) return raw_status_;
      if (std::chrono::steady_clock::now() >= end) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // SIGTERM, up to 5 s to exit, then SIGKILL. The exit status: the exit code, or 128 plus
  // the signal, 137 when it had to be killed.
  int stop() {
    if (pid_ <= 0) return exit_status_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      reaped(status);
      exit_status_ = 137;
    }
    return exit_status_;
  }

  int exit_status() const { return exit_status_; }
  std::optional<int> raw_status() const { return raw_status_; }

 private:
  void reaped(int status) {
    raw_status_ = status;
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
  }

  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::optional<int> raw_status_;
};

// Polls `pred` every `step` until it holds or `limit` has passed; the last answer.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit,
                std::chrono::milliseconds step = std::chrono::milliseconds(100)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

}  // namespace testsupport
