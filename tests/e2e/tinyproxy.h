// A real forward proxy for the proxy tests: Debian's tinyproxy in the foreground on a free
// loopback port, logging every request line it handles (CONNECT host:port, or the
// absolute URI), so a test can prove which traffic crossed it.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "e2e_util.h"

namespace e2e {

struct Tinyproxy {
  std::unique_ptr<Process> process;
  int port = 0;
  fs::path log;

  Tinyproxy(const TempDir& dir, const std::string& tag, const std::string& extra_conf = "") {
    log = dir / (tag + ".log");
    for (int attempt = 0; attempt < 3 && port == 0; ++attempt) {
      const int candidate = free_port();
      write_file(dir / (tag + ".conf"), "Port " + std::to_string(candidate) +
                                            "\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\n"
                                            "LogFile \"" +
                                            log.string() + "\"\nMaxClients 20\nAllow 127.0.0.1\n" +
                                            extra_conf);
      process =
          std::make_unique<Process>(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c",
                                                             (dir / (tag + ".conf")).string()},
                                    dir / (tag + ".out"), dir / (tag + ".err"));
      const bool listening = wait_until(
          [&] {
            if (!process->running()) return false;
            httplib::Client client("127.0.0.1", candidate);
            client.set_connection_timeout(1, 0);
            return static_cast<bool>(client.Get("/"));
          },
          5s);
      if (listening) port = candidate;
    }
    if (port == 0) {
      throw std::runtime_error("tinyproxy did not start: " + read_file(dir / (tag + ".err")) +
                               read_file(log));
    }
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  std::string requests() const { return read_file(log); }
};

}  // namespace e2e
