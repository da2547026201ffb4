#!/bin/sh
# Generates a throwaway CA and a server certificate for tests and the demo; keys are
# never committed. Usage: gen-certs.sh DIR [DNS names...]
# Writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key. The server cert
# covers localhost, *.sim.test, 127.0.0.1 and any extra names given.
# GEN_CERTS_KEY=ec makes the server key ECDSA P-256 (a handshake costs the server ~15x less
# CPU than with RSA 2048: bench/sim_handshakes.py); default rsa (2048).
set -eu
dir=$1; shift
mkdir -p "$dir"
san="DNS:localhost,DNS:*.sim.test,DNS:sim.test,IP:127.0.0.1"
for n in "$@"; do san="$san,DNS:$n"; done
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=winrm_exporter test CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
usage=digitalSignature,keyEncipherment
newkey=rsa:2048
if [ "${GEN_CERTS_KEY:-rsa}" = ec ]; then
  usage=digitalSignature  # an EC key signs the handshake; it encrypts no key
  newkey="ec -pkeyopt ec_paramgen_curve:P-256"
fi
# shellcheck disable=SC2086  # $newkey is two or three words on purpose
openssl req -newkey $newkey -nodes -subj "/CN=localhost" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf "subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=%s\nextendedKeyUsage=serverAuth\n" "$san" "$usage" > "$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -sha256 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
rm -f "$dir/server.csr" "$dir/ext.cnf" "$dir/ca.srl"
