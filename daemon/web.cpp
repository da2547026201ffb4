#include "web.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>

namespace exporter {

namespace {

constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Serves body (gzip-compressed when the client accepts it) through a content
// provider, so cpp-httplib does not compress it a second time.
void send_exposition(const httplib::Request& req, httplib::Response& res, std::string body) {
  auto payload = std::make_shared<std::string>();
  if (accepts_gzip(req.get_header_value("Accept-Encoding"))) {
    *payload = gzip_compress(body);
    res.set_header("Content-Encoding", "gzip");
  } else {
    *payload = std::move(body);
  }
  res.set_header("Vary", "Accept-Encoding");
  res.set_content_provider(
      payload->size(), kExpositionType,
      [payload](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        sink.write(payload->data() + offset, std::min(length, payload->size() - offset));
        return true;
      });
}

}  // namespace

std::string gzip_compress(const std::string& data) {
  z_stream stream{};
  // windowBits 15 + 16: gzip wrapper. Level 1: scrapes favour speed over ratio.
  if (deflateInit2(&stream, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out;
  out.resize(deflateBound(&stream, data.size()) + 32);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return status == Z_STREAM_END ? out : std::string();
}

bool accepts_gzip(const std::string& accept_encoding) {
  std::string value = lower(accept_encoding);
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

WebServer::WebServer(WebHandlers handlers, int max_requests)
    : handlers_(std::move(handlers)), max_requests_(std::max(1, max_requests)) {}

WebServer::~WebServer() { stop(); }

void WebServer::install_routes(httplib::Server& server) {
  int threads = max_requests_;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_max_count(100);
  server.set_read_timeout(10, 0);
  server.set_write_timeout(30, 0);
  server.set_payload_max_length(1024);
  // Only GET/HEAD (and POST for /-/reload), never a request body.
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    bool reload = req.path == "/-/reload";
    bool method_ok = reload ? (req.method == "POST" || req.method == "PUT")
                            : (req.method == "GET" || req.method == "HEAD");
    if (!method_ok) {
      res.status = 405;
      res.set_header("Allow", reload ? "POST, PUT" : "GET, HEAD");
      res.set_content("method not allowed\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    bool has_body = !req.body.empty() ||
                    req.get_header_value<std::uint64_t>("Content-Length") > 0 ||
                    req.has_header("Transfer-Encoding");
    if (has_body) {
      res.status = 413;
      res.set_content("request bodies are not accepted\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    send_exposition(req, res, handlers_.metrics());
  });
  server.Get("/probe", [this](const httplib::Request& req, httplib::Response& res) {
    std::string target = req.get_param_value("target");
    if (target.empty()) {
      res.status = 400;
      res.set_content("missing target parameter\n", "text/plain");
      return;
    }
    auto body = handlers_.probe(target);
    if (!body) {
      res.status = 404;
      res.set_content(body.error() + "\n", "text/plain");
      return;
    }
    send_exposition(req, res, std::move(*body));
  });
  server.Get("/sd", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(handlers_.sd(), "application/json");
  });
  server.Get("/-/healthy", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Healthy.\n", "text/plain");
  });
  server.Get("/-/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (handlers_.ready()) {
      res.set_content("Ready.\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("Not ready: configuration not loaded yet.\n", "text/plain");
    }
  });
  auto reload = [this](const httplib::Request&, httplib::Response& res) {
    auto result = handlers_.reload();
    if (result) {
      res.set_content("Reloaded.\n", "text/plain");
    } else {
      res.status = 500;
      res.set_content("failed to reload config: " + result.error() + "\n", "text/plain");
    }
  };
  server.Post("/-/reload", reload);
  server.Put("/-/reload", reload);
  server.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.path != "/") {
      res.status = 404;
      res.set_content("not found\n", "text/plain");
      return;
    }
    res.set_content(
        "<!DOCTYPE html>\n<html><head><title>WinRM Exporter</title></head><body>\n"
        "<h1>WinRM Exporter</h1>\n<p>Version " +
            html_escape(handlers_.version) +
            "</p>\n<ul>\n<li><a href=\"metrics\">Metrics</a> (exporter and all targets)</li>\n"
            "<li><form action=\"probe\"><label>Probe target: <input name=\"target\"></label> "
            "<input type=\"submit\" value=\"Probe\"></form> (<code>probe?target=NAME</code>)</li>\n"
            "<li><a href=\"sd\">Service discovery</a> (Prometheus <code>http_sd</code>: the "
            "targets of this instance)</li>\n"
            "<li><a href=\"-/healthy\">Health</a>, <a href=\"-/ready\">Readiness</a></li>\n"
            "</ul>\n</body></html>\n",
        "text/html; charset=utf-8");
  });
}

std::expected<void, std::string> WebServer::bind(const std::vector<ListenAddress>& addresses) {
  for (const auto& address : addresses) {
    auto server = std::make_unique<httplib::Server>();
    install_routes(*server);
    int port = address.port;
    if (port == 0) {
      port = server->bind_to_any_port(address.host);
      if (port <= 0) return std::unexpected("cannot listen on " + address.host + ":0");
    } else if (!server->bind_to_port(address.host, port)) {
      return std::unexpected("cannot listen on " + address.host + ":" + std::to_string(port));
    }
    ports_.push_back(port);
    servers_.push_back(std::move(server));
  }
  return {};
}

void WebServer::start() {
  for (auto& server : servers_) {
    threads_.emplace_back([raw = server.get()] { raw->listen_after_bind(); });
  }
}

void WebServer::stop() {
  for (auto& server : servers_) server->stop();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

}  // namespace exporter
