// cpp-httplib 0.11.4 based transport. The library's read timeout is per read(), so a
// trickling server is cut off by a content receiver (body) and by a shared watchdog
// thread that calls Client::stop() (status line and headers).
#include "winrm/transport.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace winrm {
namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Writing to a socket the peer closed raises SIGPIPE (OpenSSL writes without
// MSG_NOSIGNAL). A library must not change the process' disposition, so block it in
// this thread for the duration of the call and swallow the one we caused.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    already_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!already_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) > 0) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool already_pending_ = false;
};

// One process-wide timer thread; arm() returns a token, disarm() guarantees the
// callback is not running and will not run afterwards.
class Watchdog {
 public:
  static Watchdog& instance() {
    static Watchdog watchdog;
    return watchdog;
  }

  std::uint64_t arm(Deadline deadline, std::function<void()> fire) {
    std::lock_guard lock(mutex_);
    const std::uint64_t token = ++next_token_;
    entries_.emplace(token, Entry{deadline, std::move(fire)});
    wake_.notify_all();
    return token;
  }

  void disarm(std::uint64_t token) {
    std::unique_lock lock(mutex_);
    entries_.erase(token);
    done_.wait(lock, [&] { return running_ != token; });
  }

  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  struct Entry {
    Deadline deadline;
    std::function<void()> fire;
  };

  Watchdog() : thread_([this] { run(); }) {}

  void run() {
    SigpipeGuard no_sigpipe;  // stop() may shut down TLS on a dead socket
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      auto next = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (next == entries_.end() || it->second.deadline < next->second.deadline) next = it;
      }
      if (next == entries_.end()) {
        wake_.wait(lock);
        continue;
      }
      // Copy: disarm() may erase the entry while we wait.
      const Deadline when = next->second.deadline;
      if (Clock::now() < when) {
        wake_.wait_until(lock, when);
        continue;
      }
      const std::uint64_t token = next->first;
      auto fire = std::move(next->second.fire);
      entries_.erase(next);
      running_ = token;
      lock.unlock();
      fire();
      lock.lock();
      running_ = 0;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::map<std::uint64_t, Entry> entries_;
  std::uint64_t next_token_ = 0;
  std::uint64_t running_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // last: started after the other members exist
};

// RFC 5929 section 4.1: the certificate's signature digest, upgraded to SHA-256 when it
// is MD5/SHA-1 or has none (e.g. Ed25519, RSA-PSS).
std::optional<std::string> end_point_hash(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (cert == nullptr) return std::nullopt;
  int md_nid = NID_undef;
  int pk_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid) == 0) md_nid = NID_undef;
  const EVP_MD* md = nullptr;
  if (md_nid != NID_undef && md_nid != NID_md5 && md_nid != NID_sha1) {
    md = EVP_get_digestbynid(md_nid);
  }
  if (md == nullptr) md = EVP_sha256();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  const int ok = X509_digest(cert, md, digest, &digest_len);
  X509_free(cert);
  if (ok != 1) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(digest), digest_len);
}

time_t whole_seconds(std::chrono::microseconds d) {
  return static_cast<time_t>(d.count() / 1000000);
}
time_t micro_part(std::chrono::microseconds d) { return static_cast<time_t>(d.count() % 1000000); }

class HttpConnection final : public Connection {
 public:
  HttpConnection(EndpointOptions options, std::shared_ptr<TransportCounters> counters)
      : options_(std::move(options)), counters_(std::move(counters)) {
    if (!counters_) counters_ = std::make_shared<TransportCounters>();
    create_client();
  }

  ~HttpConnection() override {
    SigpipeGuard no_sigpipe;
    client_->stop();
  }

  Result<HttpResponse> round_trip(const HttpRequest& request, Deadline deadline) override {
    SigpipeGuard no_sigpipe;
    // A reused keep-alive connection may have been closed by the peer while idle; 0.11
    // only notices when the request fails, so retry once on a fresh connection.
    for (int attempt = 0;; ++attempt) {
      Attempt outcome = send_once(request, deadline);
      if (outcome.response) return std::move(*outcome.response);
      if (attempt == 0 && outcome.retryable) {
        spdlog::debug("winrm: {} reused connection failed ({}), reconnecting", options_.host,
                      outcome.error.message);
        continue;
      }
      return std::unexpected(std::move(outcome.error));
    }
  }

