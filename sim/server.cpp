#include "server.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <tinyxml2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "common/base64.h"
#include "common/strings.h"
#include "render.h"
#include "wql.h"

namespace sim {
namespace {

constexpr const char* kSoapContentType = "application/soap+xml;charset=UTF-8";
constexpr std::string_view kActionEnumerate =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
constexpr std::string_view kActionPull = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
constexpr std::string_view kActionRelease =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release";
constexpr std::size_t kDefaultMaxEnvelope = 512000;

std::string lower(std::string_view s) { return common::to_lower(s); }
std::string trim(std::string_view s) { return std::string(common::trim(s)); }

std::string_view local_name(const char* name) {
  std::string_view n(name);
  auto colon = n.find(':');
  return colon == std::string_view::npos ? n : n.substr(colon + 1);
}

const tinyxml2::XMLElement* child(const tinyxml2::XMLElement* parent, std::string_view local) {
  if (parent == nullptr) return nullptr;
  for (auto* e = parent->FirstChildElement(); e != nullptr; e = e->NextSiblingElement()) {
    if (local_name(e->Name()) == local) return e;
  }
  return nullptr;
}

std::string text_of(const tinyxml2::XMLElement* e) {
  if (e == nullptr || e->GetText() == nullptr) return {};
  return trim(e->GetText());
}

bool is_ip_literal(const char* name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

// Host header -> lower-cased name without port ("[::1]:5986" -> "::1").
std::string host_from_header(const std::string& header) {
  std::string h = header;
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    h = close == std::string::npos ? h.substr(1) : h.substr(1, close - 1);
  } else {
    auto colon = h.find(':');
    if (colon != std::string::npos && h.find(':', colon + 1) == std::string::npos)
      h = h.substr(0, colon);
  }
  h = lower(trim(h));
  return h.empty() ? "localhost" : h;
}

// xs:duration as used in w:OperationTimeout ("PT60.000S", "PT1M", "P0DT0H1M0S").
std::optional<std::chrono::milliseconds> parse_xs_duration(std::string_view s) {
  if (s.empty() || s.front() != 'P') return std::nullopt;
  double total = 0;
  bool in_time = false;
  std::size_t i = 1;
  bool any = false;
  while (i < s.size()) {
    if (s[i] == 'T') {
      in_time = true;
      ++i;
      continue;
    }
    std::size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i || i >= s.size()) return std::nullopt;
    double v = std::stod(std::string(s.substr(start, i - start)));
    char unit = s[i++];
    any = true;
    if (!in_time && unit == 'D')
      total += v * 86400;
    else if (!in_time && unit == 'Y')
      total += v * 365 * 86400;
    else if (!in_time && unit == 'M')
      total += v * 30 * 86400;
    else if (in_time && unit == 'H')
      total += v * 3600;
    else if (in_time && unit == 'M')
      total += v * 60;
    else if (in_time && unit == 'S')
      total += v;
    else
      return std::nullopt;
  }
  if (!any) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(total * 1000));
}

// Basic credentials, decoded as leniently as the simulator always has (padding optional,
// anything from the first '=' on ignored) on common's strict decoder: pad what precedes the
// '='. A single leftover character (6 bits, no byte) comes from no encoder: refused.
std::optional<std::string> basic_credentials(std::string_view text) {
  std::string padded(text.substr(0, text.find('=')));
  if (padded.size() % 4 == 1) return std::nullopt;
  padded.append((4 - padded.size() % 4) % 4, '=');
  return common::base64_decode(padded);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read replay file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string malformed_body() {
  return "<s:Envelope xml:lang=\"en-US\" xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" "
         "xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" "
         "xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\" "
         "xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"><s:Header><a:Action>"
         "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse</a:Action></"
         "s:Header><s:Body>"
         "<n:EnumerateResponse><n:EnumerationContext></"
         "n:EnumerationContext><w:Items><p:Win32_Service "
         "xmlns:p=\"broken\"><p:Name>Spooler</w:Items></n:EnumerateResp";
}

}  // namespace

