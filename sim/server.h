// The simulated WinRM service: virtual hosts by Host header, Basic auth, WS-Enumeration
// Enumerate/Pull/Release over a WQL filter, Windows faults and per-host fault modes.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config.h"
#include "inventory.h"
#include "negotiate.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace sim {

// Settings and runtime state of one virtual host.
struct VirtualHost {
  HostConfig config;
  std::atomic<bool> expire_once_pending{false};
};

enum class AuthResult { kOk, kRejected };

class SimServer {
 public:
  explicit SimServer(SimConfig config);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  // Binds every configured listener; returns ("https"|"http", port) pairs. Throws.
  std::vector<std::pair<std::string, int>> bind();
  // Serves until stop(); blocks.
  void run();
  // Thread-safe; wakes sleeping fault-mode handlers too.
  void stop();
  bool stopping() const { return stopping_.load(); }

  // Handles one HTTP request (public for in-process tests).
  void handle(const httplib::Request& req, httplib::Response& res);

 private:
  struct Enumeration {
    std::string host;
    std::vector<std::string> items;  // rendered instances, in order
    std::size_t next = 0;
    int pulls = 0;
    bool expire_first_pull = false;
    std::chrono::steady_clock::time_point expires;
  };
  struct Reply {
    int status = 200;
    std::string body;
  };
  struct SoapRequest;

  VirtualHost& virtual_host(const std::string& host);
  // The one place credentials are checked (the Negotiate work hooks in here).
  AuthResult authenticate(const httplib::Request& req, httplib::Response& res,
                          const VirtualHost& vh);
  // The one place request bodies are decoded (message encryption hooks in here).
  bool decode_request_body(const httplib::Request& req, std::string& body);
  // The one place responses are written: content type, encryption, trickle/close modes.
  void send_response(const httplib::Request& req, httplib::Response& res, Reply reply,
                     const VirtualHost& vh);

  Reply dispatch(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply enumerate(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply pull(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply release(const SoapRequest& soap, const std::string& host);
  Reply replay(const SoapRequest& soap, const std::string& host);
  // Builds one page from `e` (items removed from the front); empty optional = max envelope fault.
  bool take_page(Enumeration& e, std::size_t max_items, std::size_t budget, std::string& items,
                 std::size_t& count);
  void expire_enumerations();
  // Sleeps up to `d`; false when the server is stopping.
  bool sleep_for(std::chrono::milliseconds d);

  SimConfig config_;
  Inventory inventory_;
  std::vector<std::string> replay_bodies_;
  std::unordered_map<std::string, std::unique_ptr<VirtualHost>> hosts_;
  VirtualHost default_host_;
  std::vector<std::unique_ptr<httplib::Server>> servers_;
  std::vector<std::pair<std::string, int>> bound_;

  std::mutex enum_mutex_;
  std::unordered_map<std::string, std::shared_ptr<Enumeration>> enumerations_;
  std::chrono::steady_clock::time_point next_gc_;

  std::mutex replay_mutex_;
  std::unordered_map<std::string, std::size_t> replay_cursor_;

  // Negotiate acceptors per listener (null when `negotiate:` is not configured).
  std::unique_ptr<NegotiateAcceptor> negotiate_tls_, negotiate_plain_;
  NegotiateAcceptor* negotiate_for(const httplib::Request& req) const;

  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
};

}  // namespace sim
