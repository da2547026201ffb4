// handshake_burst: many new TLS connections at once against winrm-sim, as an exporter starting
// with a large fleet opens them, with Debian's libcurl (the exporter's HTTP library) in one
// multi handle so that the client's own CPU stays small next to the server's.
// Used by bench/sim_handshakes.py; prints one JSON line.
//
//   handshake_burst --port P --ca FILE --connections N --concurrency C [--connect-timeout-ms 5000]
//                   [--host-format h%05d.sim.test]
// Each transfer: TCP connect and TLS handshake to 127.0.0.1:P with SNI and Host = its own host
// name, then one empty authenticated POST (Basic monitor:s3cret). Finished connections stay in
// the multi handle's connection cache (open and idle, as the exporter's keep-alive ones) until
// the end. CURLINFO_CONNECT_TIME_T and CURLINFO_APPCONNECT_TIME_T give each connect and
// handshake; a transfer that passes the connect timeout is a "timeout" (the exporter's "TLS
// handshake" timeout when TCP had connected).
#include <curl/curl.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const char* problem) {
  std::fprintf(stderr, "handshake_burst: %s\n", problem);
  std::exit(2);
}

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return -1;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(q * values.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, connections = 1000, concurrency = 100;
  long connect_timeout_ms = 5000;
  std::string ca, host_format = "h%05d.sim.test";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char* value = argv[++i];
    if (arg == "--port") {
      port = std::atoi(value);
    } else if (arg == "--ca") {
      ca = value;
    } else if (arg == "--connections") {
      connections = std::atoi(value);
    } else if (arg == "--concurrency") {
      concurrency = std::atoi(value);
    } else if (arg == "--connect-timeout-ms") {
      connect_timeout_ms = std::atol(value);
    } else if (arg == "--host-format") {
      host_format = value;
    } else {
      usage("unknown option");
    }
  }
  if (port <= 0 || ca.empty() || connections < 1 || concurrency < 1)
    usage("--port and --ca needed");
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM* multi = curl_multi_init();
  // Every finished connection stays cached (open): the server holds them all, as at fleet scale.
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(connections + 16));
  std::vector<CURL*> easies;
  std::vector<std::string> urls, resolves;
  std::vector<curl_slist*> resolve_lists;
  std::vector<double> connect_ms, handshake_ms, total_ms;
  std::map<std::string, int> failures;
  int next = 0, running = 0, done = 0;
  const auto start = Clock::now();

  auto add = [&] {
    char host[256];
    std::snprintf(host, sizeof host, host_format.c_str(), next + 1);
    ++next;
    CURL* easy = curl_easy_init();
    std::string url = "https://" + std::string(host) + ":" + std::to_string(port) + "/wsman";
    curl_slist* resolve = curl_slist_append(
        nullptr, (std::string(host) + ":" + std::to_string(port) + ":127.0.0.1").c_str());
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(easy, CURLOPT_CAINFO, ca.c_str());
    curl_easy_setopt(easy, CURLOPT_USERPWD, "monitor:s3cret");
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, connect_timeout_ms * 3);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(multi, easy);
    easies.push_back(easy);
    resolve_lists.push_back(resolve);
    ++running;
  };

  while (done < connections) {
    while (running < concurrency && next < connections) add();
    int still = 0;
    curl_multi_perform(multi, &still);
    int queued = 0;
    bool finished = false;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      ++done;
      --running;
      finished = true;
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      curl_off_t connect = 0, app = 0, total = 0;
      curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
      curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &app);
      curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
      if (msg->data.result != CURLE_OK || status != 200) {
        std::string kind = msg->data.result == CURLE_OPERATION_TIMEDOUT
                               ? (connect > 0 ? "handshake timeout" : "connect timeout")
                           : msg->data.result != CURLE_OK ? curl_easy_strerror(msg->data.result)
                                                          : "status " + std::to_string(status);
        ++failures[kind];
      } else {
        connect_ms.push_back(connect / 1000.0);
        handshake_ms.push_back((app - connect) / 1000.0);
        total_ms.push_back(total / 1000.0);
      }
      // The handle is removed but kept: its connection goes to the multi's cache, open.
      curl_multi_remove_handle(multi, easy);
    }
    // A slot came free: start the next transfer now instead of waiting in poll.
    if (done < connections && !(finished && next < connections)) {
      curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                     (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::string failed = "{";
  for (const auto& [kind, count] : failures) {
    if (failed.size() > 1) failed += ",";
    failed += "\"" + kind + "\":" + std::to_string(count);
  }
  failed += "}";
  std::printf(
      "{\"ok\":%zu,\"wall\":%.3f,\"client_cpu\":%.3f,"
      "\"connect_ms\":[%.2f,%.2f,%.2f],\"handshake_ms\":[%.2f,%.2f,%.2f],"
      "\"total_ms\":[%.2f,%.2f,%.2f],\"failures\":%s}\n",
      connect_ms.size(), wall, cpu, percentile(connect_ms, 0.5), percentile(connect_ms, 0.99),
      percentile(connect_ms, 1.0), percentile(handshake_ms, 0.5), percentile(handshake_ms, 0.99),
      percentile(handshake_ms, 1.0), percentile(total_ms, 0.5), percentile(total_ms, 0.99),
      percentile(total_ms, 1.0), failed.c_str());
  std::fflush(stdout);
  for (CURL* easy : easies) curl_easy_cleanup(easy);
  for (curl_slist* list : resolve_lists) curl_slist_free_all(list);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return 0;
}
