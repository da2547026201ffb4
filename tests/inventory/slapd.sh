#!/bin/bash
# A throwaway OpenLDAP slapd on loopback with Active Directory-like computer objects, for
# the inventory tests (run directly from a temp slapd.conf, not the system service).
# Usage:
#   slapd.sh init DIR LDIF   schema, TLS certificate for localhost, database loaded from LDIF
#                            (slapadd), then start; DIR/env holds LDAP_PORT, LDAPS_PORT
#   slapd.sh start DIR       start again (same ports, same database)
#   slapd.sh stop DIR        stop it by PID
# GSSAPI binds need DIR/ldap.keytab (ldap/localhost) and KRB5_CONFIG in the environment.
# Needs: slapd ldap-utils openssl python3.
set -euo pipefail
cmd=$1; D=$2
HERE=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=../scripts/background.sh
. "$HERE/../scripts/background.sh"

slapd_answers() {
  ldapsearch -x -LLL -H "ldap://127.0.0.1:$LDAP_PORT" -s base -b "" namingContexts >/dev/null 2>&1
}

start_slapd() {
  # shellcheck disable=SC1091
  . "$D/env"
  local keytab=()
  [ -f "$D/ldap.keytab" ] && keytab=(KRB5_KTNAME="FILE:$D/ldap.keytab" KRB5RCACHENAME="none:")
  # -d 256: stay in the foreground (the PID is ours to stop) and log binds and searches.
  env "${keytab[@]}" slapd -d 256 -f "$D/slapd.conf" \
    -h "ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/" </dev/null >>"$D/slapd.log" 2>&1 &
  echo $! > "$D/slapd.bgpid"
  wait_ready "$D/slapd.bgpid" slapd "$D/slapd.log" slapd_answers
}

case $cmd in
init)
  LDIF=$3
  mkdir -p "$D/db"
  cp "$HERE/ad-computer.schema" "$D/ad-computer.schema"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test ca" \
    -keyout "$D/ca.key" -out "$D/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$D/server.key" \
    -out "$D/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$D/san.ext"
  openssl x509 -req -in "$D/server.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial \
    -days 2 -extfile "$D/san.ext" -out "$D/server.crt" >/dev/null 2>&1
  cat > "$D/slapd.conf" <<EOC
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include $D/ad-computer.schema
pidfile $D/slapd.pid
argsfile $D/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
# Paged searches return every entry (the default 500 would cap the 1,200-entry test).
sizelimit unlimited
# GSSAPI: the service principal is ldap/localhost (the tests connect to localhost).
sasl-host localhost
TLSCertificateFile $D/server.crt
TLSCertificateKeyFile $D/server.key
database mdb
suffix "dc=corp,dc=example"
rootdn "cn=admin,dc=corp,dc=example"
rootpw adminpw
directory $D/db
maxsize 268435456
# Like AD: authenticated users (GSSAPI or simple bind) read computer objects; anonymous
# clients read nothing.
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
EOC
  slapadd -q -f "$D/slapd.conf" -l "$LDIF" >"$D/slapadd.log" 2>&1
  printf 'LDAP_PORT=%s\nLDAPS_PORT=%s\n' "$(free_port)" "$(free_port)" > "$D/env"
  start_slapd
  ;;
start) start_slapd ;;
stop) stop_pidfile "$D/slapd.bgpid" ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
