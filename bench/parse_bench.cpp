// parse_bench: bare tinyxml2 parse vs winrm::parse_enumeration_response on the same bytes.
//
//   parse_bench [--iterations N] [--rounds R] [--only tinyxml2|visit|dom|winrm] [case...]
//
// Cases: service3 (txw2008 Win32_Service SELECT *, pages p001-p003, 121 rows), os1 (txw2012
// Win32_OperatingSystem, 1 row), process33 (recorded winrm-sim Win32_Process, 33 pages).
// Prints the median ns per parse (all pages of a case) over R rounds for: a bare tinyxml2 Parse,
// Parse plus reading every name and text (+visit), winrm's tinyxml2 path alone (dom: the
// scanner's reference and fallback) and winrm::parse_enumeration_response (the single-pass
// scanner); ratio = winrm / tinyxml2, ratio2 = winrm / +visit. Wall time is noisy on a shared
// machine; for instruction counts run one side under callgrind with
// --toggle-collect='*run_tinyxml2(*', '*run_tinyxml2_visit*', '*run_dom*' or '*run_winrm(*'
// (all noinline).
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

// Visits every node and reads every name and text: what any consumer of tinyxml2's DOM pays
// on top of Parse(), since tinyxml2 decodes entities and ends strings lazily on first access.
std::size_t visit(const tinyxml2::XMLNode* node) {
  std::size_t sum = 0;
  for (const auto* child = node->FirstChild(); child != nullptr; child = child->NextSibling()) {
    if (const auto* element = child->ToElement()) {
      sum += element->Name()[0];
      for (const auto* a = element->FirstAttribute(); a != nullptr; a = a->Next()) {
        sum += a->Value()[0];
      }
      sum += visit(element);
    } else if (const auto* text = child->ToText()) {
      sum += text->Value()[0];
    }
  }
  return sum;
}

[[gnu::noinline]] std::size_t run_tinyxml2_visit(const Case& c, int iterations) {
  std::size_t sum = 0;
  for (int i = 0; i < iterations; ++i) {
    for (const auto& page : c.pages) {
      tinyxml2::XMLDocument doc(true, tinyxml2::PRESERVE_WHITESPACE);
      if (doc.Parse(page.data(), page.size()) != tinyxml2::XML_SUCCESS) std::abort();
      sum += visit(&doc);
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

[[gnu::noinline]] std::size_t run_dom(const Case& c, int iterations) {
  std::size_t sum = 0;
  for (int i = 0; i < iterations; ++i) {
    for (const auto& page : c.pages) {
      auto parsed =
          winrm::detail::parse_enumeration_response_via(winrm::detail::ParsePath::kDom, page);
      if (!parsed || !*parsed) std::abort();
      sum += (*parsed)->rows.size();
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
  std::printf("%-10s %6s %7s %12s %12s %12s %12s %6s %6s\n", "case", "pages", "bytes", "tinyxml2",
              "+visit", "dom", "winrm", "ratio", "ratio2");
  for (const auto& name : names) {
    Case c = load_case(name);
    std::size_t bytes = 0;
    for (const auto& page : c.pages) bytes += page.size();
    double bare = 0, visited = 0, dom = 0, full = 0;
    if (only.empty() || only == "tinyxml2") {
      bare = median_ns_per_parse(run_tinyxml2, c, iterations, rounds);
    }
    if (only.empty() || only == "visit") {
      visited = median_ns_per_parse(run_tinyxml2_visit, c, iterations, rounds);
    }
    if (only.empty() || only == "dom") dom = median_ns_per_parse(run_dom, c, iterations, rounds);
    if (only.empty() || only == "winrm") {
      full = median_ns_per_parse(run_winrm, c, iterations, rounds);
    }
    std::printf("%-10s %6zu %7zu %12.0f %12.0f %12.0f %12.0f %6.2f %6.2f\n", name.c_str(),
                c.pages.size(), bytes, bare, visited, dom, full, bare > 0 ? full / bare : 0.0,
                visited > 0 ? full / visited : 0.0);
  }
  return 0;
}
