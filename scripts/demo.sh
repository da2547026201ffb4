#!/bin/sh
# `make demo`: starts winrm-sim with a few virtual Windows hosts (one slow, one failing)
# and winrm_exporter against them, prints the URLs, and stops both on Ctrl-C.
# Usage: scripts/demo.sh BUILD_DIR   (env: DEMO_PORT, default 9725; DEMO_DIR, default .demo)
# DEMO_INVENTORY=ldap: the hosts are not listed in the config but discovered in a demo
# slapd holding Active Directory-like computer objects (inventory_ldap:, config/CONFIG.md).
# Prints "data for 5/5 hosts after N s" once /metrics has every host's collectors (the
# first round of polls is not splayed over the interval for a fleet this small).
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
demo=${DEMO_DIR:-$root/.demo}
port=${DEMO_PORT:-9725}
inventory=${DEMO_INVENTORY:-}
case $inventory in ""|ldap) ;; *) echo "DEMO_INVENTORY must be ldap or empty" >&2; exit 1 ;; esac
# With the LDAP inventory the hosts are *.demo.localhost: names libcurl resolves to loopback
# itself (RFC 6761), as discovered hosts have no connect_address.
domain=sim.test
[ "$inventory" = ldap ] && domain=demo.localhost
sim_bin=$build/sim/winrm-sim
exporter_bin=$build/daemon/winrm_exporter
for bin in "$sim_bin" "$exporter_bin"; do
  [ -x "$bin" ] || { echo "missing $bin: build first (make build)" >&2; exit 1; }
done

mkdir -p "$demo"
chmod 700 "$demo"
sh "$root/tests/scripts/gen-certs.sh" "$demo" "*.demo.localhost"
# A throwaway password for the demo's simulated local account.
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
umask 077
printf '%s\n' "$password" > "$demo/monitor.pass"
rm -f "$demo/sim.ports"

cat > "$demo/sim.yml" <<YAML
https: {address: 127.0.0.1, port: 0, cert: $demo/server.pem, key: $demo/server.key}
keep_alive_timeout: 30s
page_size: 50
users:
  - {username: monitor, password: "$password"}
hosts:
  - {name: win01.$domain, cpus: 4}
  - {name: win02.$domain, cpus: 8}
  - {name: win03.$domain}
  - {name: slow01.$domain, delay: 300ms}
  - {name: broken01.$domain, fault: access_denied}
YAML

sim_pid=""
exporter_pid=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null && wait "$exporter_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  [ "$inventory" = ldap ] && "$root/tests/inventory/slapd.sh" stop "$demo/slapd"
  echo
  echo "demo stopped"
}
trap cleanup INT TERM EXIT

"$sim_bin" --config "$demo/sim.yml" --ports-file "$demo/sim.ports" --log-level warn &
sim_pid=$!
i=0
while [ ! -s "$demo/sim.ports" ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "winrm-sim did not start" >&2; exit 1; }
  kill -0 "$sim_pid" 2>/dev/null || { echo "winrm-sim exited" >&2; exit 1; }
  sleep 0.1
done
sim_port=$(awk '$1 == "https" {print $2}' "$demo/sim.ports")