struct SimServer::SoapRequest {
  std::string action;
  std::string message_id;
  std::string resource_uri;
  std::string lang = "en-US";
  std::string timeout_text;
  std::optional<std::chrono::milliseconds> operation_timeout;
  bool bad_timeout = false;
  std::size_t max_envelope = kDefaultMaxEnvelope;
  bool optimize = false;
  std::size_t max_elements = 32000;
  bool has_filter = false;
  std::string filter;
  std::string dialect;
  std::string context;
};

SimServer::SimServer(SimConfig config) : config_(std::move(config)), inventory_(config_.hosts) {
  for (const auto& h : config_.hosts) {
    auto vh = std::make_unique<VirtualHost>();
    vh->config = h;
    vh->expire_once_pending = h.expire_context_once;
    hosts_[h.name] = std::move(vh);
  }
  for (const auto& f : config_.replay) replay_bodies_.push_back(read_file(f));
  next_gc_ = std::chrono::steady_clock::now();
  if (config_.latency.enabled) latency_ = std::make_unique<LatencyModel>(config_.latency);
}

SimServer::~SimServer() = default;

VirtualHost& SimServer::virtual_host(const std::string& host) {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? default_host_ : *it->second;
}

NegotiateAcceptor* SimServer::negotiate_for(const net::Request& req) const {
  return req.tls ? negotiate_tls_.get() : negotiate_plain_.get();
}

// The Authorization value of WS-Management certificate authentication.
constexpr std::string_view kCertificateAuthProfile =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

// The certificate's UPN (subjectAltName otherName szOID_NT_PRINCIPAL_NAME), Windows'
// preferred mapping key; empty when it has none.
static std::string certificate_upn(X509* cert) {
  std::string upn;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return upn;
  ASN1_OBJECT* upn_oid = OBJ_txt2obj("1.3.6.1.4.1.311.20.2.3", 1);
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && upn.empty(); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_OTHERNAME || OBJ_cmp(name->d.otherName->type_id, upn_oid) != 0) continue;
    const ASN1_TYPE* value = name->d.otherName->value;
    if (value->type == V_ASN1_UTF8STRING) {
      const ASN1_UTF8STRING* text = value->value.utf8string;
      upn.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                 ASN1_STRING_length(text));
    }
  }
  ASN1_OBJECT_free(upn_oid);
  GENERAL_NAMES_free(names);
  return upn;
}

static std::string certificate_cn(X509* cert) {
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) < 0)
    return {};
  return cn;
}

std::optional<std::string> SimServer::mapped_user(X509* cert) const {
  const std::string upn = lower(certificate_upn(cert));
  const std::string cn = lower(certificate_cn(cert));
  for (const auto& mapping : config_.client_certificates) {
    const std::string subject = lower(mapping.subject);
    if ((!upn.empty() && subject == upn) || (upn.empty() && !cn.empty() && subject == cn))
      return mapping.user;
  }
  return std::nullopt;
}

// The TCP connection a request came on: security contexts are bound to it.
static std::string connection_key(std::uint64_t connection_id) {
  return std::to_string(connection_id);
}
static std::string connection_key(const net::Request& req) {
  return connection_key(req.connection_id);
}