  std::uint64_t connection_id() const override { return connection_id_.load(); }

  std::optional<std::string> tls_server_end_point() const override {
    std::lock_guard lock(cert_mutex_);
    if (server_cert_der_.empty()) return std::nullopt;
    auto hash = end_point_hash(server_cert_der_);
    if (!hash) return std::nullopt;
    return "tls-server-end-point:" + *hash;
  }

  const EndpointOptions& endpoint() const override { return options_; }

  void close() override {
    SigpipeGuard no_sigpipe;
    client_->stop();
  }

  bool is_connected() const override { return client_->is_socket_open(); }

 private:
  struct Attempt {
    std::optional<HttpResponse> response;
    Error error;
    bool retryable = false;
  };

  const std::string& connect_address() const {
    return options_.connect_address.empty() ? options_.host : options_.connect_address;
  }

  void create_client() {
    if (options_.scheme == Scheme::kHttps) {
      auto ssl = std::make_unique<httplib::SSLClient>(options_.host, options_.port);
      if (options_.insecure_skip_verify) {
        ssl->enable_server_certificate_verification(false);
        spdlog::warn("winrm: TLS certificate verification is DISABLED for {}:{} (insecure opt-in)",
                     options_.host, options_.port);
      } else if (!options_.ca_file.empty()) {
        ssl->set_ca_cert_path(options_.ca_file);
      } else if (std::filesystem::exists(kSystemCaBundle)) {
        ssl->set_ca_cert_path(kSystemCaBundle);
      }  // else: OpenSSL's default verify paths (httplib's fallback)
      // Runs for every full handshake, also with verification off: keeps the server
      // certificate for channel binding.
      SSL_CTX_set_cert_verify_callback(ssl->ssl_context(), &HttpConnection::verify_callback, this);
      client_ = std::move(ssl);
    } else {
      client_ = std::make_unique<httplib::ClientImpl>(options_.host, options_.port);
    }
    if (!options_.connect_address.empty() && options_.connect_address != options_.host) {
      client_->set_hostname_addr_map({{options_.host, options_.connect_address}});
    }
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);
    client_->set_follow_location(false);
    client_->set_socket_options([this](socket_t) {
      // Called once per new socket, before connect.
      counters_->connections_opened++;
      if (connection_id_.fetch_add(1) > 0) counters_->reconnects++;
      opened_during_request_ = true;
    });
  }

  static int verify_callback(X509_STORE_CTX* store, void* arg) {
    auto* self = static_cast<HttpConnection*>(arg);
    const int ok = X509_verify_cert(store);
    self->counters_->tls_handshakes++;
    if (X509* cert = X509_STORE_CTX_get0_cert(store); cert != nullptr) {
      unsigned char* der = nullptr;
      const int len = i2d_X509(cert, &der);
      if (len > 0) {
        std::lock_guard lock(self->cert_mutex_);
        self->server_cert_der_.assign(reinterpret_cast<const char*>(der), len);
      }
      OPENSSL_free(der);
    }
    return ok;
  }

  Attempt send_once(const HttpRequest& request, Deadline deadline) {
    Attempt out;
    const auto start = Clock::now();
    if (start >= deadline) {
      out.error = Error{ErrorKind::kTimeout, "deadline exceeded before sending", 0, std::nullopt};
      return out;
    }
    const auto remaining = std::chrono::duration_cast<std::chrono::microseconds>(deadline - start);
    const auto connect_timeout = std::min<std::chrono::microseconds>(
        remaining, std::chrono::duration_cast<std::chrono::microseconds>(options_.connect_timeout));
    client_->set_connection_timeout(whole_seconds(connect_timeout), micro_part(connect_timeout));
    client_->set_read_timeout(whole_seconds(remaining), micro_part(remaining));
    client_->set_write_timeout(whole_seconds(remaining), micro_part(remaining));

    httplib::Request req;
    req.method = "POST";
    req.path = options_.path;
    req.body = request.body;
    req.headers.emplace("Content-Type", request.content_type);
    req.headers.emplace("User-Agent", "winrm_exporter");
    req.headers.emplace("Accept-Encoding", "identity");
    for (const auto& [name, value] : request.headers) req.headers.emplace(name, value);

    HttpResponse response;
    bool got_headers = false;
    bool too_large = false;
    bool deadline_hit = false;
    const std::size_t cap = options_.max_response_bytes;
    req.response_handler = [&](const httplib::Response& res) {
      got_headers = true;
      // Refuse early when the announced length is over the cap.
      if (res.has_header("Content-Length")) {
        const auto length =
            std::strtoull(res.get_header_value("Content-Length").c_str(), nullptr, 10);
        if (length > cap) {
          too_large = true;
          return false;
        }
      }
      return true;
    };
    req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
      counters_->bytes_received += len;
      if (response.body.size() + len > cap) {
        too_large = true;
        return false;
      }
      if (Clock::now() >= deadline) {
        deadline_hit = true;
        return false;
      }
      response.body.append(data, len);
      return true;
    };

    opened_during_request_ = false;
    std::atomic<bool> watchdog_fired{false};
    const std::uint64_t token = Watchdog::instance().arm(deadline, [&] {
      watchdog_fired = true;
      client_->stop();
    });
    httplib::Response res;
    httplib::Error http_error = httplib::Error::Success;
    counters_->requests++;
    counters_->bytes_sent += req.body.size();
    const bool ok = client_->send(req, res, http_error);
    Watchdog::instance().disarm(token);

    if (ok) {
      response.status = res.status;
      for (const auto& [name, value] : res.headers) response.headers.emplace_back(name, value);
      out.response = std::move(response);
      return out;
    }
    // A failed exchange leaves the stream in an unknown state: start fresh next time.
    client_->stop();

    // The read timeout is the time left, and poll() may wake a little before it: a failure
    // that close to the deadline is the deadline, never an idle-closed connection to retry.
    constexpr auto kTimerSlack = std::chrono::milliseconds(20);
    const bool past_deadline = Clock::now() + kTimerSlack >= deadline;
    if (too_large) {
      out.error = Error{ErrorKind::kTransport, "response exceeds " + std::to_string(cap) + " bytes",
                        res.status, std::nullopt};
    } else if (deadline_hit || watchdog_fired || past_deadline) {
      out.error = Error{ErrorKind::kTimeout,
                        "deadline exceeded after " + std::to_string(response.body.size()) +
                            " response bytes (" + httplib::to_string(http_error) + ")",
                        got_headers ? res.status : 0, std::nullopt};
    } else {
      ErrorKind kind = ErrorKind::kTransport;
      std::string what = httplib::to_string(http_error);
      switch (http_error) {
        case httplib::Error::SSLConnection:
        case httplib::Error::SSLLoadingCerts:
          kind = ErrorKind::kTls;
          break;
        case httplib::Error::SSLServerVerification: {
          kind = ErrorKind::kTls;
          auto* ssl = dynamic_cast<httplib::SSLClient*>(client_.get());
          const long verify = ssl != nullptr ? ssl->get_openssl_verify_result() : X509_V_OK;
          what += verify != X509_V_OK
                      ? std::string(": ") + X509_verify_cert_error_string(verify)
                      : std::string(": certificate does not match host name " + options_.host);
          break;
        }
        case httplib::Error::Read:
        case httplib::Error::Write:
          out.retryable = !opened_during_request_ && !got_headers;
          break;
        default:
          break;
      }
      out.error = Error{kind,
                        what + " (" + options_.host + " via " + connect_address() + ":" +
                            std::to_string(options_.port) + ")",
                        got_headers ? res.status : 0, std::nullopt};
    }
    return out;
  }

  EndpointOptions options_;
  std::shared_ptr<TransportCounters> counters_;
  std::unique_ptr<httplib::ClientImpl> client_;
  std::atomic<std::uint64_t> connection_id_{0};
  bool opened_during_request_ = false;
  mutable std::mutex cert_mutex_;
  std::string server_cert_der_;
};

}  // namespace

std::string EndpointOptions::url() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return std::string(scheme == Scheme::kHttps ? "https" : "http") + "://" +
         (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + path;
}

std::vector<std::string> HttpResponse::header_values(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) values.push_back(value);
  }
  return values;
}

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::unique_ptr<Connection> make_http_connection(EndpointOptions options,
                                                 std::shared_ptr<TransportCounters> counters) {
  return std::make_unique<HttpConnection>(std::move(options), std::move(counters));
}

}  // namespace winrm
