// The listener's router and gates without sockets: basic auth on every path, the lifecycle
// flag, configured headers, rate limit, web-config reloads. (Sockets, TLS and curl:
// tests/e2e/test_web_security.cpp.)
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "net/server.h"
#include "testsupport/temp_dir.h"
#include "web.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_web {

using namespace exporter;
namespace fs = std::filesystem;

namespace {

constexpr const char* kHashUU = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
constexpr const char* kBobUU = "Basic Ym9iOlUqVQ==";     // bob:U*U
constexpr const char* kBobWrong = "Basic Ym9iOlUqVSo=";  // bob:U*U*

// web.yml in a temp dir of its own.
struct TempFile {
  testsupport::TempDir dir{"winrm_web"};
  fs::path path = dir / "web.yml";
  void write(const std::string& text) const { testsupport::write_file(path, text); }
};

struct Counters {
  int reloads = 0;
};

WebHandlers handlers(Counters& counters) {
  WebHandlers h;
  h.metrics = [] { return std::make_shared<const std::string>("up 1\n"); };
  h.probe = [](const std::string& target, std::string& page) -> std::expected<void, std::string> {
    if (target == "known") {
      page += "x 1\n";
      return {};
    }
    return std::unexpected(std::string("unknown target"));
  };
  h.sd = [] { return std::string("[]"); };
  h.ready = [] { return true; };
  h.reload = [&counters]() -> std::expected<void, std::string> {
    ++counters.reloads;
    return {};
  };
  h.version = "test";
  return h;
}

WebRequest get(const std::string& path, const std::string& authorization = "") {
  WebRequest request;
  request.method = "GET";
  request.path = path;
  request.authorization = authorization;
  return request;
}

WebRequest post(const std::string& path, const std::string& authorization = "") {
  WebRequest request = get(path, authorization);
  request.method = "POST";
  return request;
}

std::string header(const WebReply& reply, const std::string& name) {
  for (const auto& [key, value] : reply.headers) {
    if (key == name) return value;
  }
  return "";
}

}  // namespace

TEST_CASE("without a web config: open endpoints, /-/reload only with --web.enable-lifecycle") {
  Counters counters;
  WebServer off(handlers(counters), WebOptions{});
  REQUIRE(off.configure());
  CHECK_FALSE(off.tls_enabled());
  CHECK(off.handle(get("/metrics")).status == 200);
  CHECK(off.handle(get("/sd")).body == "[]");
  CHECK(off.handle(get("/probe")).status == 400);
  WebRequest probe = get("/probe");
  probe.target = "known";
  CHECK(off.handle(probe).status == 200);
  probe.target = "other";
  CHECK(off.handle(probe).status == 404);
  CHECK(off.handle(post("/-/reload")).status == 403);
  CHECK(off.handle(get("/-/reload")).status == 405);
  CHECK(off.handle(post("/metrics")).status == 405);
  CHECK(counters.reloads == 0);

  WebServer on(handlers(counters), WebOptions{8, true, ""});
  REQUIRE(on.configure());
  CHECK(on.handle(post("/-/reload")).status == 200);
  WebRequest put = post("/-/reload");
  put.method = "PUT";
  CHECK(on.handle(put).status == 200);
  CHECK(counters.reloads == 2);
  WebRequest with_body = post("/-/reload");
  with_body.has_body = true;
  CHECK(on.handle(with_body).status == 413);
}

TEST_CASE("the landing page is HTML with the version escaped") {
  Counters counters;
  WebHandlers h = handlers(counters);
  h.version = "1.0 <b>&\"x\"";
  WebServer web(std::move(h), WebOptions{});
  REQUIRE(web.configure());
  WebReply page = web.handle(get("/"));
  CHECK(page.status == 200);
  CHECK(page.content_type == "text/html; charset=utf-8");
  CHECK(page.body.find("<p>Version 1.0 &lt;b&gt;&amp;&quot;x&quot;</p>") != std::string::npos);
}