std::vector<std::pair<std::string, int>> SimServer::bind() {
  if (config_.negotiate.enabled) {
    NegotiateSettings settings;
    settings.keytab = config_.negotiate.keytab;
    settings.require_encryption_on_http = config_.negotiate.require_encryption_on_http;
    settings.cbt = parse_cbt_mode(config_.negotiate.cbt).value_or(CbtMode::kNone);
    if (config_.negotiate.ntlm) {
      // The Basic accounts double as NTLM local accounts (runs before any thread).
      settings.ntlm = true;
      settings.ntlm_domain = config_.negotiate.ntlm_domain;
      for (const auto& user : config_.users)
        settings.ntlm_users.emplace_back(user.username, user.password);
    }
    if (config_.https.enabled) {
      negotiate_tls_ =
          std::make_unique<NegotiateAcceptor>(settings, tls_end_point_from_pem(config_.https.cert));
    }
    if (config_.http.enabled)
      negotiate_plain_ = std::make_unique<NegotiateAcceptor>(settings, std::nullopt);
  }
  net::ServerOptions options;
  options.loop_threads = config_.loop_threads;
  options.thread_name = "sim";
  // Handlers render XML and run GSS calls: real CPU work, off the loop.
  options.worker_threads = config_.threads;
  options.limits.max_connections = config_.max_connections;
  options.limits.idle_timeout = config_.keep_alive_timeout;
  options.limits.request_timeout = std::chrono::seconds(30);
  // Negotiate tokens (Kerberos tickets with a PAC) make large Authorization headers.
  options.limits.max_head_bytes = 64 * 1024;
  options.limits.max_body_bytes = 4 * 1024 * 1024;
  options.limits.max_queued_requests = 1 << 20;  // at most one per connection anyway
  options.stop_grace = std::chrono::milliseconds(500);
  server_ = std::make_unique<net::Server>(options, [this](net::Request req, net::Responder res) {
    handle(std::move(req), std::move(res));
  });
  // Connection-bound Negotiate contexts end with their connection.
  server_->on_close([this](std::uint64_t id) {
    if (negotiate_tls_) negotiate_tls_->drop(connection_key(id));
    if (negotiate_plain_) negotiate_plain_->drop(connection_key(id));
  });
  auto listen_on = [&](const ListenerConfig& l, const char* scheme, net::TlsContextProvider tls) {
    auto port = server_->listen(l.address, l.port, std::move(tls));
    if (!port) throw std::runtime_error(std::string("cannot bind ") + scheme + ": " + port.error());
    bound_.emplace_back(scheme, *port);
    spdlog::info("winrm-sim {} listening on {}:{}", scheme, l.address, *port);
  };
  if (config_.https.enabled) {
    tls_ctx_ = {SSL_CTX_new(TLS_server_method()), SSL_CTX_free};
    if (!tls_ctx_ ||
        SSL_CTX_use_certificate_chain_file(tls_ctx_.get(), config_.https.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_ctx_.get(), config_.https.key.c_str(), SSL_FILETYPE_PEM) !=
            1 ||
        SSL_CTX_check_private_key(tls_ctx_.get()) != 1)
      throw std::runtime_error("cannot load TLS certificate/key " + config_.https.cert);
    SSL_CTX_set_min_proto_version(tls_ctx_.get(), TLS1_2_VERSION);
    if (!config_.https.client_ca.empty()) {
      // Ask every client for a certificate but let the handshake go on without a valid
      // one: like HTTP.sys, the HTTP layer answers 403 (net::Request::peer_certificate is
      // set only for a certificate that verified against client_ca).
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config_.https.client_ca.c_str());
      if (names == nullptr || SSL_CTX_load_verify_locations(
                                  tls_ctx_.get(), config_.https.client_ca.c_str(), nullptr) != 1) {
        if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
        throw std::runtime_error("cannot load client CA " + config_.https.client_ca);
      }
      SSL_CTX_set_client_CA_list(tls_ctx_.get(), names);
      SSL_CTX_set_verify(tls_ctx_.get(), SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    }
    listen_on(config_.https, "https", [ctx = tls_ctx_.get()] { return ctx; });
  }
  if (config_.http.enabled) listen_on(config_.http, "http", {});
  const auto& limits = server_->limits();
  if (limits.max_connections < static_cast<std::size_t>(config_.max_connections))
    spdlog::warn("winrm-sim: max_connections lowered to {} by the open-file limit",
                 limits.max_connections);
  return bound_;
}

void SimServer::run() {
  server_->start();
  server_->wait();
}

void SimServer::stop() {
  stopping_ = true;
  if (server_) server_->stop();
}

net::ServerStats SimServer::stats() const {
  return server_ ? server_->stats() : net::ServerStats{};
}

