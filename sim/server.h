// The simulated WinRM service: virtual hosts by Host header, Basic auth, WS-Enumeration
// Enumerate/Pull/Release over a WQL filter, Windows faults and per-host fault modes.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "acceptor.h"
#include "config.h"
#include "inventory.h"
#include "latency.h"
#include "net/server.h"

struct ssl_ctx_st;
struct x509_st;

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
  // Thread-safe.
  void stop();
  bool stopping() const { return stopping_.load(); }
  net::ServerStats stats() const;

  // Handles one HTTP request (public for in-process tests); runs on a worker thread and
  // answers through `responder`, at once or at a time (delays are loop timers).
  void handle(net::Request req, net::Responder responder);

 private:
  struct Enumeration {
    std::string host;
    std::string wmi_class;           // for the latency of its Pulls
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
  using Clock = net::Clock;
  struct SoapRequest;

  VirtualHost& virtual_host(const std::string& host);
  // The one place credentials are checked (the Negotiate work hooks in here).
  AuthResult authenticate(const net::Request& req, net::Response& res, const VirtualHost& vh);
  // The `client_certificates:` user a verified client certificate maps to.
  std::optional<std::string> mapped_user(x509_st* cert) const;
  // The one place request bodies are decoded (message encryption hooks in here).
  bool decode_request_body(const net::Request& req, std::string& body);
  // The one place SOAP responses are written: content type, encryption, trickle/close
  // modes; sent at `when` (the simulated latency). `res` carries what authentication
  // already put on the answer (the Negotiate mutual-auth token).
  void send_response(const net::Request& req, net::Responder& responder, Reply reply,
                     const VirtualHost& vh, Clock::time_point when, net::Response res);

  Reply dispatch(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply enumerate(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply pull(const SoapRequest& soap, const std::string& host, VirtualHost& vh);
  Reply release(const SoapRequest& soap, const std::string& host);
  Reply replay(const SoapRequest& soap, const std::string& host);
  // Builds one page from `e` (items removed from the front); empty optional = max envelope fault.
  bool take_page(Enumeration& e, std::size_t max_items, std::size_t budget, std::string& items,
                 std::size_t& count);
  void expire_enumerations();
  // The WMI class a request is about (its latency class): the Enumerate's query class,
  // or the class of the enumeration a Pull continues; empty when unknown.
  std::string request_class(const SoapRequest& soap);

  SimConfig config_;
  Inventory inventory_;
  std::vector<std::string> replay_bodies_;
  std::unordered_map<std::string, std::unique_ptr<VirtualHost>> hosts_;
  VirtualHost default_host_;
  std::unique_ptr<net::Server> server_;
  std::unique_ptr<ssl_ctx_st, void (*)(ssl_ctx_st*)> tls_ctx_{nullptr, nullptr};
  std::vector<std::pair<std::string, int>> bound_;

  std::mutex enum_mutex_;
  std::unordered_map<std::string, std::shared_ptr<Enumeration>> enumerations_;
  std::chrono::steady_clock::time_point next_gc_;

  std::mutex replay_mutex_;
  std::unordered_map<std::string, std::size_t> replay_cursor_;

  // Negotiate acceptors per listener (null when `negotiate:` is not configured).
  std::unique_ptr<NegotiateAcceptor> negotiate_tls_, negotiate_plain_;
  NegotiateAcceptor* negotiate_for(const net::Request& req) const;

  std::unique_ptr<LatencyModel> latency_;  // null: answers as fast as they are computed
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::atomic<bool> stopping_{false};
};

}  // namespace sim
