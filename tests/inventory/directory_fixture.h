// A throwaway slapd with AD-like computer objects (tests/inventory/slapd.sh) and,
// optionally, a throwaway MIT KDC (tests/scripts/kdc.sh) holding ldap/localhost, for the
// inventory tests. Both are stopped by PID when the fixture goes away.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "e2e_util.h"

namespace invtest {

inline int run(const std::string& command) { return std::system(command.c_str()); }

struct Computer {
  std::string cn;
  std::string host;  // dNSHostName; empty: none
  std::string os = "Windows Server 2022 Datacenter";
  int uac = 4096;  // WORKSTATION_TRUST_ACCOUNT; | 2 = disabled
  std::string ou = "ou=Servers,ou=Paris";
  std::string site;
};

inline std::string dn_of(const Computer& c) {
  return "cn=" + c.cn + "," + c.ou + ",dc=corp,dc=example";
}

inline std::string ldif_of(const Computer& c) {
  std::string out = "dn: " + dn_of(c) + "\nobjectClass: computer\ncn: " + c.cn + "\n";
  if (!c.host.empty()) out += "dNSHostName: " + c.host + "\n";
  out += "operatingSystem: " + c.os + "\nuserAccountControl: " + std::to_string(c.uac) +
         "\nobjectCategory: computer\n";
  if (!c.site.empty()) out += "msDS-SiteName: " + c.site + "\n";
  return out + "\n";
}

inline std::string ou_ldif(const std::string& rdn_path, const std::string& ou) {
  return "dn: " + rdn_path + ",dc=corp,dc=example\nobjectClass: organizationalUnit\nou: " + ou +
         "\n\n";
}

// The suffix, OUs Paris/Servers, Lyon/Servers, Bulk, and the simple-bind account
// cn=reader (password readerpw), then the computers.
inline std::string directory_ldif(const std::vector<Computer>& computers) {
  std::string out =
      "dn: dc=corp,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\n"
      "o: corp\n\n"
      "dn: cn=reader,dc=corp,dc=example\nobjectClass: person\nobjectClass: "
      "simpleSecurityObject\ncn: reader\nsn: reader\nuserPassword: readerpw\n\n";
  out += ou_ldif("ou=Paris", "Paris") + ou_ldif("ou=Servers,ou=Paris", "Servers") +
         ou_ldif("ou=Lyon", "Lyon") + ou_ldif("ou=Servers,ou=Lyon", "Servers") +
         ou_ldif("ou=Bulk", "Bulk");
  for (const auto& c : computers) out += ldif_of(c);
  return out;
}

class Directory {
 public:
  // kerberos: also a KDC, ldap/localhost in slapd's keytab; KRB5_CONFIG is set for this
  // process and the children it starts (call before any thread starts). max_life: the
  // client principals' ticket lifetime in seconds (kdc.sh init).
  Directory(const std::vector<Computer>& computers, bool kerberos, int max_life = 60) {
    script_ = std::string(WINRM_SOURCE_DIR) + "/tests/inventory/slapd.sh";
    dir_ = (tmp_ / "slapd").string();
    std::filesystem::create_directories(dir_);
    if (kerberos) {
      kdc_ = (tmp_ / "kdc").string();
      std::filesystem::create_directories(kdc_);
      REQUIRE(run(std::string(WINRM_TEST_SCRIPTS) + "/kdc.sh init " + kdc_ + " " +
                  std::to_string(max_life) + " >" + kdc_ + "/init.log 2>&1") == 0);
      const std::string env =
          "KRB5_CONFIG=" + kdc_ + "/krb5.conf KRB5_KDC_PROFILE=" + kdc_ + "/kdc.conf ";
      REQUIRE(run(env + "kadmin.local -q 'addprinc -randkey ldap/localhost' >/dev/null 2>&1") == 0);
      REQUIRE(run(env + "kadmin.local -q 'ktadd -k " + dir_ +
                  "/ldap.keytab ldap/localhost' >/dev/null 2>&1") == 0);
      setenv("KRB5_CONFIG", (kdc_ + "/krb5.conf").c_str(), 1);
    }
    e2e::write_file(tmp_ / "directory.ldif", directory_ldif(computers));
    const std::string init = script_ + " init " + dir_ + " " + (tmp_ / "directory.ldif").string();
    REQUIRE_MESSAGE(run(init + " >" + dir_ + ".init.log 2>&1") == 0,
                    e2e::read_file(dir_ + ".init.log"));
    std::istringstream env(e2e::read_file(dir_ + "/env"));
    std::string line;
    while (std::getline(env, line)) {
      if (line.starts_with("LDAP_PORT=")) ldap_port_ = std::stoi(line.substr(10));
      if (line.starts_with("LDAPS_PORT=")) ldaps_port_ = std::stoi(line.substr(11));
    }
    REQUIRE(ldap_port_ > 0);
    REQUIRE(ldaps_port_ > 0);
  }
  ~Directory() {
    stop();
    if (!kdc_.empty()) run(std::string(WINRM_TEST_SCRIPTS) + "/kdc.sh stop " + kdc_);
  }
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  void stop() { run(script_ + " stop " + dir_ + " >/dev/null 2>&1"); }
  void start() { REQUIRE(run(script_ + " start " + dir_ + " >/dev/null 2>&1") == 0); }