AuthResult SimServer::authenticate(const net::Request& req, net::Response& res,
                                   const VirtualHost& vh) {
  const auto& schemes = vh.config.auth;
  const bool basic_enabled = std::find(schemes.begin(), schemes.end(), "basic") != schemes.end();
  auto reject = [&] {
    res.status = 401;
    res.add_header("WWW-Authenticate", "Negotiate");
    res.add_header("WWW-Authenticate", "Kerberos");
    if (basic_enabled) res.add_header("WWW-Authenticate", "Basic realm=\"WSMAN\"");
    res.body.clear();
    return AuthResult::kRejected;
  };
  if (vh.config.always_401) return reject();
  const std::string auth = req.header_value("Authorization");
  if (auth == kCertificateAuthProfile) {
    const bool enabled = std::find(schemes.begin(), schemes.end(), "certificate") != schemes.end();
    if (!enabled || config_.https.client_ca.empty() || !req.tls) return reject();
    if (!req.peer_certificate) {  // none sent, or not issued by client_ca (HTTP.sys 403.7/.16)
      reject();
      res.status = 403;
      return AuthResult::kRejected;
    }
    if (auto user = mapped_user(req.peer_certificate.get())) {
      spdlog::debug("client certificate mapped to {}", *user);
      return AuthResult::kOk;
    }
    spdlog::info("client certificate not mapped to a user");
    return reject();
  }
  if (basic_enabled && auth.size() > 6 && lower(auth.substr(0, 6)) == "basic ") {
    auto decoded = basic_credentials(trim(auth.substr(6)));
    if (!decoded) return reject();
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return reject();
    std::string user = decoded->substr(0, colon);
    const std::string pass = decoded->substr(colon + 1);
    // Local accounts: accept "HOST\user" and ".\user" forms too.
    if (auto bs = user.find('\\'); bs != std::string::npos) user = user.substr(bs + 1);
    for (const auto& u : config_.users) {
      if (lower(u.username) == lower(user) && u.password == pass) return AuthResult::kOk;
    }
    return reject();
  }
  const bool negotiate_enabled =
      std::find(schemes.begin(), schemes.end(), "negotiate") != schemes.end() ||
      std::find(schemes.begin(), schemes.end(), "kerberos") != schemes.end();
  if (auto* acceptor = negotiate_for(req); acceptor != nullptr && negotiate_enabled) {
    const std::string key = connection_key(req);
    const std::string scheme = lower(auth.substr(0, auth.find(' ')));
    if (scheme == "negotiate" || scheme == "kerberos") {
      auto result = acceptor->accept(key, auth);
      using Kind = NegotiateAcceptor::AuthResult::Kind;
      if (result.kind == Kind::kAccepted) {
        // The mutual-auth token rides on the (200) answer.
        if (!result.www_authenticate.empty())
          res.add_header("WWW-Authenticate", result.www_authenticate);
        return AuthResult::kOk;
      }
      if (result.kind == Kind::kContinue) {
        res.status = 401;
        res.add_header("WWW-Authenticate", result.www_authenticate);
        return AuthResult::kRejected;
      }
      spdlog::info("negotiate rejected: {}", result.reason);
      return reject();
    }
    if (auth.empty() && acceptor->authenticated(key)) return AuthResult::kOk;
  }
  return reject();
}

bool SimServer::decode_request_body(const net::Request& req, std::string& body) {
  if (auto* acceptor = negotiate_for(req)) {
    // Decrypts multipart/encrypted; refuses plaintext SOAP on HTTP (AllowUnencrypted=false).
    auto decoded =
        acceptor->decode_request(connection_key(req), req.header_value("Content-Type"), req.body);
    if (decoded.status != 0) {
      spdlog::info("request body refused: {}", decoded.reason);
      return false;
    }
    body = std::move(decoded.soap);
    return true;
  }
  if (lower(req.header_value("Content-Type")).starts_with("multipart/encrypted")) return false;
  body = req.body;
  return true;
}

