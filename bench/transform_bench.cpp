// transform_bench: the polling thread's CPU to turn one poll's rows into a kept result, for
// the built-in service collector on a real capture (txw2008 Win32_Service, 121 services):
// DefinedCollector::transform, then Cache::record_success (render, checksums, deflate or
// reuse of the previous poll's segments).
//
//   transform_bench [--polls N] [--rounds R]
//
// Prints the median over R rounds of the thread CPU per poll: transform alone, record alone
// with the same text as the previous poll (segments reused), record with every family changed
// (the first poll of a target), and both together; and a /probe of one host with this
// collector: its page render and the page's gzip. Uses only the collectors' and the cache's
// public API, so it builds against older trees too (before/after comparisons, RESULTS.md).
// Thread CPU time: still noisy on a shared machine (caches, frequency); pin it with taskset.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cache.h"
#include "collectors/registry.h"
#include "pages.h"
#include "web.h"
#include "winrm/envelope.h"

namespace {

double thread_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

std::vector<winrm::Row> service_rows() {
  std::vector<winrm::Row> rows;
  for (const char* page : {"p000", "p001", "p002", "p003"}) {
    const std::string path =
        std::string(WINRM_TEST_FIXTURES) + "/enum/txw2008_service_star_" + page + ".xml";
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "transform_bench: cannot read %s\n", path.c_str());
      std::exit(2);
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto parsed = winrm::parse_enumeration_response(text.str());
    if (!parsed) {
      std::fprintf(stderr, "transform_bench: %s: %s\n", path.c_str(),
                   parsed.error().describe().c_str());
      std::exit(2);
    }
    for (auto& row : parsed->rows) rows.push_back(std::move(row));
  }
  return rows;
}

