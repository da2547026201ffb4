#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "sd_notify.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_sd_notify {

using namespace exporter;

namespace {

// Binds a datagram socket to name (abstract when it starts with '@').
int bind_notify_socket(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, name.data(), name.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') {
    address.sun_path[0] = '\0';
  } else {
    ++length;
  }
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

std::string receive(int fd) {
  char buffer[256];
  ssize_t n = recv(fd, buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

TEST_CASE("sd_notify sends datagrams to abstract and path sockets") {
  std::string abstract = "@winrm_exporter_test_" + std::to_string(getpid());
  int fd = bind_notify_socket(abstract);
  setenv("NOTIFY_SOCKET", abstract.c_str(), 1);
  CHECK(sd_notify("READY=1"));
  CHECK(receive(fd) == "READY=1");
  CHECK(sd_notify("RELOADING=1\nMONOTONIC_USEC=1"));
  CHECK(receive(fd) == "RELOADING=1\nMONOTONIC_USEC=1");
  close(fd);

  std::string path = "/tmp/winrm_exporter_notify_" + std::to_string(getpid());
  unlink(path.c_str());
  fd = bind_notify_socket(path);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  CHECK(sd_notify("STOPPING=1"));
  CHECK(receive(fd) == "STOPPING=1");
  close(fd);
  unlink(path.c_str());

  unsetenv("NOTIFY_SOCKET");
  CHECK(sd_notify("READY=1"));  // no-op without NOTIFY_SOCKET
}

TEST_CASE("watchdog interval is half of WATCHDOG_USEC, only for our pid") {
  unsetenv("WATCHDOG_PID");
  setenv("WATCHDOG_USEC", "4000000", 1);
  auto interval = sd_watchdog_interval();
  REQUIRE(interval);
  CHECK(interval->count() == 2000000);
  setenv("WATCHDOG_PID", "1", 1);
  CHECK_FALSE(sd_watchdog_interval());
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  CHECK(sd_watchdog_interval());
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  CHECK_FALSE(sd_watchdog_interval());
}

}  // namespace test_sd_notify
