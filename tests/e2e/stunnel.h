// A TLS front for the https:// proxy tests: Debian's stunnel4 in the foreground, one
// service per (certificate, backend port) on free loopback ports, terminating TLS and
// passing the plain bytes to the backend (a tinyproxy), so the exporter speaks TLS to the
// proxy itself. Its log (debug 5) names every service that accepted a connection.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "e2e_util.h"

namespace e2e {

struct Stunnel {
  struct Service {
    std::string name;
    std::string cert_file;  // PEM certificate chain
    std::string key_file;
    int backend_port = 0;
  };
  std::unique_ptr<Process> process;
  std::vector<int> ports;  // one per service, in order
  fs::path log;

  Stunnel(const TempDir& dir, const std::string& tag, const std::vector<Service>& services) {
    log = dir / (tag + ".err");
    for (int attempt = 0; attempt < 3 && ports.empty(); ++attempt) {
      std::vector<int> candidates;
      std::string conf = "foreground = yes\npid =\ndebug = 5\n";
      for (const auto& s : services) {
        candidates.push_back(free_port());
        conf += "[" + s.name + "]\naccept = 127.0.0.1:" + std::to_string(candidates.back()) +
                "\nconnect = 127.0.0.1:" + std::to_string(s.backend_port) +
                "\ncert = " + s.cert_file + "\nkey = " + s.key_file + "\n";
      }
      write_file(dir / (tag + ".conf"), conf);
      process = std::make_unique<Process>(
          std::vector<std::string>{"/usr/bin/stunnel4", (dir / (tag + ".conf")).string()},
          dir / (tag + ".out"), log);
      const bool listening = wait_until(
          [&] {
            if (!process->running()) return false;
            for (int port : candidates) {
              if (!accepts(port)) return false;
            }
            return true;
          },
          5s);
      if (listening) ports = candidates;
    }
    if (ports.empty()) throw std::runtime_error("stunnel4 did not start: " + read_file(log));
  }
  std::string url(std::size_t service) const {
    return "https://127.0.0.1:" + std::to_string(ports.at(service));
  }
  std::string messages() const { return read_file(log); }

  static bool accepts(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    return ok;
  }
};

}  // namespace e2e
