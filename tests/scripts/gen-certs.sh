#!/bin/sh
# Generates a throwaway CA and a server certificate for tests and the demo; keys are
# never committed. Usage: gen-certs.sh DIR [DNS names...]
# Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key. The server cert
# covers localhost, *.sim.test, 127.0.0.1 and any extra names given.
set -eu
dir=$1; shift
mkdir -p "$dir"
san="DNS:localhost,DNS:*.sim.test,DNS:sim.test,IP:127.0.0.1"
for n in "$@"; do san="$san,DNS:$n"; done
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=winrm_exporter test CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf "subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" "$san" > "$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -sha256 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr" "$dir/ext.cnf" "$dir/ca.srl"