// Hands a used result back as the daemon does after a poll (App::poll); trees before
// Collector::recycle have none, and each transform there starts from the templates.
template <typename C>
void recycle(const C& collector, collectors::Families&& families) {
  if constexpr (requires { collector.recycle(std::move(families)); }) {
    collector.recycle(std::move(families));
  }
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int polls = 200;
  int rounds = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--polls") {
      polls = std::atoi(argv[i + 1]);
    } else if (flag == "--rounds") {
      rounds = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: transform_bench [--polls N] [--rounds R]\n");
      return 2;
    }
  }
  const auto& collectors = collectors::builtin_collector_map();
  const auto service = collectors.at("service");
  const std::vector<std::vector<winrm::Row>> rows = {service_rows()};
  auto families = service->transform(rows);
  if (!families) {
    std::fprintf(stderr, "transform_bench: %s\n", families.error().c_str());
    return 2;
  }
  std::size_t series = 0;
  for (const auto& family : *families) series += family.samples.size();

  // Targets with distinct names, so that each poll renders its own label prefix.
  exporter::Cache cache;
  std::vector<exporter::TargetInfo> targets;
  for (int t = 0; t < polls; ++t) {
    targets.push_back({"h" + std::to_string(10000 + t) + ".sim.test",
                       {},
                       std::chrono::seconds(60),
                       3,
                       {"service"}});
  }
  cache.set_targets(targets);
  for (const auto& target : targets) cache.record_success(target.name, "service", *families, 0);

  // The same families with every sample value changed: a poll of a host whose counters
  // moved (the previous result exists, but no family's text matches it).
  collectors::Families bumped = *families;
  for (auto& family : bumped) {
    for (auto& sample : family.samples) sample.value += 1;
  }

  std::vector<double> transform_us, reuse_us, changed_us, moved_us, both_us, probe_us, gzip_us,
      relabel_us, page_us, copies_us;
  for (int round = 0; round < rounds; ++round) {
    double start = thread_cpu_us();
    for (int p = 0; p < polls; ++p) {
      auto result = service->transform(rows);
      if (!result) return 1;
      recycle(*service, std::move(*result));
    }
    transform_us.push_back((thread_cpu_us() - start) / polls);

    start = thread_cpu_us();
    for (const auto& target : targets) cache.record_success(target.name, "service", *families, 0);
    reuse_us.push_back((thread_cpu_us() - start) / polls);

    // Every family changed: a fresh cache (no previous result to reuse).
    exporter::Cache fresh;
    fresh.set_targets(targets);
    start = thread_cpu_us();
    for (const auto& target : targets) fresh.record_success(target.name, "service", *families, 0);
    changed_us.push_back((thread_cpu_us() - start) / polls);

    // Values changed, previous result kept (the original values): then back, untimed.
    start = thread_cpu_us();
    for (const auto& target : targets) cache.record_success(target.name, "service", bumped, 0);
    moved_us.push_back((thread_cpu_us() - start) / polls);
    for (const auto& target : targets) cache.record_success(target.name, "service", *families, 0);

    start = thread_cpu_us();
    for (const auto& target : targets) {
      auto result = service->transform(rows);
      cache.record_success(target.name, "service", *result, 0);
      recycle(*service, std::move(*result));
    }
    both_us.push_back((thread_cpu_us() - start) / polls);

    // /probe of one host (this collector only): the page (re-labelled without `target`, self
    // series), then the page and its gzip as the web layer sends it to Prometheus. One page
    // at a time, freed before the next, as in the daemon.
    std::size_t probe_bytes = 0;
    start = thread_cpu_us();
    for (const auto& target : targets) {
      auto view = cache.view(target.name);
      probe_bytes += exporter::with_prefix(*view.collectors.front().snapshot->families, "").bytes;
    }
    relabel_us.push_back((thread_cpu_us() - start) / polls);
    start = thread_cpu_us();
    for (const auto& target : targets) {
      probe_bytes +=
          exporter::render_probe_page(cache.view(target.name), std::chrono::steady_clock::now())
              .size();
    }
    probe_us.push_back((thread_cpu_us() - start) / polls);
    // As daemon/web.cpp serves it: page and gzip member in buffers kept between requests,
    // the body one allocation of its size.
    start = thread_cpu_us();
    {
      std::string page, gzipped;
      for (const auto& target : targets) {
        page.clear();
        exporter::render_probe_page(cache.view(target.name), std::chrono::steady_clock::now(),
                                    page);
        gzipped.clear();
        exporter::gzip_member(gzipped, page);
        probe_bytes += std::string(gzipped).size();
      }
    }
    gzip_us.push_back((thread_cpu_us() - start) / polls);
    // The path before 2026-12-02 17:00Z: re-labelled copies of the families, the page grown
    // per request, gzip_compress taking the page over.
    start = thread_cpu_us();
    for (const auto& target : targets) {
      auto view = cache.view(target.name);
      auto copy = exporter::with_prefix(*view.collectors.front().snapshot->families, "");
      std::string page;
      page.reserve(4096 + copy.bytes + copy.bytes / 16);
      exporter::write_rendered(page, {&copy});
      probe_bytes += exporter::gzip_compress(std::move(page)).size();
    }
    copies_us.push_back((thread_cpu_us() - start) / polls);

    // The gzip /metrics page of all these targets (cached segments spliced, crc32s combined).
    start = thread_cpu_us();
    for (int page = 0; page < 5; ++page) {
      probe_bytes += exporter::render_metrics_page_gzip_parts(cache.view_all(), nullptr,
                                                              std::chrono::steady_clock::now())
                         .size;
    }
    page_us.push_back((thread_cpu_us() - start) / 5 / polls);
    if (probe_bytes == 0) return 1;
  }
  std::printf(
      "service collector, %zu rows, %zu series; median of %d rounds x %d polls, thread CPU\n",
      rows[0].size(), series, rounds, polls);
  std::printf("  transform                    %8.1f us per poll\n", median(transform_us));
  std::printf("  record, text unchanged       %8.1f us per poll\n", median(reuse_us));
  std::printf("  record, every family changed %8.1f us per poll\n", median(changed_us));
  std::printf("  record, values changed      %8.1f us per poll\n", median(moved_us));
  std::printf("  transform + record unchanged %8.1f us per poll\n", median(both_us));
  std::printf("  /probe page render            %8.1f us per page\n", median(probe_us));
  std::printf("    of it inflate + re-label    %8.1f us per page\n", median(relabel_us));
  std::printf(
      "  /probe page render + gzip     %8.1f us per page (level 1, as sent, buffers kept)\n",
      median(gzip_us));
  std::printf("    before (copies, page grown)  %8.1f us per page\n", median(copies_us));
  std::printf("  gzip /metrics page             %8.1f us per target (%d targets)\n",
              median(page_us), polls);
  // What a kept poll costs in memory (deflate segments) and as text.
  const auto kept = cache.view(targets.front().name).collectors.front().snapshot->families;
  std::printf("  kept per poll: %zu bytes of segments for %zu bytes of text\n", kept->stored_bytes,
              kept->bytes);
  // The /probe body's size: gzip_member as sent, and gzip_compress (the whole-page gzip of the
  // other pages) for comparison; trees before libdeflate used zlib level 1 for both.
  const std::string page = exporter::render_probe_page(cache.view(targets.front().name),
                                                       std::chrono::steady_clock::now());
  std::string member;
  exporter::gzip_member(member, page);
  std::printf("  /probe page: %zu bytes of text, gzip_member %zu, gzip_compress %zu\n", page.size(),
              member.size(), exporter::gzip_compress(page).size());
  return 0;
}
