// The Active Directory inventory against a real slapd (AD-like schema, loaded from LDIF)
// and a real MIT KDC: SASL/GSSAPI bind with the profile's keytab (and its refreshes),
// simple bind over LDAPS and StartTLS, paged results over 1,200+ entries, DC failover and
// outage, directory changes between refreshes, merging with static targets.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth_factory.h"
#include "config/config.h"
#include "directory_fixture.h"
#include "inventory_ldap.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_inventory_ldap {

namespace {

using namespace std::chrono_literals;
using invtest::Computer;

constexpr int kBulk = 1200;

std::vector<Computer> initial_computers() {
  std::vector<Computer> computers = {
      {"WIN01", "WIN01.corp.example", "Windows Server 2022 Datacenter", 4096, "ou=Servers,ou=Paris",
       "Paris"},
      {"WIN02", "win02.corp.example", "Windows Server 2019 Standard", 4098,  // disabled
       "ou=Servers,ou=Paris", ""},
      {"WS01", "ws01.corp.example", "Windows 10 Enterprise", 4096, "ou=Servers,ou=Lyon", ""},
      {"NOHOST", "", "Windows Server 2016 Standard", 4096, "ou=Servers,ou=Lyon", ""},
      {"WIN03", "win03.corp.example", "Windows Server 2016 Standard", 4096, "ou=Servers,ou=Lyon",
       "Lyon"},
  };
  for (int i = 0; i < kBulk; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "BULK%04d", i);
    computers.push_back({name, std::string(name) + ".bulk.corp.example",
                         "Windows Server 2022 Standard", 4096, "ou=Bulk", ""});
  }
  return computers;
}

// One directory and KDC for the whole test program (started on first use).
invtest::Directory& directory() {
  static invtest::Directory instance(initial_computers(), true);
  return instance;
}

// A config with one source; `source` is the YAML body of the list item.
config::Config load_config(const std::string& source, const std::string& targets = "") {
  auto& dir = directory();
  const auto path = dir.tmp() / "config.yml";
  e2e::write_file(dir.tmp() / "reader.pw", "readerpw\n");
  chmod((dir.tmp() / "reader.pw").c_str(), 0600);
  e2e::write_file(path,
                  "credentials:\n"
                  "  krb: {auth: kerberos, username: exporter, keytab: " +
                      dir.kdc_file("client.keytab") +
                      "}\n"
                      "  win: {auth: basic, username: u, password_env: HOME}\n"
                      "global: {credential: win}\n"
                      "targets:\n" +
                      (targets.empty() ? "  []\n" : targets) + "inventory_ldap:\n  - " + source);
  return config::load(path.string());
}

std::string gssapi_source(const std::string& urls, const std::string& extra = "") {
  return "{name: corp, urls: [" + urls +
         "], bind: gssapi, credential: krb, base_dn: 'dc=corp,dc=example', page_size: 500" + extra +
         "}\n";
}

std::string simple_source(const std::string& urls, const std::string& extra = "") {
  auto& dir = directory();
  return "{name: corp, urls: [" + urls +
         "], bind: simple, bind_dn: 'cn=reader,dc=corp,dc=example', bind_password_file: " +
         (dir.tmp() / "reader.pw").string() + ", tls_ca_file: " + dir.ca_file() +
         ", base_dn: 'dc=corp,dc=example'" + extra + "}\n";
}

std::shared_ptr<winrm::CredentialManager> manager_of(const config::Config& config) {
  return std::make_shared<winrm::CredentialManager>(
      exporter::credential_options(config.credentials.at("krb")));
}

const exporter::DiscoveredHost* find_host(const std::vector<exporter::DiscoveredHost>& hosts,
                                          const std::string& name) {
  auto it = std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.host == name; });
  return it == hosts.end() ? nullptr : &*it;
}

// A source runner on `loaded`, configured (start() is the test's), with its own AuthFactory
// and a count of on_change calls; hosts() and metric() read source `corp`.
struct Runner {
  exporter::AuthFactory factory;
  std::atomic<int> changes{0};
  exporter::LdapInventoryRunner runner{
      [this](const config::CredentialProfile& profile) { return factory.manager_for(profile); },
      [this] { ++changes; }};