void SimServer::send_response(const net::Request& req, net::Responder& responder, Reply reply,
                              const VirtualHost& vh, Clock::time_point when, net::Response res) {
  res.status = reply.status;
  std::string content_type = kSoapContentType;
  if (auto* acceptor = negotiate_for(req);
      acceptor != nullptr &&
      lower(req.header_value("Content-Type")).starts_with("multipart/encrypted")) {
    // Encrypted requests get encrypted answers (the fault modes below then apply to them).
    auto [type, body] = acceptor->encode_response(connection_key(req), std::move(reply.body), true);
    content_type = std::move(type);
    reply.body = std::move(body);
  }
  res.add_header("Content-Type", content_type);
  const auto& hc = vh.config;
  if (hc.close_mid_body && !reply.body.empty()) {
    // Headers and half the body, then the connection drops.
    res.close_after_body_bytes = reply.body.size() / 2;
  } else if (hc.trickle_bytes_per_second > 0 && !reply.body.empty()) {
    const std::size_t chunk = std::max<std::size_t>(1, hc.trickle_bytes_per_second / 10);
    res.pace_bytes = chunk;
    res.pace_interval = std::chrono::milliseconds(
        std::max<long long>(1, static_cast<long long>(chunk * 1000 / hc.trickle_bytes_per_second)));
  }
  res.body = std::move(reply.body);
  responder.send_at(when, std::move(res));
}

void SimServer::handle(net::Request req, net::Responder responder) {
  const auto arrival = Clock::now();
  net::Response res;
  auto answer = [&] { responder.send(std::move(res)); };
  const std::string host = host_from_header(req.header_value("Host"));
  // Like HTTP.sys with SNI bindings: a TLS client must name in SNI the host it asks
  // for in Host. No SNI, or an IP literal (RFC 6066 forbids it, some clients send it
  // anyway), selects nothing, so only a DNS name is checked.
  if (req.tls) {
    const std::string& sni = req.sni;
    if (!sni.empty() && !is_ip_literal(sni.c_str()) && host_from_header(sni) != host) {
      spdlog::debug("SNI {} does not match Host {}: 421", sni, host);
      res.status = 421;
      return answer();
    }
  }
  VirtualHost& vh = virtual_host(host);
  if (authenticate(req, res, vh) != AuthResult::kOk) {
    spdlog::debug("{}: 401", host);
    return answer();
  }
  std::string body;
  if (!decode_request_body(req, body)) {
    res.status = 500;
    return answer();
  }
  const auto& hc = vh.config;
  if (body.empty()) {  // e.g. the empty POST clients use to run an auth handshake
    res.status = 200;
    return answer();
  }
  if (hc.malformed_xml) {
    send_response(req, responder, {200, malformed_body()}, vh, arrival, std::move(res));
    return;
  }
  if (hc.oversized_bytes > 0) {
    // Generated as it is sent: a huge body is never held in memory.
    const std::size_t size = hc.oversized_bytes;
    static const std::string kHead =
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><!--";
    static const std::string kTail = "--></s:Body></s:Envelope>";
    res.status = 200;
    res.add_header("Content-Type", kSoapContentType);
    res.generated_length = size;
    res.body_generator = [size](std::size_t offset, char* out, std::size_t n) {
      for (std::size_t i = offset; i < offset + n; ++i) {
        if (i < kHead.size())
          *out++ = kHead[i];
        else if (i >= size - std::min(size, kTail.size()))
          *out++ = kTail[i - (size - kTail.size())];
        else
          *out++ = ' ';
      }
    };
    return answer();
  }

  tinyxml2::XMLDocument doc;
  SoapRequest soap;
  if (doc.Parse(body.data(), body.size()) != tinyxml2::XML_SUCCESS ||
      doc.RootElement() == nullptr || local_name(doc.RootElement()->Name()) != "Envelope") {
    send_response(req, responder,
                  {500, render::fault(render::FaultKind::kSchemaValidation, "", host, "", "en-US")},
                  vh, arrival, std::move(res));
    return;
  }
  const auto* header = child(doc.RootElement(), "Header");
  const auto* soap_body = child(doc.RootElement(), "Body");
  soap.action = text_of(child(header, "Action"));
  soap.message_id = text_of(child(header, "MessageID"));
  soap.resource_uri = text_of(child(header, "ResourceURI"));
  if (const auto* loc = child(header, "Locale");
      loc != nullptr && loc->Attribute("xml:lang") != nullptr)
    soap.lang = loc->Attribute("xml:lang");
  if (auto mes = text_of(child(header, "MaxEnvelopeSize")); !mes.empty()) {
    try {
      soap.max_envelope = std::stoull(mes);
    } catch (const std::exception&) {
      soap.bad_timeout = false;
    }
  }
  if (const auto* ot = child(header, "OperationTimeout"); ot != nullptr) {
    soap.timeout_text = text_of(ot);
    soap.operation_timeout = parse_xs_duration(soap.timeout_text);
    if (!soap.operation_timeout) soap.bad_timeout = true;
  }
  if (const auto* en = child(soap_body, "Enumerate"); en != nullptr) {
    soap.optimize = child(en, "OptimizeEnumeration") != nullptr;
    if (auto me = text_of(child(en, "MaxElements")); !me.empty())
      soap.max_elements = std::strtoull(me.c_str(), nullptr, 10);
    if (const auto* f = child(en, "Filter"); f != nullptr) {
      soap.has_filter = true;
      soap.filter = text_of(f);
      soap.dialect =
          f->Attribute("Dialect") ? f->Attribute("Dialect") : std::string(render::kWqlDialect);
    }
  } else if (const auto* pl = child(soap_body, "Pull"); pl != nullptr) {
    soap.context = text_of(child(pl, "EnumerationContext"));
    if (auto me = text_of(child(pl, "MaxElements")); !me.empty())
      soap.max_elements = std::strtoull(me.c_str(), nullptr, 10);
  } else if (const auto* rl = child(soap_body, "Release"); rl != nullptr) {
    soap.context = text_of(child(rl, "EnumerationContext"));
  }
  if (soap.max_elements == 0) soap.max_elements = 1;

  if (soap.bad_timeout) {
    send_response(req, responder,
                  {500, render::fault(render::FaultKind::kInvalidHeader, soap.message_id, host,
                                      soap.timeout_text, soap.lang)},
                  vh, arrival, std::move(res));
    return;
  }
  auto delay = hc.delay;
  if (latency_) {
    const auto elapsed = std::chrono::duration_cast<Millis>(arrival - started_);
    delay += latency_->next(host, request_class(soap), elapsed);
  }
  if (delay.count() > 0) {
    const auto op_timeout = soap.operation_timeout.value_or(std::chrono::milliseconds(60000));
    if (delay >= op_timeout) {
      // Like Windows: the operation gives up after OperationTimeout.
      send_response(
          req, responder,
          {500, render::fault(render::FaultKind::kTimedOut, soap.message_id, host, "", soap.lang)},
          vh, arrival + op_timeout, std::move(res));
      return;
    }
  }
  Reply reply = dispatch(soap, host, vh);
  spdlog::debug("{}: {} -> {}", host, soap.action, reply.status);
  // The answer waits on a loop timer, not on this worker.
  send_response(req, responder, std::move(reply), vh, arrival + delay, std::move(res));
}

