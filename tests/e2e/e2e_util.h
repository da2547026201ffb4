// Helpers for end-to-end tests: temp dirs, child processes stopped by PID, waiting
// loops bounded in time, HTTP GETs on loopback.
#pragma once

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

namespace e2e {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "winrm_e2e_XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!std::getenv("WINRM_E2E_KEEP")) fs::remove_all(path, ignored);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// A child process with stdout/stderr to files; killed and reaped on destruction.
class Process {
 public:
  Process(std::vector<std::string> argv, const fs::path& stdout_path, const fs::path& stderr_path,
          std::vector<std::string> extra_env = {}) {
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Die with the test even when ctest kills it on a timeout (no orphaned servers).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, 1);
      dup2(err, 2);
      for (auto& kv : extra_env) putenv(kv.data());
      std::vector<char*> args;
      for (auto& arg : argv) args.push_back(arg.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Process() { stop(); }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      return false;
    }
    return true;
  }
  void signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // SIGTERM, wait up to 5 s, then SIGKILL. Returns the exit status.
  int stop() {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && running(); ++i) std::this_thread::sleep_for(50ms);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      exit_status_ = 137;
      pid_ = -1;
    }
    return exit_status_;
  }

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return pred();
}

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

  // sim_yaml_body: everything after the https/http listener lines.
  Sim(const TempDir& dir, const std::string& sim_yaml_body, const std::string& tag = "sim") {
    if (!fs::exists(dir / "ca.pem")) {
      std::string command = std::string("sh ") + WINRM_TEST_SCRIPTS + "/gen-certs.sh " +
                            dir.path.string() + " >/dev/null 2>&1";
      if (run_shell(command) != 0) throw std::runtime_error("gen-certs.sh failed");
    }
    std::string yaml =
        "https: {address: 127.0.0.1, port: 0, cert: " + (dir / "server.pem").string() +
        ", key: " + (dir / "server.key").string() + "}\n" +
        "http: {address: 127.0.0.1, port: 0}\n" + sim_yaml_body;
    write_file(dir / (tag + ".yml"), yaml);
    fs::path ports = dir / (tag + ".ports");
    fs::remove(ports);  // a previous sim's file must not be mistaken for ours
    process = std::make_unique<Process>(
        std::vector<std::string>{kSimBinary, "--config", (dir / (tag + ".yml")).string(),
                                 "--ports-file", ports.string(), "--log-level", "warn"},
        dir / (tag + ".out"), dir / (tag + ".err"));
    bool up = wait_until([&] { return fs::exists(ports) || !process->running(); }, 10s);
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
    for (int attempt = 0; attempt < 3 && port == 0; ++attempt) {
      int candidate = free_port();
      std::vector<std::string> argv = {
          kExporterBinary, "--config.file=" + config.string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(candidate)};
      argv.insert(argv.end(), extra.begin(), extra.end());
      process = std::make_unique<Process>(argv, dir / "exporter.out", stderr_path);
      bool ready = wait_until(
          [&] { return !process->running() || get(candidate, "/-/ready").status == 200; }, 10s);
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
