// The Negotiate Auth end to end against the simulator's acceptor, in process: real MIT
// KDC, real GSS contexts on both sides; only HTTP is replaced by LoopbackConnection.
#include "kdc_fixture.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_auth_inprocess {

// Designated initializers for the option structs, defaults for the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using winrm::AuthErrorClass;
using winrm::Scheme;

namespace {

krbtest::Kdc& kdc() {
  static krbtest::Kdc instance(300);
  return instance;
}

std::shared_ptr<winrm::CredentialManager> credentials() {
  static auto manager = std::make_shared<winrm::CredentialManager>(
      winrm::CredentialOptions{.profile = "inprocess",
                               .principal = "exporter",
                               .client_keytab = kdc().path("client.keytab")});
  return manager;
}

sim::NegotiateAcceptor acceptor(sim::CbtMode cbt, std::optional<std::string> end_point) {
  return sim::NegotiateAcceptor(
      sim::NegotiateSettings{.keytab = kdc().path("http.keytab"), .cbt = cbt}, end_point);
}

std::shared_ptr<winrm::Auth> negotiate(std::shared_ptr<winrm::NegotiateStats> stats,
                                       winrm::NegotiateOptions options = {}) {
  options.credentials = credentials();
  return winrm::make_negotiate_auth(options, stats);
}

const std::string kSoap =
    "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>WQL</s:Body>"
    "</s:Envelope>";

}  // namespace

TEST_CASE("HTTPS: token with the first SOAP body, mutual auth, context reused") {
  auto server = acceptor(sim::CbtMode::kRelaxed, krbtest::fake_end_point('a'));
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("localhost", Scheme::kHttps),
                                   krbtest::fake_end_point('a'));
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = negotiate(stats);
  CHECK(auth->name() == "kerberos");
  for (int i = 0; i < 3; ++i) {
    auto response = auth->send(conn, kSoap, krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->status == 200);
    CHECK(response->body == "<reply>" + kSoap + "</reply>");
  }
  CHECK(stats->handshakes == 1);
  CHECK(server.counters().handshakes == 1);
  CHECK(stats->encrypted_messages == 0);
  // 1 probe for the certificate (channel binding) + 3 requests.
  CHECK(conn.requests == 4);
}

TEST_CASE("HTTP: empty-body handshake, then every body encrypted both ways") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = negotiate(stats);
  std::string big = kSoap + std::string(200000, 'x');
  for (const auto& body : {kSoap, big, kSoap}) {
    auto response = auth->send(conn, body, krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->status == 200);
    CHECK(response->body == "<reply>" + body + "</reply>");
    CHECK(response->header("Content-Type") == "application/soap+xml;charset=UTF-8");
    CHECK(conn.last_plaintext == body);  // what the server decrypted
  }
  CHECK(conn.plaintext_bodies == 0);
  CHECK(conn.encrypted_bodies == 3);
  CHECK(server.counters().encrypted_requests == 3);
  CHECK(server.counters().plaintext_rejected == 0);
  CHECK(stats->handshakes == 1);
  CHECK(stats->encrypted_messages == 3);
}

TEST_CASE("HTTP: plaintext SOAP is refused by the acceptor with 500, like Windows") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  auto auth = negotiate(nullptr, {.encryption = winrm::EncryptionPolicy::kNever});
  auto response = auth->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(response->status == 500);
  CHECK(response->body.empty());
  CHECK(server.counters().plaintext_rejected == 1);
}

TEST_CASE("a reconnect re-authenticates; a 401 on a live connection re-authenticates once") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = negotiate(stats);
  REQUIRE(auth->send(conn, kSoap, krbtest::soon()).has_value());
  conn.close();  // the next round trip opens a new connection (new id)
  auto response = auth->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(stats->handshakes == 2);
  CHECK(stats->reauth_on_401 == 0);
  conn.server_forgets();  // same connection, server lost the context: 401
  response = auth->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(response->body == "<reply>" + kSoap + "</reply>");
  CHECK(stats->handshakes == 3);
  CHECK(stats->reauth_on_401 == 1);
  CHECK(conn.plaintext_bodies == 0);
}