  explicit Runner(const std::shared_ptr<const config::Config>& loaded) { runner.configure(loaded); }
  std::vector<exporter::DiscoveredHost> hosts() const {
    auto all = runner.hosts();
    return all.contains("corp") ? *all.at("corp") : std::vector<exporter::DiscoveredHost>{};
  }
  std::string metrics() const {
    std::string out;
    runner.render(out);
    return out;
  }
  std::optional<double> metric(const std::string& name) const {
    return e2e::sample_value(metrics(), "winrm_exporter_inventory_" + name + "{source=\"corp\"}");
  }
};

}  // namespace

TEST_CASE("ou_path: the OU chain of a DN, top-down") {
  CHECK(exporter::ou_path("CN=WIN01,OU=Servers,OU=Paris,DC=corp,DC=example") == "Paris/Servers");
  CHECK(exporter::ou_path("cn=x,ou=Bulk,dc=corp,dc=example") == "Bulk");
  CHECK(exporter::ou_path("CN=DC1,CN=Computers,DC=corp,DC=example") == "");
  CHECK(exporter::ou_path("CN=a\\,b,OU=Web\\, Tier,DC=x") == "Web, Tier");
  CHECK_FALSE(exporter::ou_path("not a dn").has_value());
}

TEST_CASE("config: inventory_ldap is parsed, resolved and checked") {
  auto& dir = directory();
  auto config = load_config(gssapi_source(dir.ldap_url(),
                                          ", refresh_interval: 5m, "
                                          "defaults: {collectors: [os], port: 5999, "
                                          "interval: 45s, credential: krb, "
                                          "proxy: http://proxy.corp.example:3128, "
                                          "labels: {env: prod}}"));
  REQUIRE(config.inventory_ldap.size() == 1);
  const auto& source = config.inventory_ldap[0];
  CHECK(source.filter == config::kDefaultLdapFilter);
  CHECK(source.bind == config::LdapBind::kGssapi);
  CHECK(source.refresh_interval == std::chrono::minutes(5));
  CHECK(source.max_stale_age == std::chrono::hours(24));  // the documented default
  CHECK(source.defaults.collectors == std::vector<std::string>{"os"});
  CHECK(source.defaults.port == 5999);
  CHECK(source.defaults.interval == std::chrono::seconds(45));
  CHECK(source.defaults.credential == "krb");
  CHECK(source.defaults.proxy.url == "http://proxy.corp.example:3128");
  // Without defaults a source's hosts take global's.
  auto plain = load_config(gssapi_source(dir.ldap_url()));
  CHECK(plain.inventory_ldap[0].defaults.credential == "win");
  CHECK(plain.inventory_ldap[0].defaults.interval == std::chrono::seconds(30));
  // --config.check's summary: the bind password masked, never its bytes.
  const auto summary = config::describe(load_config(simple_source(dir.ldaps_url())));
  CHECK_MESSAGE(summary.find("bind=simple bind_dn=cn=reader,dc=corp,dc=example "
                             "password=<secret>") != std::string::npos,
                summary);
  CHECK(summary.find("readerpw") == std::string::npos);
  // Several sources, each named once.
  const std::string second = "  - {name: branch, urls: [" + dir.ldap_url() +
                             "], credential: krb, base_dn: 'ou=Lyon,dc=corp,dc=example'}\n";
  CHECK(load_config(gssapi_source(dir.ldap_url()) + second).inventory_ldap.size() == 2);
  CHECK_THROWS_WITH_AS(
      load_config(gssapi_source(dir.ldap_url()) + "  - " + gssapi_source(dir.ldap_url())),
      doctest::Contains("repeated source name"), config::ConfigError);
  CHECK(source.defaults.labels.at("env") == "prod");
  CHECK(config.targets.empty());  // the resolved defaults are not a target

  // Simple bind without TLS would send the password in clear text.
  CHECK_THROWS_WITH_AS(load_config("{name: corp, urls: [" + dir.ldap_url() +
                                   "], bind: simple, bind_dn: x, bind_password_file: " +
                                   (dir.tmp() / "reader.pw").string() + ", base_dn: 'dc=x'}\n"),
                       doctest::Contains("needs ldaps:// URLs or start_tls"), config::ConfigError);
  CHECK_THROWS_WITH_AS(load_config("{name: corp, urls: [" + dir.ldap_url() +
                                   "], credential: win, base_dn: 'dc=x'}\n"),
                       doctest::Contains("is not auth: kerberos"), config::ConfigError);
  CHECK_THROWS_WITH_AS(load_config("{name: corp, urls: [http://dc1], credential: krb, "
                                   "base_dn: 'dc=x'}\n"),
                       doctest::Contains("must start with ldap:// or ldaps://"),
                       config::ConfigError);
  CHECK_THROWS_WITH_AS(load_config("{name: corp, urls: [" + dir.ldap_url() +
                                   "], credential: krb, base_dn: 'dc=x', filtre: '(a=b)'}\n"),
                       doctest::Contains("did you mean 'filter'"), config::ConfigError);
  CHECK(load_config(gssapi_source(dir.ldap_url(), ", max_stale_age: never"))
            .inventory_ldap[0]
            .max_stale_age == config::Duration::zero());
  CHECK(load_config(gssapi_source(dir.ldap_url(), ", max_stale_age: 2h30m"))
            .inventory_ldap[0]
            .max_stale_age == std::chrono::minutes(150));
  CHECK_THROWS_WITH_AS(load_config(gssapi_source(dir.ldap_url(), ", max_stale_age: 0s")),
                       doctest::Contains("must be greater than 0"), config::ConfigError);
}