SimServer::Reply SimServer::dispatch(const SoapRequest& soap, const std::string& host,
                                     VirtualHost& vh) {
  if (!replay_bodies_.empty() && (soap.action == kActionEnumerate || soap.action == kActionPull))
    return replay(soap, host);
  if (soap.action == kActionEnumerate) return enumerate(soap, host, vh);
  if (soap.action == kActionPull) return pull(soap, host, vh);
  if (soap.action == kActionRelease) return release(soap, host);
  return {500, render::fault(render::FaultKind::kSchemaValidation, soap.message_id, host, "",
                             soap.lang)};
}

SimServer::Reply SimServer::replay(const SoapRequest& soap, const std::string& host) {
  std::size_t index;
  {
    std::lock_guard lock(replay_mutex_);
    auto& cursor = replay_cursor_[host];
    if (soap.action == kActionEnumerate) cursor = 0;
    index = std::min(cursor, replay_bodies_.size() - 1);
    cursor = index + 1;
  }
  const std::string& body = replay_bodies_[index];
  const bool is_fault =
      body.find(":Fault>") != std::string::npos || body.find("<Fault>") != std::string::npos;
  return {is_fault ? 500 : 200, body};
}

bool SimServer::take_page(Enumeration& e, std::size_t max_items, std::size_t budget,
                          std::string& items, std::size_t& count) {
  count = 0;
  while (e.next < e.items.size() && count < max_items) {
    const std::string& item = e.items[e.next];
    if (items.size() + item.size() > budget) break;
    items += item;
    ++e.next;
    ++count;
  }
  return count > 0 || e.next >= e.items.size();
}