TEST_CASE("a 200 without the mutual-auth token fails as server_rejected") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  conn.strip_mutual_token = true;
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto auth = negotiate(stats);
  auto response = auth->send(conn, kSoap, krbtest::soon());
  REQUIRE_FALSE(response.has_value());
  CHECK(winrm::auth_error_class(response.error()) == AuthErrorClass::kServerRejected);
  CHECK(stats->handshake_failures == 1);
  CHECK(conn.encrypted_bodies == 0);
}

TEST_CASE("channel binding: strict accepts bound tokens only") {
  auto server = acceptor(sim::CbtMode::kStrict, krbtest::fake_end_point('s'));
  SUBCASE("matching bindings") {
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("localhost", Scheme::kHttps),
                                     krbtest::fake_end_point('s'));
    auto response = negotiate(nullptr)->send(conn, kSoap, krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->status == 200);
  }
  SUBCASE("no bindings") {
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("localhost", Scheme::kHttps),
                                     krbtest::fake_end_point('s'));
    auto response = negotiate(nullptr, {.channel_binding = winrm::ChannelBindingPolicy::kNever})
                        ->send(conn, kSoap, krbtest::soon());
    REQUIRE_FALSE(response.has_value());
    CHECK(winrm::auth_error_class(response.error()) == AuthErrorClass::kServerRejected);
    CHECK(conn.last_reject_reason.find("channel binding") != std::string::npos);
  }
  SUBCASE("bindings of another certificate (a TLS interceptor)") {
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("localhost", Scheme::kHttps),
                                     krbtest::fake_end_point('m'));
    auto response = negotiate(nullptr)->send(conn, kSoap, krbtest::soon());
    REQUIRE_FALSE(response.has_value());
    CHECK(winrm::auth_error_class(response.error()) == AuthErrorClass::kServerRejected);
  }
  CHECK(server.counters().handshakes <= 1);
}

TEST_CASE("relaxed CBT accepts a client without bindings") {
  auto server = acceptor(sim::CbtMode::kRelaxed, krbtest::fake_end_point('r'));
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("localhost", Scheme::kHttps),
                                   krbtest::fake_end_point('r'));
  auto response = negotiate(nullptr, {.channel_binding = winrm::ChannelBindingPolicy::kNever})
                      ->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(response->status == 200);
}

TEST_CASE("SPN choice: WSMAN/win02 works, an SPN the KDC lacks is principal_unknown") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  {
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("win02.sim.test", Scheme::kHttp));
    auto response =
        negotiate(nullptr, {.spn_service = "WSMAN"})->send(conn, kSoap, krbtest::soon());
    REQUIRE_OK(response);
    CHECK(response->body == "<reply>" + kSoap + "</reply>");
  }
  {
    // The target is reached by IP, the SPN host given explicitly (never reverse DNS).
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("127.0.0.1", Scheme::kHttp));
    auto response =
        negotiate(nullptr, {.spn_host = "win01.sim.test"})->send(conn, kSoap, krbtest::soon());
    REQUIRE_OK(response);
  }
  {
    krbtest::LoopbackConnection conn(server, krbtest::endpoint("win03.sim.test", Scheme::kHttp));
    auto response = negotiate(nullptr)->send(conn, kSoap, krbtest::soon());
    REQUIRE_FALSE(response.has_value());
    INFO(response.error().message);
    CHECK(winrm::auth_error_class(response.error()) == AuthErrorClass::kPrincipalUnknown);
    CHECK(conn.requests == 0);  // nothing sent without a service ticket
  }
}

TEST_CASE("wrap/unwrap round trip through the framing on an established context pair") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection conn(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  auto auth = negotiate(nullptr);
  REQUIRE(auth->send(conn, kSoap, krbtest::soon()).has_value());
  // The server's encrypted answer: the acceptor framed it, the client unwrapped it, and
  // the wire form was multipart with a 60-byte AES header (checked via the codec).
  auto [type, body] = server.encode_response("127.0.0.1:40001", "<x/>", true);
  CHECK(winrm::gss::is_encrypted_content_type(type));
  auto parts = winrm::gss::parse_encrypted(body);
  REQUIRE(parts.has_value());
  CHECK(parts->protocol == winrm::gss::kSpnegoEncrypted);
  CHECK(parts->length == 4);
  CHECK(parts->message.header.size() == 60);
  CHECK(parts->message.data.size() == 4);
  CHECK(body.find("<x/>") == std::string::npos);
}