TEST_CASE("SASL/GSSAPI bind with the profile's keytab; paged search over 1,200+ entries") {
  auto& dir = directory();
  auto config = load_config(gssapi_source(dir.ldap_url()));
  auto manager = manager_of(config);
  auto result = exporter::search_ldap(config.inventory_ldap[0], manager);
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  // WIN01, WIN03 and the bulk ones: not the disabled WIN02, the workstation or NOHOST.
  CHECK(result->hosts.size() == kBulk + 2);
  CHECK(result->pages == 3);  // 1,202 entries in pages of 500
  CHECK(result->entries_without_host == 1);
  CHECK(result->url == dir.ldap_url());
  CHECK(find_host(result->hosts, "win02.corp.example") == nullptr);
  CHECK(find_host(result->hosts, "ws01.corp.example") == nullptr);
  const auto* win01 = find_host(result->hosts, "win01.corp.example");  // lower-cased
  REQUIRE(win01 != nullptr);
  CHECK(win01->labels.at("ad_ou") == "Paris/Servers");
  CHECK(win01->labels.at("ad_os") == "Windows Server 2022 Datacenter");
  CHECK(win01->labels.at("ad_site") == "Paris");
  const auto* bulk = find_host(result->hosts, "bulk1199.bulk.corp.example");
  REQUIRE(bulk != nullptr);
  CHECK(bulk->labels.at("ad_ou") == "Bulk");
  CHECK_FALSE(bulk->labels.contains("ad_site"));
  // The bind was Kerberos: slapd logged a GSSAPI bind, the KDC a service ticket for
  // ldap/localhost, and the ticket came from the keytab (an AS request for exporter).
  CHECK(dir.slapd_log().find("mech=GSSAPI") != std::string::npos);
  CHECK(dir.kdc_log().find("for ldap/localhost@KRBTEST.COM") != std::string::npos);
  CHECK(manager->stats().acquisitions.load() >= 1);
  // A second search reuses the manager's ticket: no new AS request.
  const auto acquisitions = manager->stats().acquisitions.load();
  REQUIRE(exporter::search_ldap(config.inventory_ldap[0], manager).has_value());
  CHECK(manager->stats().acquisitions.load() == acquisitions);

  // max_hosts bounds a search: finding more is an error (the runner keeps its last list).
  auto bounded = config.inventory_ldap[0];
  bounded.max_hosts = 1000;
  auto too_many = exporter::search_ldap(bounded, manager);
  REQUIRE_FALSE(too_many.has_value());
  CHECK_MESSAGE(too_many.error().message.find("more than max_hosts=1000") != std::string::npos,
                too_many.error().message);
}

