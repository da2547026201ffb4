#include "web.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "common/strings.h"
#include "common/thread_priority.h"
#include "exposition.h"
#include "net/server.h"
#include "web_auth.h"
#include "web_config.h"
#include "web_tls.h"

namespace exporter {

// The web configuration in force and the gates built from it; replaced whole on reload.
struct WebState {
  WebConfig config;
  BasicAuthenticator auth;
  RateLimiter limiter;

  explicit WebState(WebConfig loaded)
      : config(std::move(loaded)),
        auth(config.basic_auth_users),
        limiter(config.rate_limit_interval, config.rate_limit_burst) {}
};

namespace {

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

WebReply exposition(const WebRequest& request, std::string body) {
  WebReply reply;
  reply.content_type = kExpositionType;
  reply.headers.emplace_back("Vary", "Accept-Encoding");
  if (accepts_gzip(request.accept_encoding)) {
    reply.body = gzip_compress(std::move(body));
    reply.headers.emplace_back("Content-Encoding", "gzip");
  } else {
    reply.body = std::move(body);
  }
  return reply;
}

WebReply text(int status, std::string body) {
  WebReply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

}  // namespace

std::string gzip_compress(const std::string& data) { return gzip_compress(std::string(data)); }

std::string gzip_compress(std::string&& data) {
  // Level 1: scrapes favour speed over ratio. GzipWriter takes a pooled deflater: a /probe
  // no longer sets up (and tears down) ~260 KB of zlib state per request.
  GzipWriter out(1, data.size() / 4);
  out.text() = std::move(data);
  return out.finish();
}

bool accepts_gzip(const std::string& accept_encoding) {
  std::string value = common::to_lower(accept_encoding);
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    std::string item = value.substr(start, end - start);
    std::string coding = item.substr(0, item.find(';'));
    coding.erase(std::remove_if(coding.begin(), coding.end(), ::isspace), coding.end());
    if (coding == "gzip" || coding == "*") {
      auto q = item.find("q=");
      if (q == std::string::npos || std::strtod(item.c_str() + q + 2, nullptr) > 0) return true;
    }
    start = end + 1;
  }
  return false;
}

std::size_t RequestDurations::handler_index(std::string_view path) {
  for (std::size_t i = 0; i + 1 < kHandlers.size(); ++i) {
    if (kHandlers[i] == path) return i;
  }
  return kHandlers.size() - 1;
}

void RequestDurations::observe(std::size_t handler, double seconds) {
  std::size_t bucket = static_cast<std::size_t>(
      std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin());
  std::lock_guard lock(mutex_);
  Histogram& histogram = histograms_[handler];
  ++histogram.counts[bucket];
  histogram.sum += seconds;
}

void RequestDurations::render(std::string& out) const {
  std::array<Histogram, kHandlers.size()> copy;
  {
    std::lock_guard lock(mutex_);
    copy = histograms_;
  }
  auto family = FamilyWriter::histogram(
      out, "winrm_exporter_http_request_duration_seconds",
      "Time from a request's last byte read to its answer's last byte written, by endpoint "
      "(queueing for a web worker, the handler and the write).");
  for (std::size_t i = 0; i < kHandlers.size(); ++i) {
    family.histogram_sample(render_label_pairs({{"handler", std::string(kHandlers[i])}}), kBuckets,
                            copy[i].counts, copy[i].sum);
  }
}

WebServer::WebServer(WebHandlers handlers, WebOptions options)
    : handlers_(std::move(handlers)),
      options_(std::move(options)),
      state_(std::make_shared<WebState>(WebConfig{})) {
  options_.max_requests = std::max(1, options_.max_requests);
}

WebServer::~WebServer() { stop(); }

std::expected<void, std::string> WebServer::configure() {
  if (options_.config_file.empty()) return {};
  try {
    auto state = std::make_shared<WebState>(load_web_config(options_.config_file));
    if (state->config.tls) {
      auto provider = TlsContextProvider::create(*state->config.tls);
      if (!provider) {
        return std::unexpected(options_.config_file + ": tls_server_config: " + provider.error());
      }
      tls_ = std::move(*provider);
    }
    std::lock_guard lock(state_mutex_);
    state_ = std::move(state);
  } catch (const WebConfigError& error) {
    return std::unexpected(error.what());
  }
  return {};
}

std::expected<void, std::string> WebServer::reload_config() {
  if (options_.config_file.empty()) return {};
  try {
    auto state = std::make_shared<WebState>(load_web_config(options_.config_file));
    if (state->config.tls.has_value() != (tls_ != nullptr)) {
      return std::unexpected(options_.config_file +
                             ": tls_server_config added or removed: restart the exporter to "
                             "switch between HTTP and HTTPS");
    }
    if (tls_) {
      auto updated = tls_->update(*state->config.tls);
      if (!updated) {
        return std::unexpected(options_.config_file + ": tls_server_config: " + updated.error());
      }
    }
    std::lock_guard lock(state_mutex_);
    state_ = std::move(state);
  } catch (const WebConfigError& error) {
    return std::unexpected(error.what());
  }
  return {};
}

std::shared_ptr<WebState> WebServer::state() const {
  std::lock_guard lock(state_mutex_);
  return state_;
}

WebReply WebServer::handle(const WebRequest& request) {
  auto state = this->state();
  WebReply reply;
  if (!state->limiter.allow()) {
    reply = text(429, "Too Many Requests\n");
  } else if (auto verdict = state->auth.enabled() ? state->auth.verify(request.authorization)
                                                  : BasicAuthenticator::Result::kOk;
             verdict == BasicAuthenticator::Result::kBusy) {
    // Uncached credentials while bcrypt is already running at its limit (a password
    // guesser, typically): refused without spending a worker on bcrypt.
    reply = text(429, "Too Many Requests: authentication busy, retry\n");
    reply.headers.emplace_back("Retry-After", "1");
  } else if (verdict == BasicAuthenticator::Result::kDenied) {
    reply = text(401, "Unauthorized\n");
    reply.headers.emplace_back("WWW-Authenticate", "Basic realm=\"winrm_exporter\"");
  } else {
    reply = route(request);
  }
  for (const auto& header : state->config.headers) reply.headers.push_back(header);
  return reply;
}

WebReply WebServer::route(const WebRequest& request) {
  const std::string& path = request.path;
  bool reload = path == "/-/reload";
  bool method_ok = reload ? (request.method == "POST" || request.method == "PUT")
                          : (request.method == "GET" || request.method == "HEAD");
  if (!method_ok) {
    WebReply reply = text(405, "method not allowed\n");
    reply.headers.emplace_back("Allow", reload ? "POST, PUT" : "GET, HEAD");
    return reply;
  }
  if (request.has_body) return text(413, "request bodies are not accepted\n");
  if (path == "/metrics") {
    const bool gzip = accepts_gzip(request.accept_encoding);
    if (gzip && !handlers_.metrics_gzip) return exposition(request, *handlers_.metrics());
    // The shared page is sent as it is: concurrent scrapes hold one copy between them.
    WebReply reply;
    reply.content_type = kExpositionType;
    reply.headers.emplace_back("Vary", "Accept-Encoding");
    if (gzip) {  // the cached segments spliced, nothing compressed per scrape
      reply.headers.emplace_back("Content-Encoding", "gzip");
      reply.shared_parts = handlers_.metrics_gzip();
    } else {
      reply.shared_body = handlers_.metrics();
    }
    return reply;
  }
  if (path == "/probe") {
    if (!request.target || request.target->empty()) return text(400, "missing target parameter\n");
    // The page and its gzip member are built in buffers this thread keeps between requests:
    // the body is one allocation of its exact size, not a ~160 KB page grown, copied and
    // trimmed per /probe (brk and page faults were ~40% of a probe's cost, bench/RESULTS.md).
    thread_local std::string page;
    thread_local std::string gzipped;
    page.clear();
    auto found = handlers_.probe(*request.target, page);
    if (!found) return text(404, found.error() + "\n");
    WebReply reply;
    reply.content_type = kExpositionType;
    reply.headers.emplace_back("Vary", "Accept-Encoding");
    if (accepts_gzip(request.accept_encoding)) {
      gzipped.clear();
      gzip_member(gzipped, page);
      reply.body.assign(gzipped);
      reply.headers.emplace_back("Content-Encoding", "gzip");
    } else {
      reply.body.assign(page);
    }
    // A very large page (custom collectors) does not pin its memory to a worker for good.
    constexpr std::size_t kKeepBuffer = 4 << 20;
    if (page.capacity() > kKeepBuffer) std::string().swap(page);
    if (gzipped.capacity() > kKeepBuffer) std::string().swap(gzipped);
    return reply;
  }
  if (path == "/sd") {
    WebReply reply = text(200, handlers_.sd());
    reply.content_type = "application/json";
    return reply;
  }
  if (path == "/-/healthy") {
    if (!handlers_.healthy || handlers_.healthy()) return text(200, "Healthy.\n");
    return text(503, "Unhealthy: the poll scheduler has stopped making progress.\n");
  }
  if (path == "/-/ready") {
    if (handlers_.ready()) return text(200, "Ready.\n");
    return text(503, "Not ready: configuration not loaded yet.\n");
  }
  if (reload) {
    // As Prometheus: the endpoint exists but is refused unless --web.enable-lifecycle.
    if (!options_.enable_lifecycle) {
      return text(403, "Lifecycle API is not enabled (--web.enable-lifecycle).\n");
    }
    auto result = handlers_.reload();
    if (!result) return text(500, "failed to reload config: " + result.error() + "\n");
    auto web = reload_config();
    if (!web) return text(500, "failed to reload web config: " + web.error() + "\n");
    return text(200, "Reloaded.\n");
  }
  if (path == "/") {
    std::string version;
    common::append_xml_escaped(version, handlers_.version);  // XML escaping is valid HTML
    WebReply reply = text(
        200,
        "<!DOCTYPE html>\n<html><head><title>WinRM Exporter</title></head><body>\n"
        "<h1>WinRM Exporter</h1>\n<p>Version " +
            version +
            "</p>\n<ul>\n<li><a href=\"metrics\">Metrics</a> (exporter and all targets)</li>\n"
            "<li><form action=\"probe\"><label>Probe target: <input name=\"target\"></label> "
            "<input type=\"submit\" value=\"Probe\"></form> (<code>probe?target=NAME</code>)</li>\n"
            "<li><a href=\"sd\">Service discovery</a> (Prometheus <code>http_sd</code>: the "
            "targets of this instance)</li>\n"
            "<li><a href=\"-/healthy\">Health</a>, <a href=\"-/ready\">Readiness</a></li>\n"
            "</ul>\n</body></html>\n");
    reply.content_type = "text/html; charset=utf-8";
    return reply;
  }
  return text(404, "not found\n");
}

std::expected<void, std::string> WebServer::bind(const std::vector<ListenAddress>& addresses) {
  net::ServerOptions server_options;
  server_options.loop_threads = 1;
  server_options.thread_name = "web";
  // Web threads ahead of polling ones on a busy core: the loop thread answers /probe.
  server_options.thread_start = [](net::ServerOptions::ThreadKind kind) {
    (void)common::apply_serving_priority(kind == net::ServerOptions::ThreadKind::kLoop);
  };
  // Rendering /metrics and bcrypt checks are CPU work: handlers run on workers, the loop
  // only moves bytes, so clients that send slowly hold a connection, never a thread.
  server_options.worker_threads = options_.max_requests;
  // A /probe (~0.5-1 ms of CPU: one host's page re-labelled and gzipped) is answered on the
  // loop thread, unless basic auth may need a bcrypt check: the hand-off to a worker and back
  // were two more thread wake-ups, each of which can wait up to a scheduler tick (4 ms at
  // HZ=250) behind a polling thread on a busy core (issue 10: /probe p99 < 5 ms).
  server_options.run_inline = [this](const net::Request& request) {
    return request.path == "/probe" && !state()->auth.enabled();
  };
  net::ServerLimits& limits = server_options.limits;
  limits.max_connections = static_cast<std::size_t>(options_.max_connections);
  limits.max_connections_per_client = static_cast<std::size_t>(options_.max_connections_per_client);
  limits.max_head_bytes = 16 * 1024;
  limits.max_header_count = 64;
  limits.max_body_bytes = 1024;  // no endpoint takes a body (413 above any)
  limits.request_timeout = options_.request_timeout;
  limits.idle_timeout = options_.idle_timeout;
  limits.write_timeout = std::chrono::seconds(30);
  limits.max_queued_requests = 256;
  server_options.stop_grace = std::chrono::seconds(2);
  server_ = std::make_unique<net::Server>(
      server_options, [this](net::Request request, net::Responder responder) {
        const std::size_t handler = RequestDurations::handler_index(request.path);
        const auto received = request.received;
        WebRequest web;
        web.method = std::move(request.method);
        web.path = std::move(request.path);
        web.target = request.query_param("target");
        web.authorization = request.header_value("Authorization");
        web.accept_encoding = request.header_value("Accept-Encoding");
        std::string length = request.header_value("Content-Length");
        web.has_body = !request.body.empty() || (!length.empty() && length != "0") ||
                       request.header("Transfer-Encoding").has_value();
        WebReply reply = handle(web);
        net::Response response;
        response.status = reply.status;
        response.add_header("Content-Type", std::move(reply.content_type));
        for (auto& [name, value] : reply.headers) response.add_header(name, std::move(value));
        response.body = std::move(reply.body);
        response.shared_body = std::move(reply.shared_body);
        response.body_parts = std::move(reply.shared_parts);
        response.on_done = [durations = durations_, handler, received] {
          durations->observe(
              handler,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
        };
        responder.send(std::move(response));
      });
  net::TlsContextProvider tls;
  if (tls_) {
    // Asked per connection: certificate files replaced on disk take effect without a
    // reload (TlsContextProvider checks them at most once a second).
    tls = [provider = tls_]() { return provider->current().get(); };
  }
  for (const auto& address : addresses) {
    auto port = server_->listen(address.host, address.port, tls);
    if (!port) {
      return std::unexpected("cannot listen on " + address.host + ":" +
                             std::to_string(address.port) + ": " + port.error());
    }
    ports_.push_back(*port);
  }
  return {};
}

void WebServer::start() {
  if (server_) server_->start();
}

void WebServer::stop() {
  if (server_) server_->stop();
}

}  // namespace exporter