void SimServer::expire_enumerations() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(enum_mutex_);
  if (now < next_gc_) return;
  next_gc_ = now + std::chrono::seconds(5);
  std::erase_if(enumerations_, [&](const auto& kv) { return kv.second->expires < now; });
}

std::string SimServer::request_class(const SoapRequest& soap) {
  if (soap.action == kActionEnumerate) {
    if (!soap.has_filter) {
      const auto slash = soap.resource_uri.rfind('/');
      return slash == std::string::npos ? std::string() : soap.resource_uri.substr(slash + 1);
    }
    auto query = wql::parse(soap.filter);
    return query ? query->class_name : std::string();
  }
  if (soap.action == kActionPull) {
    std::string key = soap.context;
    if (key.starts_with("uuid:")) key = key.substr(5);
    std::lock_guard lock(enum_mutex_);
    auto it = enumerations_.find(key);
    return it == enumerations_.end() ? std::string() : it->second->wmi_class;
  }
  return {};
}

SimServer::Reply SimServer::enumerate(const SoapRequest& soap, const std::string& host,
                                      VirtualHost& vh) {
  using render::FaultKind;
  const auto& hc = vh.config;
  auto fault = [&](FaultKind k, std::string_view detail = {}) {
    return Reply{500, render::fault(k, soap.message_id, host, detail, soap.lang)};
  };
  if (!hc.fault.empty()) return fault(*render::fault_from_name(hc.fault), soap.filter);
  expire_enumerations();

  // ResourceURI: .../wmi/<namespace>/* (WQL) or .../wmi/<namespace>/<Class> (plain enumeration).
  const std::string uri = soap.resource_uri;
  if (!uri.starts_with(render::kWmiResourcePrefix)) return fault(FaultKind::kInvalidResourceUri);
  const std::string path = uri.substr(render::kWmiResourcePrefix.size());
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return fault(FaultKind::kInvalidResourceUri);
  const std::string ns = lower(path.substr(0, slash));
  const std::string leaf = path.substr(slash + 1);
  if (!known_namespace(ns)) return fault(FaultKind::kInvalidResourceUri);

  std::string wql = soap.filter;
  if (!soap.has_filter) {
    if (leaf == "*" || leaf.empty())
      return fault(FaultKind::kInvalidQuery, "a filter is required for the * resource");
    wql = "SELECT * FROM " + leaf;
  } else if (lower(soap.dialect) != lower(render::kWqlDialect)) {
    return fault(FaultKind::kInvalidQuery, "unsupported filter dialect " + soap.dialect);
  }
  auto query = wql::parse(wql);
  if (!query) return fault(FaultKind::kInvalidQuery, query.error());
  const ClassDef* cls = find_class(ns, query->class_name);
  if (cls == nullptr) return fault(FaultKind::kInvalidClass, wql);

  std::vector<int> props;
  for (const auto& p : query->properties) {
    int i = cls->find(p);
    if (i < 0) return fault(FaultKind::kInvalidQuery, "unknown property " + p);
    props.push_back(i);
  }
  std::sort(props.begin(), props.end());
  if (query->where) {
    std::vector<std::string> used;
    wql::collect_properties(*query->where, used);
    for (const auto& p : used)
      if (cls->find(p) < 0) return fault(FaultKind::kInvalidQuery, "unknown property " + p);
  }

  auto e = std::make_shared<Enumeration>();
  e->host = host;
  e->wmi_class = cls->name;
  {
    auto instances = inventory_.instances(host, *cls, now_unix_seconds());
    for (const auto& inst : instances) {
      if (query->where) {
        const wql::Lookup lookup = [&](const std::string& name) -> const Value* {
          int i = cls->find(name);
          return i < 0 ? nullptr : &inst.values[static_cast<std::size_t>(i)];
        };
        if (!wql::evaluate(*query->where, lookup)) continue;
      }
      std::string item;
      item.reserve(query->select_all ? 4096 : 512);
      if (query->select_all) {
        render::append_instance(item, *cls, inst);
      } else {
        render::append_fragment(item, *cls, inst, props);
      }
      e->items.push_back(std::move(item));
    }
  }

  if (e->items.empty())
    return {200, render::enumerate_response(soap.message_id, "", "", false, true, soap.lang)};

  const std::string ctx = render::new_uuid();
  std::string items;
  std::size_t count = 0;
  if (soap.optimize) {
    const std::size_t overhead =
        render::enumerate_response(soap.message_id, ctx, "", true, false, soap.lang).size();
    const std::size_t budget = soap.max_envelope > overhead ? soap.max_envelope - overhead : 0;
    // Server 2008 R2/2012 put exactly one instance in the EnumerateResponse.
    if (!take_page(*e, std::min<std::size_t>(1, soap.max_elements), budget, items, count))
      return fault(FaultKind::kMaxEnvelope);
  }
  const bool done = e->next >= e->items.size();
  if (done)
    return {200, render::enumerate_response(soap.message_id, "", items, true, true, soap.lang)};
  e->expires = std::chrono::steady_clock::now() + config_.enumeration_timeout;
  if (vh.expire_once_pending.exchange(false)) e->expire_first_pull = true;
  {
    std::lock_guard lock(enum_mutex_);
    enumerations_[ctx] = e;
  }
  return {200,
          render::enumerate_response(soap.message_id, ctx, items, count > 0, false, soap.lang)};
}