TEST_CASE("GSSAPI binds follow the profile's ticket refresh") {
  // A refresh replaces the profile's in-process cache (new TGT, no service tickets): the
  // next bind must use that ticket, asking the KDC for ldap/localhost again, not a kept
  // credential. refresh_fraction 0 makes every acquire() a due refresh.
  auto& dir = directory();
  auto config = load_config(gssapi_source(dir.ldap_url(), ", filter: '(cn=WIN01)'"));
  auto options = exporter::credential_options(config.credentials.at("krb"));
  options.refresh_fraction = 0;
  auto manager = std::make_shared<winrm::CredentialManager>(options);
  const auto ldap_tickets = [&] {
    return e2e::count_of(dir.kdc_log(), " exporter@KRBTEST.COM for ldap/localhost@KRBTEST.COM");
  };
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    const auto acquisitions = manager->stats().acquisitions.load();
    const auto tickets = ldap_tickets();
    auto result = exporter::search_ldap(config.inventory_ldap[0], manager);
    REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
    CHECK(result->hosts.size() == 1);
    CHECK(manager->stats().acquisitions.load() == acquisitions + 1);  // a new TGT (keytab)
    CHECK(ldap_tickets() == tickets + 1);  // on the new cache: a new service ticket
  }
}

TEST_CASE("a custom filter and attribute labels") {
  auto& dir = directory();
  auto config = load_config(
      gssapi_source(dir.ldap_url(),
                    ", filter: '(&(objectClass=computer)(msDS-SiteName=*))', ou_label: '', "
                    "attribute_labels: {site: msDS-SiteName}"));
  auto result = exporter::search_ldap(config.inventory_ldap[0], manager_of(config));
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  REQUIRE(result->hosts.size() == 2);
  CHECK(result->pages == 1);
  CHECK(result->hosts[0].host == "win01.corp.example");
  CHECK(result->hosts[0].labels == std::map<std::string, std::string>{{"site", "Paris"}});
  CHECK(result->hosts[1].labels == std::map<std::string, std::string>{{"site", "Lyon"}});
}

TEST_CASE("simple bind over LDAPS and StartTLS; a wrong password; failover past a dead DC") {
  auto& dir = directory();
  const std::string dead = "ldaps://127.0.0.1:" + std::to_string(e2e::free_port());
  auto config = load_config(simple_source(dead + ", " + dir.ldaps_url(), ", page_size: 1000"));
  auto result = exporter::search_ldap(config.inventory_ldap[0], nullptr);
  REQUIRE_MESSAGE(result.has_value(), (result ? "" : result.error().message));
  CHECK(result->url == dir.ldaps_url());  // the second DC answered
  CHECK(result->hosts.size() == kBulk + 2);
  CHECK(result->pages == 2);

  e2e::write_file(dir.tmp() / "wrong.pw", "not-the-password\n");
  chmod((dir.tmp() / "wrong.pw").c_str(), 0600);
  auto wrong = config.inventory_ldap[0];
  wrong.urls = {dir.ldaps_url()};
  wrong.bind_password = config::Secret("not-the-password");
  auto failed = exporter::search_ldap(wrong, nullptr);
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().kind == winrm::ErrorKind::kAuth);
  CHECK(failed.error().message.find("Invalid credentials") != std::string::npos);
  CHECK(failed.error().message.find("not-the-password") == std::string::npos);

  // A certificate the CA file does not vouch for: the TLS handshake fails.
  auto untrusted = wrong;
  untrusted.bind_password = config::Secret("readerpw");
  untrusted.tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  auto refused = exporter::search_ldap(untrusted, nullptr);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().message.find(dir.ldaps_url()) != std::string::npos);

  // start_tls: true on the plain port (a DC without an LDAPS binding): slapd logs the
  // StartTLS extended operation before the simple bind; an untrusted certificate stops it
  // before the password is sent.
  std::string plain = dir.ldap_url();
  plain.replace(plain.find("localhost"), 9, "127.0.0.1");  // the certificate's IP SAN
  auto starttls = load_config(simple_source(plain, ", start_tls: true")).inventory_ldap[0];
  CHECK(starttls.start_tls);
  const auto extops = e2e::count_of(dir.slapd_log(), "STARTTLS");
  auto upgraded = exporter::search_ldap(starttls, nullptr);
  REQUIRE_MESSAGE(upgraded.has_value(), (upgraded ? "" : upgraded.error().message));
  CHECK(upgraded->url == plain);
  CHECK(upgraded->hosts.size() == kBulk + 2);
  CHECK(e2e::count_of(dir.slapd_log(), "STARTTLS") > extops);
  starttls.tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  auto not_upgraded = exporter::search_ldap(starttls, nullptr);
  REQUIRE_FALSE(not_upgraded.has_value());
  CHECK_MESSAGE(not_upgraded.error().message.find("StartTLS") != std::string::npos,
                not_upgraded.error().message);
  CHECK(not_upgraded.error().message.find(plain) != std::string::npos);
}