TEST_CASE("basic_auth_users guard every path, /sd and health included; headers on every reply") {
  TempFile file;
  file.write(std::string("basic_auth_users:\n  bob: ") + kHashUU +
             "\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n");
  Counters counters;
  WebServer web(handlers(counters), WebOptions{8, true, file.path.string()});
  REQUIRE(web.configure());
  for (std::string path : {"/metrics", "/probe", "/sd", "/-/healthy", "/-/ready", "/", "/nope"}) {
    WebReply denied = web.handle(get(path));
    CHECK_MESSAGE(denied.status == 401, path);
    CHECK(header(denied, "WWW-Authenticate").starts_with("Basic"));
    CHECK(header(denied, "X-Content-Type-Options") == "nosniff");
    CHECK_MESSAGE(web.handle(get(path, kBobWrong)).status == 401, path);
  }
  CHECK(web.handle(post("/-/reload")).status == 401);
  CHECK(counters.reloads == 0);
  WebReply ok = web.handle(get("/metrics", kBobUU));
  CHECK(ok.status == 200);
  REQUIRE(ok.shared_body);
  CHECK(*ok.shared_body == "up 1\n");
  CHECK(header(ok, "X-Content-Type-Options") == "nosniff");
  CHECK(web.handle(get("/sd", kBobUU)).status == 200);
  CHECK(web.handle(get("/nope", kBobUU)).status == 404);
  CHECK(web.handle(post("/-/reload", kBobUU)).status == 200);
  CHECK(counters.reloads == 1);
}

TEST_CASE("web config reload: new users apply, a bad file keeps the running config") {
  TempFile file;
  file.write("basic_auth_users:\n  alice: " + std::string(kHashUU) + "\n");
  Counters counters;
  WebServer web(handlers(counters), WebOptions{8, false, file.path.string()});
  REQUIRE(web.configure());
  CHECK(web.handle(get("/metrics", kBobUU)).status == 401);  // bob is not configured yet

  file.write("basic_auth_users:\n  bob: " + std::string(kHashUU) + "\n");
  REQUIRE(web.reload_config());
  CHECK(web.handle(get("/metrics", kBobUU)).status == 200);

  file.write("basic_auth_users:\n  bob: plain-text-password\n");
  auto failed = web.reload_config();
  REQUIRE_FALSE(failed);
  CHECK(failed.error().find(file.path.string() + ":2:") == 0);
  CHECK(failed.error().find("plain-text-password") == std::string::npos);
  CHECK(web.handle(get("/metrics", kBobUU)).status == 200);  // still in force

  // HTTP <-> HTTPS needs a restart; the previous config stays.
  std::ofstream(file.dir.path() / "c.pem") << "x";
  file.write("tls_server_config:\n  cert_file: c.pem\n  key_file: c.pem\n");
  failed = web.reload_config();
  REQUIRE_FALSE(failed);
  CHECK(failed.error().find("restart") != std::string::npos);
  CHECK(web.handle(get("/metrics", kBobUU)).status == 200);

  // Start-up with a broken file is an error naming it.
  file.write("basic_auth_users: [x]\n");
  WebServer broken(handlers(counters), WebOptions{8, false, file.path.string()});
  auto configured = broken.configure();
  REQUIRE_FALSE(configured);
  CHECK(configured.error().starts_with(file.path.string() + ":1: basic_auth_users"));

  // A TLS section whose files do not load names the file.
  file.write("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n");
  WebServer no_cert(handlers(counters), WebOptions{8, false, file.path.string()});
  configured = no_cert.configure();
  REQUIRE_FALSE(configured);
  CHECK(configured.error().find((file.dir.path() / "missing.pem").string()) != std::string::npos);
}

TEST_CASE("rate_limit: requests beyond the burst get 429") {
  TempFile file;
  file.write("rate_limit:\n  interval: 1h\n  burst: 2\n");
  Counters counters;
  WebServer web(handlers(counters), WebOptions{8, false, file.path.string()});
  REQUIRE(web.configure());
  CHECK(web.handle(get("/metrics")).status == 200);
  CHECK(web.handle(get("/metrics")).status == 200);
  CHECK(web.handle(get("/metrics")).status == 429);
}