if [ "$inventory" = ldap ]; then
  # The directory: the five hosts as enabled Windows Server computer objects, a disabled
  # one and a workstation (both filtered out), and the bind account (simple bind, LDAPS).
  rm -rf "$demo/slapd"
  mkdir -p "$demo/slapd"
  ldap_password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$ldap_password" > "$demo/ldap.pass"
  {
    printf 'dn: dc=corp,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: corp\n\n'
    printf 'dn: cn=reader,dc=corp,dc=example\nobjectClass: person\nobjectClass: simpleSecurityObject\n'
    printf 'cn: reader\nsn: reader\nuserPassword: %s\n\n' "$ldap_password"
    printf 'dn: ou=Servers,dc=corp,dc=example\nobjectClass: organizationalUnit\nou: Servers\n\n'
    for entry in "win01 Windows Server 2022 Datacenter;4096" "win02 Windows Server 2019 Standard;4096" \
        "win03 Windows Server 2016 Standard;4096" "slow01 Windows Server 2022 Standard;4096" \
        "broken01 Windows Server 2012 R2 Standard;4096" "old01 Windows Server 2008 R2;4098" \
        "desk01 Windows 11 Enterprise;4096"; do
      name=${entry%% *}; rest=${entry#* }; os=${rest%;*}; uac=${rest#*;}
      printf 'dn: cn=%s,ou=Servers,dc=corp,dc=example\nobjectClass: computer\ncn: %s\n' "$name" "$name"
      printf 'dNSHostName: %s.demo.localhost\noperatingSystem: %s\nuserAccountControl: %s\n' \
        "$name" "$os" "$uac"
      printf 'objectCategory: computer\nmsDS-SiteName: Demo-Site\n\n'
    done
  } > "$demo/directory.ldif"
  "$root/tests/inventory/slapd.sh" init "$demo/slapd" "$demo/directory.ldif" >/dev/null
  ldaps_port=$(sed -n 's/^LDAPS_PORT=//p' "$demo/slapd/env")
  targets_yaml=$(cat <<YAML
inventory_ldap:
  - name: demo
    urls: [ldaps://127.0.0.1:$ldaps_port]
    bind: simple
    bind_dn: cn=reader,dc=corp,dc=example
    bind_password_file: $demo/ldap.pass
    tls_ca_file: $demo/slapd/ca.crt
    base_dn: dc=corp,dc=example
    refresh_interval: 30s
YAML
)
else
  targets_yaml=$(cat <<YAML
targets:
  - {name: win01.sim.test, connect_address: 127.0.0.1, labels: {site: lab}}
  - {name: win02.sim.test, connect_address: 127.0.0.1, labels: {site: lab}}
  - {name: win03.sim.test, connect_address: 127.0.0.1}
  - {name: slow01.sim.test, connect_address: 127.0.0.1}
  - {name: broken01.sim.test, connect_address: 127.0.0.1}
YAML
)
fi

cat > "$demo/exporter.yml" <<YAML
# Generated by scripts/demo.sh: five simulated hosts on one winrm-sim listener.
global:
  interval: 10s
  timeout: 5s
  per_target_concurrency: 4
  scheme: https
  port: $sim_port
  tls_ca_file: $demo/ca.pem
  credential: demo
credentials:
  demo:
    auth: basic
    username: monitor
    password_file: $demo/monitor.pass
$targets_yaml
YAML

"$exporter_bin" --config.file="$demo/exporter.yml" --web.listen-address="127.0.0.1:$port" &
exporter_pid=$!

# Bounded wait (30 s) until every collector of every host has a result (broken01's are
# failures): each configured collector has a _success series, each polled one a _duration.
hosts=5
start=$(date +%s)
i=0
while :; do
  kill -0 "$exporter_pid" 2>/dev/null || { echo "winrm_exporter exited" >&2; exit 1; }
  page=$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null || true)
  configured=$(printf '%s\n' "$page" | grep -c '^winrm_exporter_collector_success{' || true)
  polled=$(printf '%s\n' "$page" | grep -c '^winrm_exporter_collector_duration_seconds{' || true)
  [ "$configured" -gt 0 ] && [ "$polled" -ge "$configured" ] && break
  i=$((i + 1))
  [ $i -gt 300 ] && { echo "not every collector polled within 30 s ($polled/$configured)" >&2; break; }
  sleep 0.1
done
[ "$configured" -gt 0 ] && [ "$polled" -ge "$configured" ] &&
  echo "data for $hosts/$hosts hosts after $(( $(date +%s) - start )) s ($polled collector results)"

cat <<TEXT

winrm-sim      https://127.0.0.1:$sim_port/wsman  (pid $sim_pid)
winrm_exporter http://127.0.0.1:$port/           (pid $exporter_pid)

  all targets:  curl http://127.0.0.1:$port/metrics
  one target:   curl 'http://127.0.0.1:$port/probe?target=win01.$domain'
  failing host: curl 'http://127.0.0.1:$port/probe?target=broken01.$domain'
  WQL by hand:  $exporter_bin query --config.file=$demo/exporter.yml \\
                  --target=win01.$domain "SELECT Name, State FROM Win32_Service"

Press Ctrl-C to stop both.
TEXT
wait "$exporter_pid"
