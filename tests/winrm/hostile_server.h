// A scripted raw-socket server on 127.0.0.1 for the hostile-server suite: it runs in a
// forked child (stopped by PID, dies with the test through PR_SET_PDEATHSIG) and plays
// whatever byte stream the test scripts, over plain TCP or TLS.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "testsupport/process.h"

namespace hostile {

using namespace std::chrono_literals;

// One accepted connection, plain or TLS. Writes report false once the client is gone.
class Peer {
 public:
  Peer(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}

  bool send(std::string_view data) {
    while (!data.empty()) {
      const int chunk = static_cast<int>(std::min<std::size_t>(data.size(), 1 << 16));
      const long n = ssl_ ? SSL_write(ssl_, data.data(), chunk)
                          : ::send(fd_, data.data(), chunk, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // `count` copies of `unit`, written in large pieces without holding them in memory.
  bool send_repeated(char unit, std::size_t count) {
    const std::string block(1 << 16, unit);
    while (count > 0) {
      const std::size_t n = std::min(count, block.size());
      if (!send(std::string_view(block).substr(0, n))) return false;
      count -= n;
    }
    return true;
  }

  // One byte per `every` until `data` is sent or the client hangs up.
  bool trickle(std::string_view data, std::chrono::milliseconds every) {
    for (char c : data) {
      if (!send(std::string_view(&c, 1))) return false;
      std::this_thread::sleep_for(every);
    }
    return true;
  }

  // Reads one request head and its Content-Length body (bounded). False on EOF/error.
  bool read_request() {
    std::string data;
    std::size_t head_end = std::string::npos;
    char buffer[16384];
    while (data.size() < (64u << 20)) {
      if (head_end == std::string::npos) {
        head_end = data.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          head_end += 4;
          std::size_t length = 0;
          const auto cl = data.find("Content-Length:");
          if (cl != std::string::npos && cl < head_end) {
            length = std::strtoull(data.c_str() + cl + 15, nullptr, 10);
          }
          body_expected_ = head_end + length;
        }
      }
      if (head_end != std::string::npos && data.size() >= body_expected_) return true;
      const long n =
          ssl_ ? SSL_read(ssl_, buffer, sizeof buffer) : ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      data.append(buffer, static_cast<std::size_t>(n));
    }
    return false;
  }

  // Reads a little of the request, then resets the connection (RST, not FIN).
  void read_some_then_reset(std::size_t bytes) {
    char buffer[4096];
    std::size_t got = 0;
    while (got < bytes) {
      const long n =
          ssl_ ? SSL_read(ssl_, buffer, sizeof buffer) : ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    reset();
  }

  void reset() {
    linger abort{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    ::close(fd_);
    fd_ = -1;
  }

  // Holds the connection open until the client closes it or `limit` passes.
  void wait_for_close(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    char buffer[4096];
    while (fd_ >= 0 && std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        const long n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) return;
      }
    }
  }

  int fd() const { return fd_; }
  SSL* ssl() const { return ssl_; }  // nullptr for plain TCP

 private:
  int fd_;
  SSL* ssl_;
  std::size_t body_expected_ = 0;
};

using Script = std::function<void(Peer&)>;

struct TlsFiles {
  std::string cert;
  std::string key;
};

// Serves `script` on up to `max_connections` connections, one after another, in a forked
// child that lives at most `lifetime`.
class Server {
 public:
  explicit Server(Script script, const TlsFiles* tls = nullptr, int max_connections = 4,
                  std::chrono::seconds lifetime = 60s) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket");
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("bind/listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      signal(SIGPIPE, SIG_IGN);
      alarm(static_cast<unsigned>(lifetime.count()));  // bounded even if never stopped
      serve(script, tls, max_connections);
      _exit(0);
    }
    ::close(listen_fd_);
    listen_fd_ = -1;
  }

  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

  int port() const { return port_; }

 private:
  void serve(const Script& script, const TlsFiles* tls, int max_connections) {
    SSL_CTX* ctx = nullptr;
    if (tls != nullptr) {
      ctx = SSL_CTX_new(TLS_server_method());
      if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx, tls->key.c_str(), SSL_FILETYPE_PEM) != 1) {
        _exit(3);
      }
    }
    for (int i = 0; i < max_connections; ++i) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) _exit(4);
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      SSL* ssl = nullptr;
      if (ctx != nullptr) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
          SSL_free(ssl);
          ::close(fd);
          continue;
        }
      }
      Peer peer(fd, ssl);
      script(peer);
      if (ssl != nullptr) SSL_free(ssl);  // no close_notify: scripts decide what is sent
      if (peer.fd() >= 0) ::close(peer.fd());
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Peak-RSS probe for the calling process: reset the high-water mark, then read it.
class PeakRss {
 public:
  PeakRss() {
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
    baseline_kib_ = read_status_kib("VmRSS:");
  }
  // Growth of the peak over the RSS at construction, in bytes.
  long growth_bytes() const { return (read_status_kib("VmHWM:") - baseline_kib_) * 1024; }

 private:
  static long read_status_kib(const char* field) {
    std::ifstream status("/proc/self/status");
    std::string line;
    const std::size_t field_len = std::strlen(field);
    while (std::getline(status, line)) {
      if (line.compare(0, field_len, field) == 0)
        return std::strtol(line.c_str() + field_len, nullptr, 10);
    }
    return 0;
  }
  long baseline_kib_ = 0;
};

// A child process (e.g. `winrm_exporter query`) with stdout/stderr to files; wait() gives
// its raw wait status, which tells an exit from a signal.
using Child = testsupport::Process;

}  // namespace hostile
