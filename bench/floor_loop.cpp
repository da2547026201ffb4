// floor_loop: the CPU floor for one WQL poll, a bare loop of Debian's libcurl (one easy handle
// per host, keep-alive) plus a tinyxml2 parse into rows, sending the same Enumerate/Pull SOAP
// as winrm_exporter to winrm-sim's virtual hosts over plain HTTP with Basic auth.
// Used by bench/side-by-side.sh; prints one JSON line with the CPU and queries of the window.
//
//   floor_loop --port P --hosts N --password-file F --wql "SELECT ..." [--rate Q/s | 0 = flat out]
//              [--warmup S] [--window S] [--user U] [--host-format h%05d.sim.test]
//   --count K replaces the time window (for callgrind): flat out, one unmeasured pass over the
//   hosts to open the connections, then K queries.
#include <curl/curl.h>
#include <sys/resource.h>
#include <tinyxml2.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "winrm/envelope.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  int hosts = 200;
  double rate = 40;  // queries per second over all hosts; 0 = flat out
  double warmup = 10;
  double window = 60;
  long long count = 0;  // > 0: flat out, one unmeasured pass over the hosts, then this many queries
  std::string user = "monitor";
  std::string password_file;
  std::string host_format = "h%05d.sim.test";
  std::string wql;
};

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr, "floor_loop: %s\n", problem);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char* value = argv[++i];
    if (arg == "--port") {
      o.port = std::atoi(value);
    } else if (arg == "--hosts") {
      o.hosts = std::atoi(value);
    } else if (arg == "--rate") {
      o.rate = std::atof(value);
    } else if (arg == "--warmup") {
      o.warmup = std::atof(value);
    } else if (arg == "--window") {
      o.window = std::atof(value);
    } else if (arg == "--count") {
      o.count = std::atoll(value);
    } else if (arg == "--user") {
      o.user = value;
    } else if (arg == "--password-file") {
      o.password_file = value;
    } else if (arg == "--host-format") {
      o.host_format = value;
    } else if (arg == "--wql") {
      o.wql = value;
    } else {
      usage("unknown option");
    }
  }
  if (o.port <= 0 || o.hosts <= 0 || o.wql.empty() || o.password_file.empty()) {
    usage("--port, --hosts, --wql and --password-file are required");
  }
  return o;
}

// CPU of the whole process. The sum is the scheduler's exact runtime; the user/system split is
// sampled at the kernel tick (HZ 250 here), so for a loop that sleeps between short queries it
// can read "user 0.00 s" and says little. Context switches count the process's wake-ups.
struct CpuSample {
  double user = 0, system = 0;
  long voluntary_switches = 0, involuntary_switches = 0;
};

CpuSample cpu_sample() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return {seconds(usage.ru_utime), seconds(usage.ru_stime), usage.ru_nvcsw, usage.ru_nivcsw};
}

std::string message_id(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string id = "uuid:";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
    auto byte = static_cast<unsigned>(rng() & 0xFF);
    id += kHex[byte >> 4];
    id += kHex[byte & 0x0F];
  }
  return id;
}

// The same header block and body as winrm::build_enumerate / build_pull.
std::string envelope(std::string_view to, std::string_view action, std::string_view id,
                     std::string_view body) {
  std::string out;
  out.reserve(1500 + body.size());
  out +=
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
      "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\""
      " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\""
      " xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\""
      " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\""
      " xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\"><s:Header><a:To>";
  out += to;
  out +=
      "</a:To><w:ResourceURI s:mustUnderstand=\"true\">"
      "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*</w:ResourceURI>"
      "<a:ReplyTo><a:Address s:mustUnderstand=\"true\">"
      "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
      "<a:Action s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/09/enumeration/";
  out += action;
  out +=
      "</a:Action><w:MaxEnvelopeSize s:mustUnderstand=\"true\">512000</w:MaxEnvelopeSize>"
      "<a:MessageID>";
  out += id;
  out +=
      "</a:MessageID><w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>"
      "<p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>"
      "<w:OperationTimeout>PT20.000S</w:OperationTimeout></s:Header><s:Body>";
  out += body;
  out += "</s:Body></s:Envelope>";
  return out;
}

