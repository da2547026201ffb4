// A real Prometheus server (Debian's prometheus package) for end-to-end tests: started on a
// free loopback port with the given scrape_configs, 1 s scrape and evaluation intervals,
// stopped by PID when the object goes away.
#pragma once

#include <doctest/doctest.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "e2e_util.h"

namespace e2e {

inline const char* kPrometheus = "/usr/bin/prometheus";

// Percent-encodes everything but RFC 3986 unreserved characters (PromQL in a query string).
inline std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

struct Prometheus {
  std::unique_ptr<Process> process;
  int port = 0;

  Prometheus(const TempDir& dir, const std::string& scrape_configs) {
    write_file(
        dir / "prometheus.yml",
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n" +
            scrape_configs);
    for (int attempt = 0; attempt < 3 && port == 0; ++attempt) {
      int candidate = free_port();
      process = std::make_unique<Process>(
          std::vector<std::string>{
              kPrometheus, "--config.file=" + (dir / "prometheus.yml").string(),
              "--storage.tsdb.path=" + (dir / "data").string(),
              "--web.listen-address=127.0.0.1:" + std::to_string(candidate), "--log.level=warn"},
          dir / "prometheus.out", dir / "prometheus.err");
      if (wait_until(
              [&] { return !process->running() || get(candidate, "/-/ready").status == 200; },
              std::chrono::seconds(30)) &&
          process->running()) {
        port = candidate;
      }
    }
    REQUIRE_MESSAGE(port != 0, read_file(dir / "prometheus.err"));
  }
  std::string get_api(const std::string& path_and_query) const {
    return get(port, path_and_query).body;
  }
  std::string query(const std::string& promql) const {
    return get_api("/api/v1/query?query=" + url_encode(promql));
  }
};

}  // namespace e2e
