// Helpers for end-to-end tests: temp dirs, child processes stopped by PID, waiting
// loops bounded in time, HTTP GETs on loopback.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "testsupport/process.h"
#include "testsupport/temp_dir.h"

namespace e2e {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// The temp dir, file helpers, child process and bounded wait every test shares.
using testsupport::Process;
using testsupport::read_file;
using testsupport::TempDir;
using testsupport::wait_until;
using testsupport::write_file;

inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

struct HttpResult {
  int status = 0;  // 0: no response
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

inline HttpResult http(const std::string& method, int port, const std::string& path,
                       httplib::Headers headers = {}, bool decompress = true) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  client.set_decompress(decompress);
  httplib::Result result =
      method == "POST" ? client.Post(path, headers, "", "") : client.Get(path, headers);
  HttpResult out;
  if (!result) return out;
  out.status = result->status;
  out.body = result->body;
  out.headers = result->headers;
  return out;
}

inline HttpResult get(int port, const std::string& path, httplib::Headers headers = {}) {
  return http("GET", port, path, std::move(headers));
}

inline std::string gunzip(const std::string& data) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) return {};
  std::string out;
  char buffer[65536];
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  int status;
  do {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  } while (status == Z_OK);
  inflateEnd(&stream);
  return status == Z_STREAM_END ? out : std::string();
}

// Value of the first sample line starting with `prefix` ("name{labels}"), or nullopt.
inline std::optional<double> sample_value(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix + " ", 0) == 0)
      return std::strtod(line.c_str() + prefix.size() + 1, nullptr);
  }
  return std::nullopt;
}

// What every target that logged on with Negotiate (Kerberos or NTLM) shows on /metrics:
// up, a CPU sample, and at least one handshake.
inline void check_negotiated_targets(const std::string& metrics,
                                     const std::vector<std::string>& targets) {
  for (const auto& target : targets) {
    CAPTURE(target);
    CHECK(sample_value(metrics, "winrm_exporter_target_up{target=\"" + target + "\"}") == 1.0);
    CHECK(metrics.find("windows_cpu_time_total{target=\"" + target + "\"") != std::string::npos);
    auto handshakes =
        sample_value(metrics, "winrm_exporter_auth_handshakes_total{target=\"" + target + "\"}");
    REQUIRE(handshakes);
    CHECK(*handshakes >= 1);
  }
}

inline std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

inline int run_shell(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline const std::string kBinaryDir = WINRM_BINARY_DIR;
inline const std::string kSimBinary = kBinaryDir + "/sim/winrm-sim";
inline const std::string kExporterBinary = kBinaryDir + "/daemon/winrm_exporter";

// A running winrm-sim with generated certificates in dir.
struct Sim {
  std::unique_ptr<Process> process;
  int https_port = 0;
  int http_port = 0;

  // sim_yaml_body: everything after the https/http listener lines; https_extra: more keys
  // of the https listener (", client_ca: ...").
  Sim(const TempDir& dir, const std::string& sim_yaml_body, const std::string& tag = "sim",
      const std::string& https_extra = "", const std::string& log_level = "warn") {
    if (!fs::exists(dir / "ca.pem")) {
      std::string command = std::string("sh ") + WINRM_TEST_SCRIPTS + "/gen-certs.sh " + dir.str() +
                            " >/dev/null 2>&1";
      if (run_shell(command) != 0) throw std::runtime_error("gen-certs.sh failed");
    }
    std::string yaml =
        "https: {address: 127.0.0.1, port: 0, cert: " + (dir / "server.pem").string() +
        ", key: " + (dir / "server.key").string() + https_extra + "}\n" +
        "http: {address: 127.0.0.1, port: 0}\n" + sim_yaml_body;
    write_file(dir / (tag + ".yml"), yaml);
    fs::path ports = dir / (tag + ".ports");
    fs::remove(ports);  // a previous sim's file must not be mistaken for ours
    process = std::make_unique<Process>(
        std::vector<std::string>{kSimBinary, "--config", (dir / (tag + ".yml")).string(),
                                 "--ports-file", ports.string(), "--log-level", log_level},
        dir / (tag + ".out"), dir / (tag + ".err"));
    // 60 s: the wait ends when the ports file appears; under ASan with the slow unwinder
    // (the NTLM tests) on a loaded machine a start took over 10 s (3-6 s was common).
    bool up = wait_until([&] { return fs::exists(ports) || !process->running(); }, 60s);
    if (!up || !fs::exists(ports)) {
      throw std::runtime_error("winrm-sim did not start: " + read_file(dir / (tag + ".err")));
    }
    std::istringstream lines(read_file(ports));
    std::string scheme;
    int port;
    while (lines >> scheme >> port) {
      if (scheme == "https") https_port = port;
      if (scheme == "http") http_port = port;
    }
  }
};

// A running winrm_exporter listening on a free loopback port.
struct Exporter {
  std::unique_ptr<Process> process;
  int port = 0;
  fs::path stderr_path;

  Exporter(const TempDir& dir, const fs::path& config, std::vector<std::string> extra = {}) {
    stderr_path = dir / "exporter.err";
    // A retry for a port taken meanwhile (the exporter exits); a slow start is waited for.
    for (int attempt = 0; attempt < 3 && port == 0; ++attempt) {
      int candidate = free_port();
      std::vector<std::string> argv = {
          kExporterBinary, "--config.file=" + config.string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(candidate)};
      argv.insert(argv.end(), extra.begin(), extra.end());
      process = std::make_unique<Process>(argv, dir / "exporter.out", stderr_path);
      bool ready = wait_until(
          [&] { return !process->running() || get(candidate, "/-/ready").status == 200; }, 60s);
      if (ready && process->running()) port = candidate;
    }
    if (port == 0) throw std::runtime_error("exporter did not start: " + read_file(stderr_path));
  }
  std::string metrics() const { return get(port, "/metrics").body; }

  struct Scrape {
    bool ok = false;   // pred held before the limit
    std::string body;  // the last /metrics body seen
  };
  // Scrapes /metrics until pred(body) holds or limit passes.
  template <typename Pred>
  Scrape metrics_when(Pred pred, std::chrono::milliseconds limit) const {
    Scrape scrape;
    scrape.ok = wait_until(
        [&] {
          scrape.body = metrics();
          return pred(scrape.body);
        },
        limit);
    return scrape;
  }
};

}  // namespace e2e