std::string_view local_name(const tinyxml2::XMLElement* element) {
  std::string_view name = element->Name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

const tinyxml2::XMLElement* child(const tinyxml2::XMLElement* parent, std::string_view name) {
  if (parent == nullptr) return nullptr;
  for (auto* e = parent->FirstChildElement(); e != nullptr; e = e->NextSiblingElement()) {
    if (local_name(e) == name) return e;
  }
  return nullptr;
}

using Row = std::vector<std::pair<std::string, std::string>>;

struct Page {
  bool ok = false;
  bool done = false;
  std::string context;
};

// Parses an EnumerateResponse/PullResponse and appends its instances as rows.
Page parse_page(const std::string& body, std::vector<Row>& rows) {
  Page page;
  tinyxml2::XMLDocument doc;
  if (doc.Parse(body.data(), body.size()) != tinyxml2::XML_SUCCESS) return page;
  auto* response = child(child(doc.RootElement(), "Body"), "EnumerateResponse");
  if (response == nullptr) {
    response = child(child(doc.RootElement(), "Body"), "PullResponse");
  }
  if (response == nullptr) return page;
  if (auto* context = child(response, "EnumerationContext"); context && context->GetText()) {
    page.context = context->GetText();
  }
  page.done = child(response, "EndOfSequence") != nullptr || page.context.empty();
  if (auto* items = child(response, "Items")) {
    for (auto* item = items->FirstChildElement(); item; item = item->NextSiblingElement()) {
      Row& row = rows.emplace_back();
      for (auto* p = item->FirstChildElement(); p; p = p->NextSiblingElement()) {
        const char* text = p->GetText();
        row.emplace_back(std::string(local_name(p)), text ? text : "");
      }
    }
  }
  page.ok = true;
  return page;
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

struct Host {
  CURL* curl = nullptr;
  curl_slist* headers = nullptr;
  std::string to;  // a:To, the URL the exporter would address
  std::string response;
};

struct Outcome {
  bool ok = false;
  size_t rows = 0;
  int pages = 0;
  long connects = 0;  // new connections libcurl opened for this query (0 with keep-alive)
};

Outcome poll(Host& host, const std::string& wql, std::mt19937_64& rng) {
  Outcome outcome;
  std::vector<Row> rows;
  std::string filter =
      "<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>"
      "<w:Filter Dialect=\"http://schemas.microsoft.com/wbem/wsman/1/WQL\">";
  winrm::append_xml_escaped(filter, wql);
  filter += "</w:Filter></n:Enumerate>";
  std::string request = envelope(host.to, "Enumerate", message_id(rng), filter);
  for (int pages = 1; pages <= 1000; ++pages) {
    host.response.clear();
    curl_easy_setopt(host.curl, CURLOPT_POSTFIELDS, request.data());
    curl_easy_setopt(host.curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.size()));
    long status = 0;
    if (curl_easy_perform(host.curl) != CURLE_OK) return outcome;
    long connects = 0;
    curl_easy_getinfo(host.curl, CURLINFO_NUM_CONNECTS, &connects);
    outcome.connects += connects;
    curl_easy_getinfo(host.curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) return outcome;
    Page page = parse_page(host.response, rows);
    if (!page.ok) return outcome;
    outcome.pages = pages;
    if (page.done) {
      outcome.ok = true;
      outcome.rows = rows.size();
      return outcome;
    }
    std::string pull = "<n:Pull><n:EnumerationContext>";
    winrm::append_xml_escaped(pull, page.context);
    pull += "</n:EnumerationContext><n:MaxElements>32000</n:MaxElements></n:Pull>";
    request = envelope(host.to, "Pull", message_id(rng), pull);
  }
  return outcome;
}

std::string read_password(const std::string& path) {
  std::ifstream in(path);
  std::string password;
  std::getline(in, password);
  while (!password.empty() && (password.back() == '\r' || password.back() == '\n')) {
    password.pop_back();
  }
  if (password.empty()) usage("empty or unreadable --password-file");
  return password;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse_args(argc, argv);
  std::string password = read_password(options.password_file);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::string url = "http://127.0.0.1:" + std::to_string(options.port) + "/wsman";

  std::vector<Host> hosts(static_cast<size_t>(options.hosts));
  for (int i = 0; i < options.hosts; ++i) {
    char name[256];
    std::snprintf(name, sizeof name, options.host_format.c_str(), i + 1);
    Host& host = hosts[static_cast<size_t>(i)];
    host.to = "http://" + std::string(name) + ":" + std::to_string(options.port) + "/wsman";
    host.curl = curl_easy_init();
    // The sim picks the virtual host from the Host header; the socket goes to loopback.
    host.headers = curl_slist_append(host.headers, ("Host: " + std::string(name)).c_str());
    host.headers =
        curl_slist_append(host.headers, "Content-Type: application/soap+xml;charset=UTF-8");
    host.headers = curl_slist_append(host.headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(host.curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(host.curl, CURLOPT_HTTPHEADER, host.headers);
    curl_easy_setopt(host.curl, CURLOPT_USERAGENT, "floor_loop");
    curl_easy_setopt(host.curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(host.curl, CURLOPT_USERNAME, options.user.c_str());
    curl_easy_setopt(host.curl, CURLOPT_PASSWORD, password.c_str());
    curl_easy_setopt(host.curl, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(host.curl, CURLOPT_WRITEDATA, &host.response);
    curl_easy_setopt(host.curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(host.curl, CURLOPT_NOSIGNAL, 1L);
  }

  std::mt19937_64 rng{std::random_device{}()};
  const auto start = Clock::now();
  const auto window_start = start + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(options.warmup));
  const auto window_end = window_start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(options.window));
  bool measuring = false;
  CpuSample cpu_start{};
  long long queries = 0, errors = 0, rows = 0, pages = 0, issued = 0, connects = 0;
  for (size_t next = 0;; next = (next + 1) % hosts.size(), ++issued) {
    auto now = Clock::now();
    if (options.count > 0) {
      if (!measuring && issued >= static_cast<long long>(hosts.size())) {
        measuring = true;
        cpu_start = cpu_sample();
      }
      if (queries + errors >= options.count) break;
    } else if (options.rate > 0) {
      // Fixed schedule (not "sleep after each"), as a scheduler polling every host each interval.
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(issued / options.rate));
      if (due > now) {
        std::this_thread::sleep_until(std::min(due, window_end));
        now = Clock::now();
      }
    }
    if (options.count == 0 && !measuring && now >= window_start) {
      measuring = true;
      cpu_start = cpu_sample();
    }
    if (options.count == 0 && now >= window_end) break;
    Outcome outcome = poll(hosts[next], options.wql, rng);
    if (!measuring) continue;
    connects += outcome.connects;
    if (!outcome.ok) {
      ++errors;
      continue;
    }
    ++queries;
    rows += static_cast<long long>(outcome.rows);
    pages += outcome.pages;
  }
  CpuSample cpu_end = cpu_sample();
  double user = measuring ? cpu_end.user - cpu_start.user : 0;
  double system = measuring ? cpu_end.system - cpu_start.system : 0;
  long voluntary = measuring ? cpu_end.voluntary_switches - cpu_start.voluntary_switches : 0;
  long involuntary = measuring ? cpu_end.involuntary_switches - cpu_start.involuntary_switches : 0;
  double window = std::chrono::duration<double>(Clock::now() - window_start).count();
  std::printf(
      "{\"client\": \"floor\", \"queries\": %lld, \"errors\": %lld, \"cpu_seconds\": %.6f, "
      "\"user_seconds\": %.6f, \"system_seconds\": %.6f, \"window_seconds\": %.3f, "
      "\"rows_per_query\": %.2f, \"pages_per_query\": %.2f, \"connects\": %lld, "
      "\"voluntary_switches\": %ld, \"involuntary_switches\": %ld}\n",
      queries, errors, user + system, user, system, options.count > 0 ? 0.0 : window,
      queries ? double(rows) / double(queries) : 0.0,
      queries ? double(pages) / double(queries) : 0.0, connects, voluntary, involuntary);
  for (Host& host : hosts) {
    curl_slist_free_all(host.headers);
    curl_easy_cleanup(host.curl);
  }
  curl_global_cleanup();
  return queries > 0 && errors == 0 ? 0 : 1;
}
