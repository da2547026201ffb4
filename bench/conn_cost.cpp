// conn_cost: what one idle, connected winrm::Session costs the client process. Opens
// --connections Sessions to winrm-sim's virtual hosts over HTTPS with Basic auth (one
// one-row Enumerate each, from --threads threads, as poll workers would), keeps them
// connected and idle, and prints one JSON line: file descriptors, RSS and malloc'd bytes per
// connection (the growth from before the first session to after the last, divided by N), and
// the descriptors and heap each thread held until it exited (its curl multi handle).
// --polls K then runs K more polls on every session from the same threads (keep-alive reuse)
// and adds their wall time and the process's CPU per poll.
// Used by bench/conn-cost.sh (bench/README.md); measures, asserts nothing.
//
//   conn_cost --port P --ca CA.pem [--connections N] [--threads T] [--polls K] [--password PW]
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "winrm/auth.h"
#include "winrm/session.h"

namespace {

struct Options {
  int port = 0;
  std::string ca;
  int connections = 1000;
  int threads = 8;
  int polls = 0;
  std::string password = "s3cret";
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr, "conn_cost: %s\n", problem);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char* value = argv[++i];
    if (arg == "--port") {
      o.port = std::atoi(value);
    } else if (arg == "--ca") {
      o.ca = value;
    } else if (arg == "--connections") {
      o.connections = std::atoi(value);
    } else if (arg == "--threads") {
      o.threads = std::atoi(value);
    } else if (arg == "--polls") {
      o.polls = std::atoi(value);
    } else if (arg == "--password") {
      o.password = value;
    } else {
      usage("unknown option");
    }
  }
  if (o.port <= 0 || o.ca.empty() || o.connections <= 0 || o.threads <= 0) {
    usage("--port and --ca are required; counts must be positive");
  }
  return o;
}

double rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

int open_fds() {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++count;
  }
  return count;
}

double cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double malloc_bytes() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
}

winrm::SessionOptions session_options(const Options& o, int index) {
  char host[32];
  std::snprintf(host, sizeof host, "h%05d.sim.test", index + 1);
  winrm::SessionOptions s;
  s.endpoint.host = host;
  s.endpoint.connect_address = "127.0.0.1";
  s.endpoint.port = o.port;
  s.endpoint.scheme = winrm::Scheme::kHttps;
  s.endpoint.ca_file = o.ca;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  auto counters = std::make_shared<winrm::TransportCounters>();
  // One session first: library, TLS and trust-store set-up are not per connection.
  winrm::Session warm(session_options(o, o.connections),
                      winrm::make_basic_auth("monitor", o.password), counters);
  const auto deadline = [] { return winrm::Clock::now() + std::chrono::seconds(30); };
  constexpr std::string_view kWql = "SELECT Caption FROM Win32_OperatingSystem";
  if (auto rows = warm.enumerate("root/cimv2", kWql, deadline()); !rows) {
    std::fprintf(stderr, "conn_cost: warm-up poll failed: %s\n", rows.error().describe().c_str());
    return 1;
  }
  const double rss0 = rss_bytes();
  const double heap0 = malloc_bytes();
  const int fds0 = open_fds();

  std::vector<std::unique_ptr<winrm::Session>> sessions(static_cast<std::size_t>(o.connections));
  std::vector<int> failures(static_cast<std::size_t>(o.threads), 0);
  std::vector<std::thread> threads;
  // Every thread waits at the end until the heap has been measured with all of them alive,
  // so the difference to after their exit is what a thread holds (its curl multi handle).
  std::latch arrived(o.threads);
  std::latch measured(1);
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < o.connections; i += o.threads) {
        auto session = std::make_unique<winrm::Session>(
            session_options(o, i), winrm::make_basic_auth("monitor", o.password), counters);
        if (auto rows = session->enumerate("root/cimv2", kWql, deadline()); !rows) {
          if (++failures[t] <= 2) {
            std::fprintf(stderr, "conn_cost: %s\n", rows.error().describe().c_str());
          }
        }
        sessions[static_cast<std::size_t>(i)] = std::move(session);
      }
      arrived.count_down();
      measured.wait();
    });
  }
  arrived.wait();
  const double heap_threads_alive = malloc_bytes();
  const int fds_threads_alive = open_fds();
  measured.count_down();
  for (auto& thread : threads) thread.join();
  int failed = 0;
  for (int f : failures) failed += f;
  // Threads have exited: what remains is what the idle sessions hold (plus the arenas the
  // exited threads leave behind, as a pool's parked workers would).
  const double n = o.connections;
  const double fds = (open_fds() - fds0) / n;
  const double rss = (rss_bytes() - rss0) / n;
  const double heap = (malloc_bytes() - heap0) / n;
  const double heap_per_thread = (heap_threads_alive - malloc_bytes()) / o.threads;
  const double fds_per_thread = static_cast<double>(fds_threads_alive - open_fds()) / o.threads;

  // Reuse: every session polls again on its kept connection.
  const auto start = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  threads.clear();
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < o.polls; ++k) {
        for (int i = t; i < o.connections; i += o.threads) {
          if (!sessions[static_cast<std::size_t>(i)]->enumerate("root/cimv2", kWql, deadline())) {
            ++failures[t];
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double polls = static_cast<double>(o.polls) * n;
  failed = 0;
  for (int f : failures) failed += f;
  std::printf(
      "{\"connections\": %d, \"threads\": %d, \"failed\": %d, \"opened\": %llu, "
      "\"fds_per_connection\": %.3f, \"rss_bytes_per_connection\": %.0f, "
      "\"malloc_bytes_per_connection\": %.0f, \"reuse_polls\": %.0f, \"reuse_wall_s\": %.3f, "
      "\"reuse_cpu_us_per_poll\": %.1f, \"fds_per_thread\": %.2f, \"heap_bytes_per_thread\": "
      "%.0f}\n",
      o.connections, o.threads, failed,
      static_cast<unsigned long long>(counters->connections_opened.load()), fds, rss, heap, polls,
      wall, polls > 0 ? (cpu_seconds() - cpu0) / polls * 1e6 : 0.0, fds_per_thread,
      heap_per_thread);
  return failed == 0 ? 0 : 1;
}