namespace {

// The loopback server with a tampering hop in front: after authentication it can swap the
// encrypted answer for a plaintext one (what an attacker on an HTTP path could inject), or
// rewrite the OriginalContent type in the multipart header (not covered by the GSS wrap).
class TamperingConnection : public winrm::Connection {
 public:
  explicit TamperingConnection(krbtest::LoopbackConnection& inner) : inner_(inner) {}
  winrm::Result<winrm::HttpResponse> round_trip(const winrm::HttpRequest& request,
                                                winrm::Deadline deadline) override {
    auto response = inner_.round_trip(request, deadline);
    if (!response || request.body.empty()) return response;  // the handshake legs
    if (!plaintext_body.empty()) {
      response->status = plaintext_status;
      response->body = plaintext_body;
      response->headers = {{"Content-Type", "application/soap+xml;charset=UTF-8"}};
    }
    if (!original_type.empty()) {
      const std::string from = "type=application/soap+xml;charset=UTF-8;";
      auto at = response->body.find(from);
      REQUIRE(at != std::string::npos);
      response->body.replace(at, from.size(), "type=" + original_type + ";");
    }
    return response;
  }
  std::uint64_t connection_id() const override { return inner_.connection_id(); }
  std::optional<std::string> tls_server_end_point() const override {
    return inner_.tls_server_end_point();
  }
  const winrm::EndpointOptions& endpoint() const override { return inner_.endpoint(); }
  void close() override { inner_.close(); }
  bool is_connected() const override { return inner_.is_connected(); }

  int plaintext_status = 200;
  std::string plaintext_body;
  std::string original_type;

 private:
  krbtest::LoopbackConnection& inner_;
};

const std::string kPlainFault =
    R"(<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault>)"
    R"(<s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="en-US">)"
    R"(injected</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>)";

}  // namespace

TEST_CASE("HTTP encrypted session: a plaintext answer is rejected, never acted on") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection loopback(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  TamperingConnection conn(loopback);
  auto auth = negotiate(nullptr);
  REQUIRE_OK(auth->send(conn, kSoap, krbtest::soon()));
  const auto connection_before = loopback.connection_id();
  for (int status : {500, 200}) {
    CAPTURE(status);
    conn.plaintext_status = status;
    conn.plaintext_body = status == 500 ? kPlainFault : "<reply>" + kSoap + "</reply>";
    auto response = auth->send(conn, kSoap, krbtest::soon());
    REQUIRE_FALSE(response.has_value());
    CHECK(response.error().kind == winrm::ErrorKind::kAuth);
    CHECK(response.error().message.find("plaintext response on an encrypted session") !=
          std::string::npos);
    CHECK(response.error().http_status == status);
    CHECK_FALSE(loopback.is_connected());  // the connection is not trusted further
  }
  // Untampered again: a fresh connection and handshake, encrypted both ways.
  conn.plaintext_body.clear();
  auto response = auth->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(response->body == "<reply>" + kSoap + "</reply>");
  CHECK(loopback.connection_id() != connection_before);
  CHECK(loopback.plaintext_bodies == 0);
}

TEST_CASE("HTTP encrypted session: the inner OriginalContent type becomes the Content-Type") {
  auto server = acceptor(sim::CbtMode::kNone, std::nullopt);
  krbtest::LoopbackConnection loopback(server, krbtest::endpoint("win01.sim.test", Scheme::kHttp));
  TamperingConnection conn(loopback);
  conn.original_type = "application/soap+xml;charset=UTF-16";
  auto response = negotiate(nullptr)->send(conn, kSoap, krbtest::soon());
  REQUIRE_OK(response);
  CHECK(response->header("Content-Type") == "application/soap+xml;charset=UTF-16");
  CHECK(response->body == "<reply>" + kSoap + "</reply>");
}

}  // namespace test_auth_inprocess
