// A throwaway MIT KDC on loopback (tests/scripts/kdc.sh) for one test process, plus
// an in-memory "connection" that runs the simulator's acceptor, so the Negotiate auth
// can be tested end to end without HTTP.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "acceptor.h"  // winrm-sim's side of the handshake
#include "testsupport/temp_dir.h"
#include "winrm/credentials.h"
#include "winrm/message_encryption.h"
#include "winrm/negotiate_auth.h"

// REQUIRE that a Result holds a value; shows the error otherwise (and never touches
// error() of a value, which doctest's -s would).
#define REQUIRE_OK(result) \
  REQUIRE_MESSAGE((result).has_value(), ((result) ? std::string() : (result).error().message))

namespace krbtest {

inline int run(const std::string& command) { return std::system(command.c_str()); }

class Kdc {
 public:
  // maxlife: the exporter principal's ticket lifetime in seconds.
  explicit Kdc(int maxlife = 16) {
    script_ = std::string(WINRM_TEST_SCRIPTS) + "/kdc.sh";
    REQUIRE(run(script_ + " init " + dir_ + " " + std::to_string(maxlife) + " >" + dir_ +
                "/init.log 2>&1") == 0);
    // Before any thread exists (test process only; the library never touches env).
    setenv("KRB5_CONFIG", (dir_ + "/krb5.conf").c_str(), 1);
  }
  ~Kdc() { stop(); }  // then tmp_ goes (kept with WINRM_TEST_KEEP)
  void stop() { run(script_ + " stop " + dir_); }
  void start() { REQUIRE(run(script_ + " start " + dir_) == 0); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // AS requests the KDC answered with a ticket for principal.
  int as_req_count(const std::string& principal = "exporter") const {
    std::ifstream log(dir_ + "/kdc.log");
    std::string line;
    int count = 0;
    const std::string needle = " " + principal + "@KRBTEST.COM for krbtgt/";
    while (std::getline(log, line)) {
      if (line.find("AS_REQ") != std::string::npos && line.find("ISSUE") != std::string::npos &&
          line.find(needle) != std::string::npos) {
        ++count;
      }
    }
    return count;
  }
  const std::string& dir() const { return dir_; }

 private:
  testsupport::TempDir tmp_{"winrm-krb"};
  std::string dir_ = tmp_.str();
  std::string script_;
};

inline std::string fake_end_point(char fill) {
  return "tls-server-end-point:" + std::string(32, fill);
}

// Routes requests to a NegotiateAcceptor the way winrm-sim does (401/200, WWW-Authenticate,
// encrypted bodies), and records what crossed the "wire".
class LoopbackConnection : public winrm::Connection {
 public:
  LoopbackConnection(sim::NegotiateAcceptor& acceptor, winrm::EndpointOptions endpoint,
                     std::optional<std::string> tls_end_point = std::nullopt)
      : acceptor_(acceptor), endpoint_(std::move(endpoint)), tls_(std::move(tls_end_point)) {}

  winrm::Result<winrm::HttpResponse> round_trip(const winrm::HttpRequest& request,
                                                winrm::Deadline) override {
    if (!open_) {
      open_ = true;
      ++id_;
    }
    ++requests;
    const std::string key = "127.0.0.1:" + std::to_string(40000 + id_);
    winrm::HttpResponse response;
    std::optional<std::string> authorization;
    for (const auto& [name, value] : request.headers) {
      if (name == "Authorization") authorization = value;
    }
    if (authorization) {
      auto result = acceptor_.accept(key, *authorization);
      if (!result.www_authenticate.empty() &&
          !(strip_mutual_token &&
            result.kind == sim::NegotiateAcceptor::AuthResult::Kind::kAccepted)) {
        response.headers.emplace_back("WWW-Authenticate", result.www_authenticate);
      }
      if (result.kind != sim::NegotiateAcceptor::AuthResult::Kind::kAccepted) {
        if (result.kind == sim::NegotiateAcceptor::AuthResult::Kind::kRejected) {
          last_reject_reason = result.reason;
          response.headers.emplace_back("WWW-Authenticate", "Negotiate");
        }
        response.status = 401;
        return response;
      }
    } else if (!acceptor_.authenticated(key)) {
      response.status = 401;
      response.headers.emplace_back("WWW-Authenticate", "Negotiate");
      return response;
    }
    if (!request.body.empty()) {
      if (winrm::gss::is_encrypted_content_type(request.content_type)) {
        ++encrypted_bodies;
      } else {
        ++plaintext_bodies;
      }
    }
    auto decoded = acceptor_.decode_request(key, request.content_type, request.body);
    if (decoded.status != 0) {
      response.status = decoded.status;
      return response;
    }
    last_plaintext = decoded.soap;
    std::string reply = decoded.soap.empty() ? "" : "<reply>" + decoded.soap + "</reply>";
    auto [type, body] = acceptor_.encode_response(key, reply, decoded.encrypted);
    response.status = 200;
    response.headers.emplace_back("Content-Type", type);
    response.body = std::move(body);
    return response;
  }
  std::uint64_t connection_id() const override { return id_; }
  std::optional<std::string> tls_server_end_point() const override {
    return open_ ? tls_ : std::nullopt;
  }
  const winrm::EndpointOptions& endpoint() const override { return endpoint_; }
  void close() override { open_ = false; }
  bool is_connected() const override { return open_; }
  // The server forgets the connection's context without the client noticing.
  void server_forgets() { acceptor_.drop("127.0.0.1:" + std::to_string(40000 + id_)); }

  int requests = 0, plaintext_bodies = 0, encrypted_bodies = 0;
  bool strip_mutual_token = false;
  std::string last_plaintext, last_reject_reason;

 private:
  sim::NegotiateAcceptor& acceptor_;
  winrm::EndpointOptions endpoint_;
  std::optional<std::string> tls_;
  bool open_ = false;
  std::uint64_t id_ = 0;
};

inline winrm::EndpointOptions endpoint(const std::string& host, winrm::Scheme scheme) {
  winrm::EndpointOptions options;
  options.host = host;
  options.scheme = scheme;
  options.port = scheme == winrm::Scheme::kHttps ? 5986 : 5985;
  return options;
}

inline winrm::Deadline soon() { return winrm::Clock::now() + std::chrono::seconds(10); }

}  // namespace krbtest
