// winrm_exporter: Prometheus exporter polling Windows hosts with WQL over WinRM.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>

#include "app.h"
#include "common/thread_priority.h"
#include "flags.h"
#include "log.h"
#include "query_command.h"
#include "sd_notify.h"
#include "web.h"

namespace {

// glibc keeps what poll threads free in its arenas for reuse, and at 10,000 hosts the free
// part wandered between 150 and 270 MiB from run to run (RSS 848-970 MiB against a 1 GiB
// budget, bench/RESULTS.md). Once a minute, when more than 64 MiB lie free, hand the free
// pages back to the kernel (malloc_trim walks the arenas under their locks: a few ms).
void release_free_heap() {
  const struct mallinfo2 before = mallinfo2();
  constexpr std::size_t kWorthTrimming = 64 << 20;
  if (before.fordblks < kWorthTrimming) return;
  const auto start = std::chrono::steady_clock::now();
  const bool released = malloc_trim(0) != 0;
  spdlog::debug("heap trimmed free_mib={} released={} took_ms={}", before.fordblks >> 20, released,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count());
}

using namespace exporter;

constexpr const char* kVersion = WINRM_EXPORTER_VERSION;
constexpr const char* kRevision = WINRM_EXPORTER_REVISION;

int check_config(const std::string& path, Shard shard) {
  try {
    config::Config config = config::load(path);
    std::size_t jobs = 0;
    std::size_t owned = 0;
    for (const auto& target : config.targets) {
      jobs += target.collectors.size();
      if (shard.owns(target.name)) ++owned;
    }
    std::cout << "configuration OK: " << path << "\n"
              << "  targets: " << config.targets.size() << "\n";
    if (shard.total > 1) {
      std::cout << "  targets of shard " << shard.index << " of " << shard.total << ": " << owned
                << "\n";
    }
    std::cout << "  credential profiles: " << config.credentials.size() << "\n"
              << "  collectors available: " << config.collectors.size() << "\n"
              << "  polls per round (target x collector): " << jobs << "\n"
              << config::describe(config);
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "configuration invalid: " << error.what() << "\n";
    return 1;
  }
}

int serve(const ServeFlags& flags) {
  std::vector<ListenAddress> addresses;
  for (const auto& text : flags.listen_addresses) addresses.push_back(*parse_listen_address(text));

  // Signals are taken synchronously by the main thread; block them before any thread
  // starts so that every thread inherits the mask.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  spdlog::info("starting winrm_exporter version={} revision={}", kVersion, kRevision);
  // Before any polling or web thread starts (they apply it as they start).
  common::set_polling_nice_offset(flags.scheduler_nice);
  App app(flags.config_file, flags.scheduler_workers, kVersion, kRevision,
          Shard{flags.shard, flags.total_shards});
  // Test hook: stalls the scheduler so that tests can see the watchdog stop.
  if (const char* stall = std::getenv("WINRM_EXPORTER_TEST_STALL_AFTER_POLLS"); stall && *stall) {
    app.stall_polls_after(std::strtoull(stall, nullptr, 10));
    spdlog::warn("test hook: every poll after the first {} blocks until shutdown", stall);
  }
  if (auto loaded = app.load(); !loaded) {
    spdlog::error("cannot load configuration: {}", loaded.error());
    return 1;
  }

  auto reload = [&app]() -> std::expected<void, std::string> {
    auto result = app.load();
    if (result) {
      spdlog::info("configuration reloaded");
    } else {
      spdlog::error("configuration reload failed, keeping the running configuration: {}",
                    result.error());
    }
    return result;
  };
  WebHandlers handlers;
  handlers.metrics = [&app] { return app.render_metrics(); };
  handlers.metrics_gzip = [&app] { return app.render_metrics_gzip(); };
  handlers.probe = [&app](const std::string& target, std::string& page) {
    return app.render_probe(target, page);
  };
  handlers.sd = [&app] { return app.render_sd(); };
  handlers.ready = [&app] { return app.ready(); };
  handlers.healthy = [&app] { return app.healthy(); };
  handlers.reload = [&reload] {
    sd_notify("RELOADING=1");
    auto result = reload();
    sd_notify("READY=1");
    return result;
  };
  handlers.version = kVersion;
  WebOptions web_options{flags.web_max_requests, flags.web_enable_lifecycle, flags.web_config_file};
  web_options.max_connections = flags.web_max_connections;
  web_options.max_connections_per_client = flags.web_max_connections_per_client;
  WebServer web(handlers, web_options);
  if (auto configured = web.configure(); !configured) {
    spdlog::error("cannot load web configuration: {}", configured.error());
    return 1;
  }
  if (auto bound = web.bind(addresses); !bound) {
    spdlog::error("{}", bound.error());
    return 1;
  }
  app.set_extra_self_metrics([&web](std::string& out) { web.render_metrics(out); });
  if (auto started = app.start(); !started) {
    spdlog::error("{}", started.error());
    return 1;
  }
  web.start();
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    spdlog::info("listening address={}:{}", addresses[i].host, web.ports()[i]);
  }
  sd_notify("READY=1");