  // "localhost": the GSSAPI service principal is ldap/localhost.
  std::string ldap_url() const { return "ldap://localhost:" + std::to_string(ldap_port_); }
  // 127.0.0.1: libldap checks a certificate for "localhost" against the machine's FQDN.
  std::string ldaps_url() const { return "ldaps://127.0.0.1:" + std::to_string(ldaps_port_); }
  std::string ca_file() const { return dir_ + "/ca.crt"; }
  std::string kdc_file(const std::string& name) const { return kdc_ + "/" + name; }
  std::string slapd_log() const { return e2e::read_file(dir_ + "/slapd.log"); }
  std::string kdc_log() const { return e2e::read_file(kdc_ + "/kdc.log"); }
  const e2e::TempDir& tmp() const { return tmp_; }

  // Service principals (e.g. HTTP/win01.localhost) with random keys, written to `keytab`
  // (for winrm-sim's acceptor). Needs kerberos.
  void add_services(const std::vector<std::string>& spns, const std::string& keytab) const {
    REQUIRE_FALSE(kdc_.empty());
    const std::string env =
        "KRB5_CONFIG=" + kdc_ + "/krb5.conf KRB5_KDC_PROFILE=" + kdc_ + "/kdc.conf ";
    for (const auto& spn : spns) {
      REQUIRE(run(env + "kadmin.local -q 'addprinc -randkey " + spn + "' >/dev/null 2>&1") == 0);
      REQUIRE(run(env + "kadmin.local -q 'ktadd -k " + keytab + " " + spn + "' >/dev/null 2>&1") ==
              0);
    }
  }

  // Directory changes through slapd (rootdn), as an administrator would make them.
  void add(const Computer& computer) { modify(ldif_of(computer), "ldapadd"); }
  void remove(const Computer& computer) { modify(dn_of(computer) + "\n", "ldapdelete"); }

 private:
  void modify(const std::string& input, const std::string& tool) {
    const std::string file = (tmp_ / "change.ldif").string();
    e2e::write_file(file, input);
    REQUIRE(run(tool + " -x -H ldap://127.0.0.1:" + std::to_string(ldap_port_) +
                " -D cn=admin,dc=corp,dc=example -w adminpw -f " + file + " >/dev/null") == 0);
  }

  e2e::TempDir tmp_;
  std::string script_, dir_, kdc_;
  int ldap_port_ = 0, ldaps_port_ = 0;
};

}  // namespace invtest
