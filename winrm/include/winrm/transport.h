// HTTP(S) transport to one WinRM endpoint (native on OpenSSL, libcurl through proxies;
// docs/transport.md): one keep-alive connection, absolute deadlines that hold against
// trickling servers, bounded response heads and bodies, and counters.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "winrm/error.h"

namespace winrm {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

enum class Scheme { kHttp, kHttps };

struct EndpointOptions {
  std::string host;             // Host header, SNI, certificate name, Kerberos SPN host
  std::string connect_address;  // where to connect (IP or name); host when empty
  int port = 5986;
  Scheme scheme = Scheme::kHttps;
  std::string path = "/wsman";
  std::string ca_file;                                // PEM bundle; system store when empty
  bool insecure_skip_verify = false;                  // explicit, logged opt-in
  std::size_t max_response_bytes = 16 * 1024 * 1024;  // body cap; over it: kTransport
  // Caps on the response head (status line + header lines, all 1xx heads included).
  // libcurl itself also refuses any single line over 100 KiB (CURL_MAX_HTTP_HEADER).
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_header_count = 100;
  std::chrono::milliseconds connect_timeout{5000};
  // Client certificate (PEM chain) and its PEM key, sent in the TLS handshake
  // (certificate authentication, HTTPS only). Read at each handshake, so a renewed pair
  // takes effect on the next connection. Only the paths are ever logged.
  std::string client_cert_file;
  std::string client_key_file;
  std::string client_key_password;  // an encrypted key's passphrase; secret: never logged
  // Forward proxy, "http://host:port" or "https://host:port" (empty: direct). HTTPS goes through a
  // CONNECT tunnel (TLS, SNI, certificate check and channel binding stay end to end with the host);
  // HTTP is sent as absolute-URI requests. Environment proxies are never used.
  std::string proxy;
  std::string proxy_username;  // proxy Basic auth when not empty
  std::string proxy_password;  // secret: never logged
  // https:// proxies (TLS to the proxy, always verified): the CAs for the proxy's
  // certificate; empty: the system bundle.
  std::string proxy_ca_file;
  // NO_PROXY syntax (libcurl): comma-separated host names, domain suffixes, IP addresses
  // or CIDR ranges, or "*"; a matching host is reached directly.
  std::string no_proxy;
  // Shutdown: once true, no request starts and one in progress ends within about a second
  // (libcurl's progress callback) with a kTimeout error whose `cancelled` is set. Not
  // part of the endpoint's identity; shared by every connection of the process.
  std::shared_ptr<const std::atomic<bool>> cancel;

  std::string url() const;  // "https://host:5986/wsman"
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string body;
  std::string content_type = "application/soap+xml;charset=UTF-8";
  Headers headers;  // extra, e.g. Authorization (never logged)
};

struct HttpResponse {
  int status = 0;
  Headers headers;
  std::string body;
  // All values of a header, case-insensitive name (WWW-Authenticate repeats).
  std::vector<std::string> header_values(std::string_view name) const;
  std::optional<std::string> header(std::string_view name) const;
};

// Process-wide or per-target counters exported by the daemon.
// bytes_* count HTTP bodies (headers excluded); reconnects = connections opened by a
// Connection after its first one; errors_by_kind counts failed Session::enumerate calls.
struct TransportCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> connections_opened{0};
  std::atomic<std::uint64_t> tls_handshakes{0};
  std::atomic<std::uint64_t> reconnects{0};
  std::array<std::atomic<std::uint64_t>, kErrorKindCount> errors_by_kind{};  // by ErrorKind
  void count_error(ErrorKind kind) { errors_by_kind[static_cast<int>(kind)]++; }
};

// Called once with the result of Connection::start.
using ResponseCallback = std::function<void(Result<HttpResponse>)>;

// One keep-alive connection to one endpoint. Not thread-safe: one request at a time
// (NTLM/Kerberos sealing state and HTTP.sys auth are per connection anyway).
class Connection {
 public:
  virtual ~Connection() = default;
  // One POST to the endpoint path. Reconnects transparently if the connection is gone
  // (connection_id() then changes, so auth knows to handshake again).
  // The deadline covers DNS, connect, TLS handshake, sending and receiving.
  // Blocks the calling thread: start() and a wait for its callback.
  virtual Result<HttpResponse> round_trip(const HttpRequest& request, Deadline deadline) = 0;
  // The same POST without a thread waiting for it: returns at once, and on_done gets the
  // result, for the libcurl transport on its I/O thread (docs/transport.md), so on_done
  // must only hand the result over (no parsing, no GSS). `request` must stay alive and the
  // Connection untouched until then. The default runs round_trip on the calling thread.
  virtual void start(const HttpRequest& request, Deadline deadline, ResponseCallback on_done) {
    on_done(round_trip(request, deadline));
  }
  // Changes whenever a new TCP connection is opened.
  virtual std::uint64_t connection_id() const = 0;
  // RFC 5929 tls-server-end-point hash of the server certificate (HTTPS only), for
  // Kerberos/NTLM channel binding. Valid after the first round trip on a connection.
  // Returns the raw application_data bytes: "tls-server-end-point:" followed by the
  // binary hash (SHA-256 for MD5/SHA-1 signed certificates, else the signature digest).
  virtual std::optional<std::string> tls_server_end_point() const = 0;
  virtual const EndpointOptions& endpoint() const = 0;
  // Drops the TCP connection (e.g. after an auth failure).
  virtual void close() = 0;
  // True while a connection from an earlier round trip is open and reusable. Lets a
  // caller skip best-effort requests (WS-Man Release) that would otherwise reconnect.
  virtual bool is_connected() const = 0;
  // false: EndpointOptions::cancel is ignored until set back to true, so a short Release
  // can still go out on a connection that is idle at shutdown.
  virtual void set_cancellable(bool cancellable) { (void)cancellable; }
};

// Whether `host` is reached directly under a NO_PROXY-style list: "*", or an entry equal to
// the host or a parent domain of it (".example.com" and "example.com" both match
// "a.example.com"), or, for an IP address host, an equal address or a CIDR range
// ("10.0.0.0/8", "fd00::/8"). Case-insensitive; entries separated by commas or spaces.
bool proxy_bypassed(std::string_view host, std::string_view no_proxy);

// True on the transport's I/O thread. Blocking calls (round_trip, Auth::send) must not run
// there; chains resumed there (RequestAwaiter, Resume::kInlineIfSmall) leave it with
// leave_io_thread() before any other work.
bool on_io_thread() noexcept;

// Runs fn on the transport's I/O thread (the one that drives every libcurl transfer) and
// returns at once. For tests: a slow fn holds every transfer back, as a busy loop would.
void run_on_io_thread(std::function<void()> fn);

// SSL_CTXs alive in the native transport: one per distinct TLS configuration (trust store,
// verification on or off), shared by its connections. For tests and diagnostics.
std::size_t native_tls_contexts();

// Direct connections (no proxy, or one the host bypasses) use the native transport
// (non-blocking socket + OpenSSL on the I/O thread); proxied ones use libcurl. The
// environment variable WINRM_EXPORTER_TRANSPORT=curl puts every connection on libcurl (A/B
// benchmarks), read once per process.
std::unique_ptr<Connection> make_http_connection(EndpointOptions options,
                                                 std::shared_ptr<TransportCounters> counters);

}  // namespace winrm
