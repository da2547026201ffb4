// App::load() as a transaction: a reload that fails in a late step (starting the extra
// worker threads the new configuration needs) leaves the previous configuration fully in
// force; a thread that cannot start at start-up is an error value, not std::terminate.
#include <doctest/doctest.h>

#include <atomic>
#include <system_error>
#include <thread>

#include "../config/temp_dir.h"
#include "app.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_app_reload {

using namespace exporter;

namespace {

// Closed loopback port: polls fail fast, which this test does not look at.
std::string config_text(const std::string& password_file, int concurrency, int targets) {
  std::string text =
      "global:\n  interval: 30s\n  timeout: 5s\n  scheme: http\n  port: 1\n"
      "  concurrency: " +
      std::to_string(concurrency) +
      "\n  per_target_concurrency: 1\n  credential: c\n"
      "credentials:\n  c: {auth: basic, username: u, password_file: " +
      password_file + "}\ntargets:\n";
  for (int i = 0; i < targets; ++i) {
    text += "  - {name: t" + std::to_string(i) + ".test, connect_address: 127.0.0.1}\n";
  }
  return text;
}

ThreadSpawner failing_spawner(std::shared_ptr<std::atomic<bool>> fail) {
  return [fail](std::function<void()> body) {
    if (*fail) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    }
    return std::thread(std::move(body));
  };
}

std::vector<std::string> cached_targets(const App& app) {
  std::vector<std::string> names;
  for (const auto& view : app.cache().view_all()) names.push_back(view.info->name);
  return names;
}

// Value of an unlabelled sample in /metrics; -1 when absent.
double gauge(const App& app, const std::string& name) {
  std::string text = *app.render_metrics();
  auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("a reload whose worker threads cannot start keeps the previous configuration") {
  TempDir dir;
  auto password = dir.write("pass", "secret\n");
  auto path = dir.write("config.yml", config_text(password, 2, 2));
  auto fail = std::make_shared<std::atomic<bool>>(false);
  App app(path, 0, "test", "test", Shard{}, failing_spawner(fail));
  REQUIRE(app.load());
  REQUIRE(app.start());
  auto before = app.config();
  REQUIRE(before->targets.size() == 2);
  REQUIRE(cached_targets(app).size() == 2);
  CHECK(gauge(app, "winrm_exporter_scheduler_jobs") == 14);  // 2 targets x 7 collectors
  CHECK(gauge(app, "winrm_exporter_scheduler_workers") == 2);

  // The new file is valid; it needs more workers (concurrency 8 x 1: one per core, at least
  // kMinDefaultSchedulerWorkers, at most 8), and thread creation fails.
  config::Defaults grown;
  grown.concurrency = 8;
  grown.per_target_concurrency = 1;
  const int grown_workers = worker_count(0, grown);
  REQUIRE(grown_workers > 2);
  dir.write("config.yml", config_text(password, 8, 5));
  *fail = true;
  auto reloaded = app.load();
  REQUIRE_FALSE(reloaded);
  CHECK(reloaded.error().find("cannot start a scheduler worker thread") != std::string::npos);

  // Everything is as before: the config object, the served targets, the jobs, the pool.
  CHECK(app.config() == before);
  CHECK(cached_targets(app).size() == 2);
  CHECK(gauge(app, "winrm_exporter_scheduler_jobs") == 14);
  CHECK(gauge(app, "winrm_exporter_scheduler_workers") == 2);
  CHECK_FALSE(app.render_probe("t4.test").has_value());
  CHECK(app.render_probe("t1.test").has_value());
  CHECK(app.render_metrics()->find("winrm_exporter_config_last_reload_successful 0") !=
        std::string::npos);

  // Threads can start again: the same file now applies.
  *fail = false;
  REQUIRE(app.load());
  CHECK(app.config() != before);
  CHECK(cached_targets(app).size() == 5);
  CHECK(gauge(app, "winrm_exporter_scheduler_jobs") == 35);
  CHECK(gauge(app, "winrm_exporter_scheduler_workers") == grown_workers);
  CHECK(app.render_metrics()->find("winrm_exporter_config_last_reload_successful 1") !=
        std::string::npos);
  app.stop();
}

TEST_CASE("a scheduler thread that cannot start at start-up is an error value") {
  TempDir dir;
  auto password = dir.write("pass", "secret\n");
  auto path = dir.write("config.yml", config_text(password, 2, 1));
  auto fail = std::make_shared<std::atomic<bool>>(true);
  App app(path, 0, "test", "test", Shard{}, failing_spawner(fail));
  REQUIRE(app.load());
  auto started = app.start();
  REQUIRE_FALSE(started);
  CHECK(started.error().find("thread") != std::string::npos);
  app.stop();  // nothing running: returns at once
}

TEST_CASE("targets of one profile share its password buffer, never copies of it") {
  TempDir dir;
  auto password = dir.write("pass", "secret\n");
  auto path = dir.write("config.yml", config_text(password, 2, 3));
  App app(path, 0, "test", "test");
  REQUIRE(app.load());
  auto config = app.config();
  const auto& secret = config->credentials.at("c").password;
  CHECK(secret.reveal() == "secret");
  // One buffer, referenced by the config's profile, each of the 3 targets' runtimes and
  // the profile's one shared Basic Auth entry: a target holding its own copy (a new
  // Secret, or the bytes in a fingerprint string) would not count here.
  CHECK(secret.use_count() == 5);
}

}  // namespace test_app_reload
