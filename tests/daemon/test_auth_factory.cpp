// Auth wiring without a KDC: profile -> credential options, SPN choice, one shared
// CredentialManager per profile kept across reloads, metrics rendering, worker count.
#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "app.h"
#include "auth_factory.h"

// A namespace per test file: test bundles compile a directory's tests as one unit (CMakeLists).
namespace test_auth_factory {

using namespace exporter;

namespace {

config::CredentialProfile kerberos_profile(const std::string& name) {
  config::CredentialProfile profile;
  profile.name = name;
  profile.method = config::AuthMethod::kKerberos;
  profile.username = "svc-winrm";
  profile.realm = "EXAMPLE.COM";
  profile.keytab = "/nonexistent/svc.keytab";
  return profile;
}

config::Target target(const std::string& name) {
  config::Target t;
  t.name = name;
  t.host = name;
  return t;
}

}  // namespace

TEST_CASE("profile maps to credential options; target SPN overrides the profile's") {
  auto profile = kerberos_profile("domain");
  profile.password = config::Secret("pw");
  auto options = credential_options(profile);
  CHECK(options.profile == "domain");
  CHECK(options.mech == winrm::NegotiateMech::kKerberos);
  CHECK(options.principal == "svc-winrm");
  CHECK(options.realm == "EXAMPLE.COM");
  CHECK(options.client_keytab == "/nonexistent/svc.keytab");
  CHECK(options.password == "pw");
  profile.method = config::AuthMethod::kNtlm;
  CHECK(credential_options(profile).mech == winrm::NegotiateMech::kNtlm);

  auto t = target("a.example.com");
  CHECK(spn_service_for(profile, t) == "HTTP");
  profile.spn_service = "WSMAN";
  CHECK(spn_service_for(profile, t) == "WSMAN");
  t.spn_service = "HTTP";
  CHECK(spn_service_for(profile, t) == "HTTP");
}

TEST_CASE("one CredentialManager per profile, shared by targets, kept while unchanged") {
  AuthFactory factory;
  auto profile = kerberos_profile("domain");
  auto stats = std::make_shared<winrm::NegotiateStats>();
  auto a = factory.make(profile, target("a.example.com"), stats);
  auto b = factory.make(profile, target("b.example.com"), stats);
  REQUIRE(a);
  REQUIRE(b);
  auto manager = factory.manager("domain");
  REQUIRE(manager);
  CHECK(manager->profile() == "domain");
  // Each session gets its own Auth (a context is bound to one connection).
  auto first = (*a)();
  auto second = (*a)();
  REQUIRE(first);
  CHECK(first != second);
  CHECK(first->name() == "kerberos");

  // Reload with the same profile: same manager (same ticket cache).
  std::map<std::string, config::CredentialProfile> profiles{{"domain", profile}};
  factory.retain(profiles);
  REQUIRE(factory.make(profile, target("c.example.com"), stats));
  CHECK(factory.manager("domain") == manager);

  // Changed keytab: a new manager.
  profile.keytab = "/nonexistent/other.keytab";
  REQUIRE(factory.make(profile, target("c.example.com"), stats));
  CHECK(factory.manager("domain") != manager);

  // Profile removed: forgotten.
  factory.retain({});
  CHECK(factory.manager("domain") == nullptr);
}

TEST_CASE("Basic profiles share one Auth and create no credential manager") {
  AuthFactory factory;
  config::CredentialProfile profile;
  profile.name = "basic";
  profile.username = "monitor";
  profile.password = config::Secret("pw");
  auto maker = factory.make(profile, target("a"), nullptr);
  REQUIRE(maker);
  CHECK((*maker)() == (*maker)());
  CHECK(factory.manager("basic") == nullptr);
  std::string out;
  factory.render(out);
  CHECK(out.empty());
}

TEST_CASE("kerberos metrics: expiry absent before a ticket; failures by class per profile") {
  AuthFactory factory;
  REQUIRE(factory.make(kerberos_profile("domain"), target("a"), nullptr));
  std::string out;
  factory.render(out);
  CHECK(out.find("# TYPE winrm_exporter_kerberos_ticket_expiry_timestamp_seconds gauge") !=
        std::string::npos);
  CHECK(out.find("winrm_exporter_kerberos_ticket_expiry_timestamp_seconds{") == std::string::npos);
  CHECK(out.find("winrm_exporter_kerberos_ticket_acquisitions_total{profile=\"domain\"} 0") !=
        std::string::npos);
  CHECK(out.find("winrm_exporter_kerberos_ticket_failures_total{profile=\"domain\",class="
                 "\"principal_unknown\"} 0") != std::string::npos);
  CHECK(out.find("class=\"clock_skew\"") != std::string::npos);
}

TEST_CASE("auth errors are counted by class") {
  TargetAuthStats stats;
  stats.count_error(winrm::make_auth_error(winrm::AuthErrorClass::kClockSkew, "skew").error());
  stats.count_error(winrm::Error{winrm::ErrorKind::kAuth, "HTTP 401", 401, std::nullopt});
  stats.count_error(winrm::Error{winrm::ErrorKind::kTransport, "refused", 0, std::nullopt});
  CHECK(stats.errors[static_cast<int>(winrm::AuthErrorClass::kClockSkew)] == 1);
  CHECK(stats.errors[static_cast<int>(winrm::AuthErrorClass::kOther)] == 1);
  std::uint64_t total = 0;
  for (auto& count : stats.errors) total += count;
  CHECK(total == 2);
}

TEST_CASE("worker count follows the configuration unless the flag is set") {
  // Polls hold no worker while they wait: one worker per core, at least 4, but never more
  // than the polls that can run at once.
  const int per_core = std::max<int>(kMinDefaultSchedulerWorkers,
                                     static_cast<int>(std::thread::hardware_concurrency()));
  config::Defaults defaults;  // concurrency 64 x per_target_concurrency 1
  CHECK(worker_count(0, defaults) == std::min(per_core, 64));
  defaults.per_target_concurrency = 2;
  defaults.concurrency = kMaxSchedulerWorkers;  // x 2: past the cap
  CHECK(worker_count(0, defaults) == std::min(per_core, kMaxSchedulerWorkers));
  defaults.concurrency = 3;
  defaults.per_target_concurrency = 1;
  CHECK(worker_count(0, defaults) == std::min(per_core, 3));
  CHECK(worker_count(7, defaults) == 7);
  CHECK(worker_count(kMaxSchedulerWorkers + 1, defaults) == kMaxSchedulerWorkers);
}

}  // namespace test_auth_factory
