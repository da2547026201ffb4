// probe_floor: the least any HTTP server can take to answer a /probe on the exporter's core.
// One thread, epoll, keep-alive; every request ("...\r\n\r\n", no body) gets the same
// pre-built answer of --body-bytes random bytes (Content-Encoding: gzip, the size of a
// probe page). It asks the kernel for the same short slice as the exporter's web loop
// thread (common::apply_serving_priority). bench/scale.py runs it pinned next to the
// exporter and probes both, alternately, on one client: what the floor's tail shows, no
// server on that core can beat (bench/README.md).
//
//   probe_floor [--body-bytes N]   prints "port P" once listening on 127.0.0.1 (any port)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/thread_priority.h"

namespace {

struct Connection {
  std::string in;
  size_t out_sent = 0;  // bytes of the answer sent; answer.size() when idle
  bool writing = false;
};

constexpr size_t kMaxRequestBytes = 16 * 1024;  // a request line and headers, no body
constexpr int kMaxConnections = 64;

}  // namespace

int main(int argc, char** argv) {
  size_t body_bytes = 40000;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--body-bytes" && i + 1 < argc) {
      body_bytes = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: probe_floor [--body-bytes N]\n");
      return 2;
    }
  }
  std::string body(body_bytes, '\0');
  std::mt19937 rng(1);
  for (auto& c : body) c = static_cast<char>(rng());
  const std::string answer =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
      "Content-Encoding: gzip\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;

  if (!common::apply_serving_priority(true)) std::fprintf(stderr, "note: short slice refused\n");

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 16) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("probe_floor: listen");
    return 1;
  }
  std::printf("port %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  std::unordered_map<int, Connection> connections;

  auto close_connection = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    connections.erase(fd);
  };
  // Sends what is left of the answer; false when the connection is gone.
  auto send_more = [&](int fd, Connection& c) {
    while (c.out_sent < answer.size()) {
      ssize_t n = send(fd, answer.data() + c.out_sent, answer.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) break;
        return false;
      }
      c.out_sent += static_cast<size_t>(n);
    }
    bool want_out = c.out_sent < answer.size();
    if (want_out != c.writing) {
      epoll_event mod{};
      mod.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
      mod.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mod);
      c.writing = want_out;
    }
    return true;
  };

  epoll_event events[16];
  char buffer[4096];
  for (;;) {
    int n = epoll_wait(ep, events, 16, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int client = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) continue;
        if (static_cast<int>(connections.size()) >= kMaxConnections) {
          close(client);
          continue;
        }
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event add{};
        add.events = EPOLLIN;
        add.data.fd = client;
        epoll_ctl(ep, EPOLL_CTL_ADD, client, &add);
        connections[client].out_sent = answer.size();
        continue;
      }
      auto it = connections.find(fd);
      if (it == connections.end()) continue;
      Connection& c = it->second;
      bool alive = true;
      if (events[i].events & EPOLLOUT) alive = send_more(fd, c);
      if (alive && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t got = recv(fd, buffer, sizeof buffer, 0);
        if (got <= 0) {
          alive = got < 0 && errno == EAGAIN;
        } else {
          c.in.append(buffer, static_cast<size_t>(got));
        }
      }
      // Answers each complete request in turn, once the previous answer is out.
      size_t end = 0;
      while (alive && c.out_sent == answer.size() &&
             (end = c.in.find("\r\n\r\n")) != std::string::npos) {
        c.in.erase(0, end + 4);
        c.out_sent = 0;
        alive = send_more(fd, c);
      }
      if (c.in.size() > kMaxRequestBytes) alive = false;
      if (!alive) close_connection(fd);
    }
  }
}
