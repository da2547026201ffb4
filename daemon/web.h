// HTTP endpoints on net::Server (net/server.h): /, /metrics, /probe, /sd, /-/healthy, /-/ready,
// /-/reload, behind the
// --web.config.file gates (TLS, client certificates, basic auth, rate limit).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flags.h"

namespace net {
class Server;
struct Request;
struct BodyParts;
}  // namespace net

namespace exporter {

class TlsContextProvider;
struct WebState;

// A page shared by every scrape it answers (sent from this one copy, never copied per scraper).
using SharedPage = std::shared_ptr<const std::string>;
// The same in parts (net::BodyParts: e.g. cached gzip segments, sent without joining them).
using SharedParts = std::shared_ptr<const net::BodyParts>;

struct WebHandlers {
  std::function<SharedPage()> metrics;
  // /metrics already gzip-compressed, for clients that accept gzip (null: gzip of metrics()).
  std::function<SharedParts()> metrics_gzip;
  // Appends the target's page to `page` (a buffer the web worker keeps between requests).
  // Error: the text of the 404 (unknown target, or owned by another shard).
  std::function<std::expected<void, std::string>(const std::string& target, std::string& page)>
      probe;
  // Prometheus http_sd JSON.
  std::function<std::string()> sd;
  std::function<bool()> ready;
  // False: /-/healthy answers 503 (the scheduler is stuck). Null: always healthy.
  std::function<bool()> healthy;
  // Error text goes into the 500 body.
  std::function<std::expected<void, std::string>()> reload;
  std::string version;
};

struct WebOptions {
  int max_requests = 8;           // requests served at once (worker threads)
  bool enable_lifecycle = false;  // POST/PUT /-/reload
  std::string config_file;        // --web.config.file; empty: plain HTTP, no auth
  // Open connections in all and from one client address (beyond: refused and closed).
  int max_connections = 1024;
  int max_connections_per_client = 256;
  // A request's first byte to its last (TLS: accept to handshake end); beyond: 408, closed.
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{120000};  // keep-alive without a request
};

// One request as the router sees it, whatever server library read it.
struct WebRequest {
  std::string method;
  std::string path;
  std::optional<std::string> target;  // the decoded `target` query parameter
  std::string authorization;          // Authorization header value
  std::string accept_encoding;
  bool has_body = false;
};

struct WebReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  SharedPage shared_body;    // when set, the body (instead of `body`)
  SharedParts shared_parts;  // when set, the body in parts (instead of `body`)
};

// gzip (RFC 1952) of data.
std::string gzip_compress(const std::string& data);
// The same, taking the text over (no copy of a /probe page per request).
std::string gzip_compress(std::string&& data);
// Whether an Accept-Encoding header value allows gzip (q=0 excluded).
bool accepts_gzip(const std::string& accept_encoding);

// winrm_exporter_http_request_duration_seconds{handler}: from the request's last byte read to
// its answer's last byte written (queueing for a worker, the handler, the loop's write), per
// endpoint, as promhttp's InstrumentHandlerDuration. Buckets down to 0.5 ms: issue 10's
// /probe target is p99 < 5 ms.
class RequestDurations {
 public:
  static constexpr std::array<std::string_view, 8> kHandlers = {
      "/metrics", "/probe", "/sd", "/-/healthy", "/-/ready", "/-/reload", "/", "other"};
  static constexpr std::array<double, 20> kBuckets = {
      0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015,
      0.025,  0.05,  0.1,    0.25,  0.5,   1,     2.5,   5,      10,   30};

  // Index into kHandlers of a request path (unknown paths: "other").
  static std::size_t handler_index(std::string_view path);
  void observe(std::size_t handler, double seconds);
  void render(std::string& out) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size() + 1> counts{};  // not cumulative; last: +Inf
    double sum = 0;
  };
  // One mutex: a scrape sees each handler's count, sum and buckets of the same observations.
  mutable std::mutex mutex_;
  std::array<Histogram, kHandlers.size()> histograms_;
};

class WebServer {
 public:
  WebServer(WebHandlers handlers, WebOptions options);
  ~WebServer();

  // Reads --web.config.file and loads its TLS files. Error: "FILE:LINE: field: problem"
  // or the TLS file and OpenSSL's reason.
  std::expected<void, std::string> configure();
  // Re-reads the web configuration (SIGHUP, /-/reload). Error: the previous one stays in
  // force. Turning TLS on or off needs a restart.
  std::expected<void, std::string> reload_config();

  // Binds every address (port 0 picks a free one). Error names the address. After
  // configure(): with tls_server_config every address speaks TLS.
  std::expected<void, std::string> bind(const std::vector<ListenAddress>& addresses);
  std::vector<int> ports() const { return ports_; }
  void start();
  void stop();

  // Routing and the auth/rate gates, without I/O (the server adapters call it; tests too).
  WebReply handle(const WebRequest& request);
  bool tls_enabled() const { return tls_ != nullptr; }
  // The request duration histograms (for the exporter's own /metrics series).
  void render_metrics(std::string& out) const { durations_->render(out); }

 private:
  std::shared_ptr<WebState> state() const;
  WebReply route(const WebRequest& request);

  WebHandlers handlers_;
  WebOptions options_;
  mutable std::mutex state_mutex_;
  std::shared_ptr<WebState> state_;
  std::shared_ptr<TlsContextProvider> tls_;
  std::unique_ptr<net::Server> server_;  // event loop (net/): slow clients hold no thread
  std::vector<int> ports_;
  // Shared with the responses' on_done callbacks (run on the loop thread).
  std::shared_ptr<RequestDurations> durations_ = std::make_shared<RequestDurations>();
};

}  // namespace exporter