TEST_CASE("runner: refresh, DC outage keeps the last list, directory changes, merge") {
  auto& dir = directory();
  auto loaded = std::make_shared<const config::Config>(
      load_config(gssapi_source(dir.ldap_url(),
                                ", refresh_interval: 1s, filter: "
                                "'(&(objectCategory=computer)(operatingSystem=Windows "
                                "Server*)(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
                                "(!(dNSHostName=*.bulk.corp.example)))'"),
                  "  - {name: static1, host: win01.corp.example}\n"));
  Runner r(loaded);
  auto& runner = r.runner;
  REQUIRE(runner.start().has_value());
  auto hosts_of = [&] { return r.hosts(); };
  auto& changes = r.changes;
  REQUIRE(e2e::wait_until([&] { return hosts_of().size() == 2; }, 20s));
  CHECK(changes.load() == 1);
  CHECK(r.metric("up") == 1);
  CHECK(r.metric("hosts") == 2);

  // Static target win01 wins; win03 becomes a target with the source's labels.
  auto merged = exporter::merge_inventory(loaded, runner.hosts());
  runner.set_merge_stats(merged.stats);
  REQUIRE(merged.config->targets.size() == 2);
  CHECK(merged.config->targets[0].name == "static1");
  CHECK(merged.config->targets[1].name == "win03.corp.example");
  CHECK(merged.config->targets[1].labels.at("ad_ou") == "Lyon/Servers");
  CHECK(merged.config->targets[1].credential == "win");
  CHECK(merged.stats.at("corp").duplicates == 1);
  CHECK(merged.stats.at("corp").duplicate_names == std::vector<std::string>{"win01.corp.example"});
  CHECK(r.metric("duplicates") == 1);
  CHECK(r.metric("targets") == 1);

  // Outage: refreshes fail, the list stays.
  dir.stop();
  REQUIRE(e2e::wait_until([&] { return r.metric("refresh_errors_total").value_or(0) >= 2; }, 20s));
  CHECK(r.metric("up") == 0);
  CHECK(hosts_of().size() == 2);
  CHECK(changes.load() == 1);

  // The DC is back, and the directory changed meanwhile.
  dir.start();
  dir.add({"WIN04", "win04.corp.example", "Windows Server 2025 Datacenter", 4096,
           "ou=Servers,ou=Paris", ""});
  dir.remove({"WIN03", "", "", 0, "ou=Servers,ou=Lyon", ""});
  REQUIRE(e2e::wait_until(
      [&] {
        auto hosts = hosts_of();
        return find_host(hosts, "win04.corp.example") && !find_host(hosts, "win03.corp.example");
      },
      20s));
  CHECK(hosts_of().size() == 2);
  CHECK(changes.load() >= 2);  // 3 when a refresh fell between the add and the delete
  CHECK(r.metric("up") == 1);
  CHECK(r.metric("last_success_timestamp_seconds").value_or(0) > 1.7e9);
  runner.stop();
  CHECK(e2e::count_of(r.metrics(), "# TYPE winrm_exporter_inventory_") == 9u);
  CHECK(r.metric("stale_drops_total") == 0);  // within max_stale_age (default 24h): no drop

  // A reload with the same search keeps the list; a changed search starts afresh.
  runner.configure(loaded);
  CHECK(hosts_of().size() == 2);
  runner.configure(std::make_shared<const config::Config>(
      load_config(gssapi_source(dir.ldap_url(), ", refresh_interval: 1m"))));
  CHECK(hosts_of().empty());
}

