#!/bin/bash
# Throwaway MIT KDC on loopback for the Kerberos tests (adapted from notes/kdc-recipe.sh).
# Usage:
#   kdc.sh init DIR [MAXLIFE]  create realm, principals, keytabs in DIR (a fresh temp dir) and start the KDC
#   kdc.sh start DIR           start the KDC of an existing DIR again (same port, same database)
#   kdc.sh stop DIR            stop it by PID
#   kdc.sh as-req-count DIR [PRINCIPAL]  number of AS requests the KDC logged (for exporter by default)
# DIR/env holds KRB5_CONFIG and the port. Needs krb5-kdc krb5-admin-server krb5-user.
set -euo pipefail
cmd=$1; D=$2
REALM=KRBTEST.COM

# shellcheck source=background.sh
. "$(cd "$(dirname "$0")" && pwd)/background.sh"

kdc_started() {
  local n
  n=$(grep -c "commencing operation" "$D/kdc.log" 2>/dev/null || true)
  [ "${n:-0}" -gt "$before" ]
}

start_kdc() {
  export KRB5_CONFIG=$D/krb5.conf KRB5_KDC_PROFILE=$D/kdc.conf
  local before=0
  [ -f "$D/kdc.log" ] && before=$(grep -c "commencing operation" "$D/kdc.log" || true)
  krb5kdc -n -P "$D/kdc.pid" </dev/null >>"$D/kdc.stdout" 2>&1 &
  echo $! > "$D/kdc.bgpid"
  wait_ready "$D/kdc.bgpid" KDC "$D/kdc.log" kdc_started
}

case $cmd in
init)
  MAXLIFE=${3:-20}
  PORT=$(free_port)
  mkdir -p "$D/db"; : > "$D/kadm5.acl"
  cat > "$D/krb5.conf" <<EOC
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    qualify_shortname = ""
    udp_preference_limit = 1
    clockskew = 5
    kdc_timeout = 1000
    max_retries = 1
    ticket_lifetime = 1h
    renew_lifetime = 2h
[realms]
    $REALM = {
        kdc = 127.0.0.1:$PORT
    }
[domain_realm]
    localhost = $REALM
    .sim.test = $REALM
    sim.test = $REALM
EOC
  cat > "$D/kdc.conf" <<EOC
[kdcdefaults]
    kdc_listen = 127.0.0.1:$PORT
    kdc_tcp_listen = 127.0.0.1:$PORT
[realms]
    $REALM = {
        database_name = $D/db/principal
        key_stash_file = $D/db/stash
        acl_file = $D/kadm5.acl
        max_life = 10m
        max_renewable_life = 30m
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$D/kdc.log
    default = FILE:$D/other.log
EOC
  export KRB5_CONFIG=$D/krb5.conf KRB5_KDC_PROFILE=$D/kdc.conf
  kdb5_util create -s -r $REALM -P masterpw >/dev/null
  ka() { kadmin.local -q "$1" >/dev/null 2>&1; }
  ka "addprinc -randkey +requires_preauth -maxlife \"$MAXLIFE seconds\" -maxrenewlife \"10 minutes\" exporter"
  ka "addprinc -randkey +requires_preauth -maxlife \"$MAXLIFE seconds\" -maxrenewlife \"10 minutes\" renewer"
  ka "addprinc -randkey +requires_preauth ghost"
  for spn in HTTP/localhost HTTP/win01.sim.test WSMAN/win02.sim.test; do ka "addprinc -randkey $spn"; done
  # Stale keys first (kvno 2 stays in wrong.keytab), then the current ones.
  ka "ktadd -k $D/wrong.keytab exporter"
  ka "ktadd -k $D/client.keytab exporter"
  ka "ktadd -k $D/renewer.keytab renewer"
  ka "ktadd -k $D/ghost.keytab ghost"
  ka "delprinc -force ghost"
  ka "ktadd -k $D/http.keytab HTTP/localhost HTTP/win01.sim.test WSMAN/win02.sim.test"
  printf 'KRB5_CONFIG=%s\nKRB5_KDC_PROFILE=%s\nKDC_PORT=%s\nREALM=%s\n' \
    "$D/krb5.conf" "$D/kdc.conf" "$PORT" "$REALM" > "$D/env"
  start_kdc
  ;;
start) start_kdc ;;
stop) stop_pidfile "$D/kdc.bgpid" ;;
as-req-count)
  P=${3:-exporter}
  grep -c "AS_REQ .*: ISSUE: .* $P@$REALM for krbtgt" "$D/kdc.log" || true
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