  auto watchdog = sd_watchdog_interval();
  auto wait = watchdog ? std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog)
                       : std::chrono::milliseconds(1000);
  wait = std::clamp(wait, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  timespec timeout{static_cast<time_t>(wait.count() / 1000),
                   static_cast<long>((wait.count() % 1000) * 1000000)};
  bool was_healthy = true;
  auto next_heap_trim = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (;;) {
    int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGHUP) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      sd_notify("RELOADING=1\nMONOTONIC_USEC=" +
                std::to_string(static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000));
      (void)reload();
      if (auto web_reloaded = web.reload_config(); !web_reloaded) {
        spdlog::error("web configuration reload failed, keeping the running one: {}",
                      web_reloaded.error());
      }
      sd_notify("READY=1");
    } else if (signal == SIGTERM || signal == SIGINT) {
      spdlog::info("shutting down signal={}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    // Only while polls make progress: a stuck scheduler lets systemd restart the service.
    bool healthy = app.healthy();
    if (healthy != was_healthy) {
      if (healthy) {
        spdlog::info("scheduler making progress again");
      } else {
        spdlog::error("scheduler stalled: no poll started while polls are overdue{}",
                      watchdog ? "; watchdog pings stopped" : "");
      }
      was_healthy = healthy;
    }
    if (watchdog && healthy) sd_notify("WATCHDOG=1");
    if (std::chrono::steady_clock::now() >= next_heap_trim) {
      release_free_heap();
      next_heap_trim = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    }
  }
  sd_notify("STOPPING=1");
  web.stop();
  app.stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Process memory holds passwords: no core dumps, no ptrace or /proc/PID/mem by other
  // processes of the same user (the unit also sets LimitCORE=0).
  if (prctl(PR_SET_DUMPABLE, 0) != 0) {
    std::cerr << "winrm_exporter: prctl(PR_SET_DUMPABLE, 0) failed: " << std::strerror(errno)
              << "\n";
    return 1;
  }
  // glibc gives each thread that contends an arena of its own (up to 8 x cores). With
  // ~128 poll workers, snapshots allocated in one arena and freed from another leave
  // every arena holding free pages: RSS grew ~5 MiB/s for a whole 75 s run at N=200 (interval
  // 10s) but levelled off at ~165 MiB with 2 arenas. MALLOC_ARENA_MAX overrides.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto flags = parse_flags(args);
  if (!flags) {
    std::cerr << "winrm_exporter: " << flags.error() << "\n"
              << (!args.empty() && args[0] == "query" ? "see: winrm_exporter query --help\n"
                                                      : "see: winrm_exporter --help\n");
    return 2;
  }
  switch (flags->command) {
    case Flags::Command::kHelp:
      std::cout << usage_text();
      return 0;
    case Flags::Command::kVersion:
      std::cout << "winrm_exporter, version " << kVersion << " (revision: " << kRevision
                << ")\n  compiler: g++ " << __VERSION__ << "\n";
      return 0;
    case Flags::Command::kQuery:
      if (flags->query_help) {
        std::cout << query_usage_text();
        return 0;
      }
      setup_logging(flags->query.log_level, LogFormat::kLogfmt);
      return run_query(flags->query, std::cout, std::cerr);
    case Flags::Command::kServe:
      break;
  }
  const ServeFlags& serve_flags = flags->serve;
  setup_logging(serve_flags.log_level,
                serve_flags.log_format == "json" ? LogFormat::kJson : LogFormat::kLogfmt);
  if (serve_flags.config_check) {
    int status =
        check_config(serve_flags.config_file, Shard{serve_flags.shard, serve_flags.total_shards});
    if (!serve_flags.web_config_file.empty()) {
      WebServer web({}, WebOptions{1, false, serve_flags.web_config_file});
      if (auto checked = web.configure(); !checked) {
        std::cerr << "web configuration invalid: " << checked.error() << "\n";
        return 1;
      }
      std::cout << "web configuration OK: " << serve_flags.web_config_file << "\n";
    }
    return status;
  }
  return serve(serve_flags);
}
