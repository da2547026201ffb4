// libFuzzer: the HTTP response reader end to end. A loopback server thread answers every
// request with the fuzz input bytes and closes; a fresh winrm::make_http_connection POSTs
// to it with a short deadline. Any bytes must give a response or an error, in time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "winrm/transport.h"

namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 300ms;
// Past this the client has hung: a finding, not slowness (the deadline is 300 ms).
constexpr auto kHangLimit = 3s;
constexpr std::size_t kMaxRequestBytes = 1 << 20;

// Reads the request head and Content-Length body so that closing the socket sends FIN,
// not RST (a RST can discard the response before the client reads it). Bounded in bytes
// and time.
void drain_request(int fd) {
  std::string request;
  std::size_t expected = std::string::npos;
  const auto give_up = std::chrono::steady_clock::now() + 1s;
  char buffer[16384];
  while (request.size() < kMaxRequestBytes && std::chrono::steady_clock::now() < give_up) {
    if (expected == std::string::npos) {
      const auto head_end = request.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::size_t length = 0;
        const auto at = request.find("Content-Length:");
        if (at != std::string::npos && at < head_end) {
          length = std::strtoull(request.c_str() + at + 15, nullptr, 10);
        }
        expected = head_end + 4 + length;
      }
    }
    if (expected != std::string::npos && request.size() >= expected) return;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) return;
    request.append(buffer, static_cast<std::size_t>(n));
  }
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the client gave up (deadline, size cap): fine
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Serves the current input to every connection, for the life of the process.
class ResponseServer {
 public:
  ResponseServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      std::perror("fuzz_http_response: loopback listener");
      std::abort();
    }
    port_ = ntohs(address.sin_port);
    std::thread([this] { serve(); }).detach();
  }

  int port() const { return port_; }

  void set_response(std::string_view bytes) {
    std::lock_guard lock(mutex_);
    response_.assign(bytes);
  }

 private:
  void serve() {
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      drain_request(fd);
      std::string response;
      {
        std::lock_guard lock(mutex_);
        response = response_;
      }
      write_all(fd, response);
      shutdown(fd, SHUT_WR);
      // Wait briefly for the client to close first so our close does not reset.
      pollfd pfd{fd, POLLIN, 0};
      char sink[4096];
      for (int i = 0; i < 10 && poll(&pfd, 1, 20) > 0; ++i) {
        if (read(fd, sink, sizeof sink) <= 0) break;
      }
      close(fd);
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::mutex mutex_;
  std::string response_;
};

ResponseServer& server() {
  static auto* instance = new ResponseServer();  // never destroyed: its thread runs on
  return *instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& srv = server();
  srv.set_response(std::string_view(reinterpret_cast<const char*>(data), size));

  winrm::EndpointOptions options;
  options.host = "127.0.0.1";
  options.port = srv.port();
  options.scheme = winrm::Scheme::kHttp;
  options.max_response_bytes = 64 * 1024;  // reachable by the fuzzer: exercises the cap
  options.connect_timeout = 1000ms;
  auto connection = winrm::make_http_connection(options, nullptr);

  winrm::HttpRequest request;
  request.body = "<s:Envelope/>";
  const auto start = winrm::Clock::now();
  auto response = connection->round_trip(request, start + kDeadline);
  const auto elapsed = winrm::Clock::now() - start;
  if (elapsed > kHangLimit) {
    std::fprintf(stderr, "round_trip took %lld ms with a %lld ms deadline\n",
                 static_cast<long long>(
                     std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()),
                 static_cast<long long>(kDeadline.count()));
    std::abort();
  }
  if (response) {
    volatile std::size_t sink = response->body.size() + response->headers.size() +
                                static_cast<std::size_t>(response->status) +
                                response->header_values("WWW-Authenticate").size();
    (void)sink;
  }
  return 0;
}