TEST_CASE("runner: a source slower than its refresh_interval does not starve the others") {
  // A "DC" that accepts connections and never answers: each search of source `a-silent`
  // waits its whole 2 s timeout, longer than its 1 s refresh_interval, so it is always due
  // again. Source `corp` (after it by name) must still be refreshed.
  const int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(silent >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(bind(silent, reinterpret_cast<sockaddr*>(&address), length) == 0);
  REQUIRE(listen(silent, 16) == 0);
  REQUIRE(getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const std::string silent_url = "ldap://localhost:" + std::to_string(ntohs(address.sin_port));

  auto& dir = directory();
  const std::string corp = gssapi_source(dir.ldap_url(), ", refresh_interval: 1s");
  const std::string slow =
      "  - {name: a-silent, urls: [" + silent_url +
      "], credential: krb, base_dn: 'dc=corp,dc=example', refresh_interval: 1s, timeout: 2s}\n";
  Runner r(std::make_shared<const config::Config>(load_config(corp + slow)));
  REQUIRE(r.runner.start().has_value());
  const bool refreshed = e2e::wait_until([&] { return !r.hosts().empty(); }, 20s);
  const auto silent_errors = e2e::sample_value(
      r.metrics(), "winrm_exporter_inventory_refresh_errors_total{source=\"a-silent\"}");
  r.runner.stop();
  close(silent);
  CHECK_MESSAGE(refreshed, r.metrics());
  CHECK(r.hosts().size() == kBulk + 2);
  CHECK(r.metric("up") == 1);
  CHECK(silent_errors.value_or(0) >= 1);  // the silent source was searched (and timed out)
}

TEST_CASE("runner: max_stale_age drops the last list of a source whose DCs stay down") {
  auto& dir = directory();
  auto loaded = std::make_shared<const config::Config>(
      load_config(gssapi_source(dir.ldap_url(),
                                ", refresh_interval: 1s, max_stale_age: 3s, filter: "
                                "'(&(objectCategory=computer)(operatingSystem=Windows "
                                "Server*)(!(dNSHostName=*.bulk.corp.example)))'")));
  auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(200);
  spdlog::default_logger()->sinks().push_back(log);
  Runner r(loaded);
  auto& runner = r.runner;
  REQUIRE(runner.start().has_value());
  auto hosts_of = [&] { return r.hosts().size(); };
  auto metric = [&](const std::string& name) { return r.metric(name); };
  auto& changes = r.changes;
  REQUIRE(e2e::wait_until([&] { return hosts_of() > 0; }, 20s));
  const std::size_t listed = hosts_of();
  CHECK(changes.load() == 1);

  // The DC stays down: failed refreshes keep the list until its last success is 3 s old,
  // then one drops it (targets gone, on_change called, counted, logged).
  dir.stop();
  REQUIRE(e2e::wait_until([&] { return metric("stale_drops_total") == 1.0; }, 30s));
  const double seen =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(hosts_of() == 0);
  CHECK(runner.hosts().empty());  // the merge then contributes no target from it
  CHECK(changes.load() == 2);
  CHECK(metric("hosts") == 0);
  CHECK(metric("up") == 0);
  CHECK(metric("refresh_errors_total").value_or(0) >= 1);
  // Never before the limit (seen is after the drop, so this cannot fail when it is right).
  const double age = seen - metric("last_success_timestamp_seconds").value_or(seen);
  CHECK(age >= 3.0);
  std::string lines;
  for (const auto& line : log->last_formatted()) lines += line;
  CHECK_MESSAGE(lines.find("inventory_ldap source=corp refresh failed") != std::string::npos,
                lines);
  CHECK_MESSAGE(lines.find("(max_stale_age 3s): dropped, its targets are no longer polled") !=
                    std::string::npos,
                lines);

  // The DC is back: the list returns with the next refresh.
  dir.start();
  REQUIRE(e2e::wait_until([&] { return hosts_of() == listed; }, 20s));
  CHECK(changes.load() == 3);
  CHECK(metric("up") == 1);
  CHECK(metric("stale_drops_total") == 1);
  runner.stop();
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), log), sinks.end());
}

}  // namespace test_inventory_ldap
