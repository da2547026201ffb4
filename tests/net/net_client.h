// Blocking HTTP/1.1 test client on raw sockets (plain or OpenSSL TLS) for the net tests:
// every read has a socket timeout, so a test that goes wrong fails instead of hanging.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace nettest {

struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers)
      if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
    return {};
  }
};

class Client {
 public:
  // ctx: a client SSL_CTX for TLS, null for plain. sni: server name to send (TLS).
  explicit Client(int port, SSL_CTX* ctx = nullptr, const std::string& sni = {},
                  int timeout_seconds = 10) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    timeval tv{timeout_seconds, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
    if (ctx != nullptr) {
      ssl_ = SSL_new(ctx);
      SSL_set_fd(ssl_, fd_);
      if (!sni.empty()) SSL_set_tlsext_host_name(ssl_, sni.c_str());
      if (SSL_connect(ssl_) != 1) {
        ERR_clear_error();
        handshake_failed_ = true;
      }
    }
  }
  ~Client() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool handshake_failed() const { return handshake_failed_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      long n = ssl_ ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                    : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads one response (Content-Length framed). nullopt on EOF, timeout or garbage.
  std::optional<Reply> read_reply() {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return std::nullopt;
    Reply reply;
    std::string head = buffer_.substr(0, end + 2);
    buffer_.erase(0, end + 4);
    auto eol = head.find("\r\n");
    std::string status_line = head.substr(0, eol);
    if (status_line.size() < 12) return std::nullopt;
    reply.status = std::atoi(status_line.c_str() + 9);
    std::size_t pos = eol + 2;
    while (pos < head.size()) {
      auto e = head.find("\r\n", pos);
      std::string line = head.substr(pos, e - pos);
      pos = e + 2;
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      reply.headers.emplace_back(line.substr(0, colon), value);
    }
    if (reply.status == 100) return read_reply();
    const std::size_t length = std::strtoull(reply.header("Content-Length").c_str(), nullptr, 10);
    if (!head_only_) {
      while (buffer_.size() < length)
        if (!fill()) return std::nullopt;
      reply.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    }
    return reply;
  }

  std::optional<Reply> request(const std::string& method, const std::string& path,
                               const std::string& body = {},
                               const std::string& extra_headers = {}) {
    std::string text = method + " " + path + " HTTP/1.1\r\nHost: test\r\n" + extra_headers;
    if (!body.empty() || method == "POST")
      text += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    text += "\r\n" + body;
    head_only_ = method == "HEAD";
    if (!send(text)) return std::nullopt;
    auto r = read_reply();
    head_only_ = false;
    return r;
  }

  // True when the server closed the connection (EOF or reset) before the socket timeout;
  // bytes received first are kept in received().
  bool wait_closed() {
    while (fill()) {
    }
    return eof_;
  }
  const std::string& received() const { return buffer_; }

 private:
  bool fill() {
    char buf[16384];
    long n = ssl_ ? SSL_read(ssl_, buf, sizeof buf) : ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (ssl_ != nullptr) {
      int err = SSL_get_error(ssl_, static_cast<int>(n));
      ERR_clear_error();
      eof_ = err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno != EAGAIN);
    } else {
      eof_ = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
    return false;
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool handshake_failed_ = false;
  bool head_only_ = false;
  bool eof_ = false;
  std::string buffer_;
};

}  // namespace nettest
