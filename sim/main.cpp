// winrm-sim: a WinRM (WS-Management/WQL) simulator serving many virtual Windows hosts.
//   winrm-sim --config FILE [--ports-file FILE] [--log-level debug|info|warn]
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "config.h"
#include "server.h"

namespace {

void usage() {
  std::cerr << "usage: winrm-sim --config FILE [--ports-file FILE] [--log-level debug|info|warn]\n";
}

// Written to a temp file then renamed, so readers never see a partial file.
void write_ports_file(const std::string& path,
                      const std::vector<std::pair<std::string, int>>& ports) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    for (const auto& [scheme, port] : ports) out << scheme << ' ' << port << '\n';
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, ports_file, log_level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      out = argv[++i];
    };
    if (a == "--config")
      value(config_path);
    else if (a == "--ports-file")
      value(ports_file);
    else if (a == "--log-level")
      value(log_level);
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    usage();
    return 2;
  }
  auto logger = spdlog::stderr_color_mt("winrm-sim");
  spdlog::set_default_logger(logger);
  if (log_level == "debug")
    spdlog::set_level(spdlog::level::debug);
  else if (log_level == "warn")
    spdlog::set_level(spdlog::level::warn);
  else if (log_level == "info")
    spdlog::set_level(spdlog::level::info);
  else {
    usage();
    return 2;
  }

  // Signals go to a dedicated thread; all other threads inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    sim::SimServer server(sim::load_config(config_path));
    auto ports = server.bind();
    if (!ports_file.empty()) write_ports_file(ports_file, ports);
    std::thread signal_thread([&server, signals] {
      int sig = 0;
      sigwait(&signals, &sig);
      spdlog::info("winrm-sim: signal {}, stopping", sig);
      server.stop();
      // In-flight keep-alive connections would delay the exit by seconds; nothing to save.
      spdlog::default_logger()->flush();
      std::fflush(nullptr);
      std::_Exit(0);
    });
    signal_thread.detach();
    server.run();
    spdlog::default_logger()->flush();
    // Worker threads may still sit in keep-alive waits; the process state is disposable.
    std::fflush(nullptr);
    std::_Exit(0);
  } catch (const std::exception& e) {
    spdlog::error("winrm-sim: {}", e.what());
    return 1;
  }
}
