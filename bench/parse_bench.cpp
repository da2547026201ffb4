// parse_bench: bare tinyxml2 parse vs winrm::parse_enumeration_response on the same bytes.
//
//   parse_bench [--iterations N] [--rounds R] [--only tinyxml2|winrm] [case...]
//
// Cases: service3 (txw2008 Win32_Service SELECT *, pages p001-p003, 121 rows), os1 (txw2012
// Win32_OperatingSystem, 1 row), process33 (recorded winrm-sim Win32_Process, 33 pages).
// Prints the median ns per parse of each case over R rounds and the ratio. Wall time is noisy on
// a shared machine; for instruction counts run one side under callgrind with
// --toggle-collect='run_tinyxml2*' or --toggle-collect='run_winrm*' (both are noinline).
#include <tinyxml2.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "winrm/envelope.h"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "parse_bench: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct Case {
  std::string name;
  std::vector<std::string> pages;
};

Case load_case(const std::string& name) {
  const std::string root = WINRM_TEST_FIXTURES;
  Case c{name, {}};
  if (name == "service3") {
    for (const char* page : {"p001", "p002", "p003"}) {
      c.pages.push_back(read_file(root + "/enum/txw2008_service_star_" + page + ".xml"));
    }
  } else if (name == "os1") {
    c.pages.push_back(read_file(root + "/enum/txw2012_os_star_single.xml"));
  } else if (name == "process33") {
    for (int i = 0; i < 33; ++i) {
      char file[64];
      std::snprintf(file, sizeof file, "/sim/process_0_p%03d.xml", i);
      c.pages.push_back(read_file(root + file));
    }
  } else {
    std::fprintf(stderr, "parse_bench: unknown case %s\n", name.c_str());
    std::exit(2);
  }
  return c;
}

// Returns a checksum so the optimiser cannot drop the work.
[[gnu::noinline]] std::size_t run_tinyxml2(const Case& c, int iterations) {
  std::size_t sum = 0;
  for (int i = 0; i < iterations; ++i) {
    for (const auto& page : c.pages) {
      tinyxml2::XMLDocument doc(true, tinyxml2::PRESERVE_WHITESPACE);
      if (doc.Parse(page.data(), page.size()) != tinyxml2::XML_SUCCESS) std::abort();
      sum += doc.RootElement() != nullptr;
    }
  }
  return sum;
}

[[gnu::noinline]] std::size_t run_winrm(const Case& c, int iterations) {
  std::size_t sum = 0;
  for (int i = 0; i < iterations; ++i) {
    for (const auto& page : c.pages) {
      auto parsed = winrm::parse_enumeration_response(page);
      if (!parsed) {
        std::fprintf(stderr, "parse failed: %s\n", parsed.error().describe().c_str());
        std::abort();
      }
      sum += parsed->rows.size();
    }
  }
  return sum;
}

template <typename F>
double median_ns_per_parse(F&& run, const Case& c, int iterations, int rounds) {
  std::vector<double> samples;
  for (int r = 0; r < rounds; ++r) {
    auto start = std::chrono::steady_clock::now();
    volatile std::size_t sink = run(c, iterations);
    (void)sink;
    auto elapsed = std::chrono::steady_clock::now() - start;
    samples.push_back(std::chrono::duration<double, std::nano>(elapsed).count() / iterations);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 200;
  int rounds = 7;
  std::string only;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--iterations" && i + 1 < argc) {
      iterations = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      names.emplace_back(arg);
    }
  }
  if (names.empty()) names = {"service3", "os1", "process33"};
  std::printf("%-10s %8s %8s %14s %14s %7s\n", "case", "pages", "bytes", "tinyxml2 ns", "winrm ns",
              "ratio");
  for (const auto& name : names) {
    Case c = load_case(name);
    std::size_t bytes = 0;
    for (const auto& page : c.pages) bytes += page.size();
    double bare = 0, full = 0;
    if (only != "winrm") bare = median_ns_per_parse(run_tinyxml2, c, iterations, rounds);
    if (only != "tinyxml2") full = median_ns_per_parse(run_winrm, c, iterations, rounds);
    std::printf("%-10s %8zu %8zu %14.0f %14.0f %7.2f\n", name.c_str(), c.pages.size(), bytes, bare,
                full, bare > 0 && full > 0 ? full / bare : 0.0);
  }
  return 0;
}