SimServer::Reply SimServer::pull(const SoapRequest& soap, const std::string& host,
                                 VirtualHost& vh) {
  using render::FaultKind;
  auto fault = [&](FaultKind k) {
    return Reply{500, render::fault(k, soap.message_id, host, "", soap.lang)};
  };
  std::string key = soap.context;
  if (key.starts_with("uuid:")) key = key.substr(5);
  std::shared_ptr<Enumeration> e;
  {
    std::lock_guard lock(enum_mutex_);
    auto it = enumerations_.find(key);
    if (it == enumerations_.end() || it->second->host != host ||
        it->second->expires < std::chrono::steady_clock::now()) {
      if (it != enumerations_.end()) enumerations_.erase(it);
      return fault(FaultKind::kContextExpired);
    }
    e = it->second;
    if (e->expire_first_pull) {
      enumerations_.erase(it);
      return fault(FaultKind::kContextExpired);
    }
    if (e->pulls < vh.config.pull_timeouts) {
      // The enumeration stays valid: the client retries with the same context.
      ++e->pulls;
      return fault(FaultKind::kTimedOut);
    }
    enumerations_.erase(it);
  }
  const std::string next_ctx = render::new_uuid();
  const std::size_t overhead =
      render::pull_response(soap.message_id, next_ctx, "", true, soap.lang).size();
  const std::size_t budget = soap.max_envelope > overhead ? soap.max_envelope - overhead : 0;
  std::string items;
  std::size_t count = 0;
  const std::size_t max_items =
      std::min<std::size_t>(static_cast<std::size_t>(config_.page_size), soap.max_elements);
  if (!take_page(*e, max_items, budget, items, count)) return fault(FaultKind::kMaxEnvelope);
  if (e->next >= e->items.size())
    return {200, render::pull_response(soap.message_id, "", items, true, soap.lang)};
  e->expires = std::chrono::steady_clock::now() + config_.enumeration_timeout;
  {
    std::lock_guard lock(enum_mutex_);
    enumerations_[next_ctx] = e;
  }
  return {200, render::pull_response(soap.message_id, next_ctx, items, false, soap.lang)};
}

SimServer::Reply SimServer::release(const SoapRequest& soap, const std::string& host) {
  std::string key = soap.context;
  if (key.starts_with("uuid:")) key = key.substr(5);
  bool found = false;
  {
    std::lock_guard lock(enum_mutex_);
    auto it = enumerations_.find(key);
    if (it != enumerations_.end() && it->second->host == host) {
      enumerations_.erase(it);
      found = true;
    }
  }
  if (!found)
    return {500, render::fault(render::FaultKind::kContextExpired, soap.message_id, host, "",
                               soap.lang)};
  return {200, render::release_response(soap.message_id, soap.lang)};
}

}  // namespace sim
