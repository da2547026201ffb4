// HTTP endpoints on cpp-httplib: /, /metrics, /probe, /sd, /-/healthy, /-/ready, /-/reload.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "flags.h"

namespace httplib {
class Server;
}

namespace exporter {

struct WebHandlers {
  std::function<std::string()> metrics;
  // Error: the text of the 404 (unknown target, or owned by another shard).
  std::function<std::expected<std::string, std::string>(const std::string& target)> probe;
  // Prometheus http_sd JSON.
  std::function<std::string()> sd;
  std::function<bool()> ready;
  // Error text goes into the 500 body.
  std::function<std::expected<void, std::string>()> reload;
  std::string version;
};

// gzip (RFC 1952) of data.
std::string gzip_compress(const std::string& data);
// Whether an Accept-Encoding header value allows gzip (q=0 excluded).
bool accepts_gzip(const std::string& accept_encoding);

class WebServer {
 public:
  WebServer(WebHandlers handlers, int max_requests);
  ~WebServer();

  // Binds every address (port 0 picks a free one). Error names the address.
  std::expected<void, std::string> bind(const std::vector<ListenAddress>& addresses);
  std::vector<int> ports() const { return ports_; }
  void start();
  void stop();

 private:
  void install_routes(httplib::Server& server);

  WebHandlers handlers_;
  int max_requests_;
  std::vector<std::unique_ptr<httplib::Server>> servers_;
  std::vector<std::thread> threads_;
  std::vector<int> ports_;
};

}  // namespace exporter