TEST_CASE("/metrics replies carry the handler's shared page, never a copy per scraper") {
  Counters counters;
  WebHandlers h = handlers(counters);
  auto plain = std::make_shared<const std::string>("up 1\n");
  auto zipped_text = std::make_shared<const std::string>(gzip_compress("up 1\n"));
  auto zipped = std::make_shared<const net::BodyParts>(net::BodyParts{
      {std::string_view(*zipped_text).substr(0, 7), std::string_view(*zipped_text).substr(7)},
      zipped_text->size(),
      zipped_text});
  h.metrics = [plain] { return plain; };
  h.metrics_gzip = [zipped] { return zipped; };
  WebServer web(h, WebOptions{});
  WebRequest request = get("/metrics");
  for (int scraper = 0; scraper < 3; ++scraper) {
    WebReply reply = web.handle(request);
    CHECK(reply.status == 200);
    CHECK(reply.shared_body.get() == plain.get());  // the same object: no copy
    CHECK(reply.body.empty());
    CHECK(header(reply, "Content-Encoding").empty());
  }
  request.accept_encoding = "gzip";
  for (int scraper = 0; scraper < 3; ++scraper) {
    WebReply reply = web.handle(request);
    CHECK(reply.shared_parts.get() == zipped.get());  // the parts as they are: no copy
    CHECK(!reply.shared_body);
    CHECK(header(reply, "Content-Encoding") == "gzip");
  }
  // Without a gzip page the text page is compressed for the one request.
  h.metrics_gzip = nullptr;
  WebServer fallback(h, WebOptions{});
  WebReply reply = fallback.handle(request);
  CHECK(header(reply, "Content-Encoding") == "gzip");
  CHECK(!reply.shared_body);
  std::string inflated(64, '\0');
  uLongf size = inflated.size();
  z_stream stream{};
  REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);
  stream.next_in = reinterpret_cast<Bytef*>(reply.body.data());
  stream.avail_in = static_cast<uInt>(reply.body.size());
  stream.next_out = reinterpret_cast<Bytef*>(inflated.data());
  stream.avail_out = static_cast<uInt>(size);
  CHECK(inflate(&stream, Z_FINISH) == Z_STREAM_END);
  inflated.resize(stream.total_out);
  inflateEnd(&stream);
  CHECK(inflated == "up 1\n");
}

TEST_CASE("request durations: one histogram per endpoint, buckets down to 0.5 ms") {
  CHECK(RequestDurations::handler_index("/probe") == 1);
  CHECK(RequestDurations::kHandlers[RequestDurations::handler_index("/metrics")] == "/metrics");
  CHECK(RequestDurations::kHandlers[RequestDurations::handler_index("/nope")] == "other");
  CHECK(RequestDurations::kHandlers[RequestDurations::handler_index("/probe/x")] == "other");
  RequestDurations durations;
  const std::size_t probe = RequestDurations::handler_index("/probe");
  durations.observe(probe, 0.0002);  // first bucket
  durations.observe(probe, 0.0005);  // on a bound: that bucket (le is inclusive)
  durations.observe(probe, 0.004);
  durations.observe(probe, 100);  // +Inf only
  durations.observe(RequestDurations::handler_index("/metrics"), 0.3);
  std::string out;
  durations.render(out);
  CHECK(out.find("# TYPE winrm_exporter_http_request_duration_seconds histogram\n") !=
        std::string::npos);
  auto has = [&](const std::string& line) {
    CAPTURE(line);
    CHECK(out.find(line + "\n") != std::string::npos);
  };
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/probe",le="0.0005"} 2)");
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/probe",le="0.003"} 2)");
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/probe",le="0.004"} 3)");
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/probe",le="30"} 3)");
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/probe",le="+Inf"} 4)");
  has(R"(winrm_exporter_http_request_duration_seconds_count{handler="/probe"} 4)");
  CHECK(out.find(R"(winrm_exporter_http_request_duration_seconds_sum{handler="/probe"} 100.004)") !=
        std::string::npos);
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/metrics",le="0.25"} 0)");
  has(R"(winrm_exporter_http_request_duration_seconds_bucket{handler="/metrics",le="0.5"} 1)");
  // Every endpoint is there from the start (zeros), so rates exist before the first request.
  has(R"(winrm_exporter_http_request_duration_seconds_count{handler="/sd"} 0)");
  has(R"(winrm_exporter_http_request_duration_seconds_count{handler="other"} 0)");
}

}  // namespace test_web
