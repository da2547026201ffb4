#!/bin/bash
# Checks systemd/winrm-exporter.service with systemd-analyze (systemd 252):
#   verify: must exit 0 AND print nothing (parse warnings such as an unknown key
#           only print, so any output counts as a failure);
#   security --offline: overall exposure must stay at or below 2.0;
#   the unit keeps the settings the daemon relies on (Type=notify, watchdog...).
# A broken copy must be rejected, so the check cannot pass vacuously.
# Usage: verify-unit.sh UNIT_FILE [EXPORTER_BINARY]
set -u
unit=$1
binary=${2:-}
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null ||
  fail "systemd-analyze not found (install the Debian package 'systemd')"
[ -f "$unit" ] || fail "unit file $unit missing"
# verify needs ExecStart to exist: use the built binary, else /bin/true.
[ -n "$binary" ] && [ -x "$binary" ] || binary=/bin/true

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name=$(basename "$unit")
sed "s|^ExecStart=/usr/bin/winrm_exporter|ExecStart=$binary|" "$unit" > "$tmp/$name"
grep -q "^ExecStart=$binary " "$tmp/$name" || fail "ExecStart is not /usr/bin/winrm_exporter ..."

strict_verify() {  # prints the diagnostics, returns 0 only for a clean unit
  local out rc
  out=$(cd "$(dirname "$1")" && systemd-analyze verify --man=no "./$(basename "$1")" 2>&1)
  rc=$?
  [ -n "$out" ] && printf '%s\n' "$out"
  [ $rc -eq 0 ] && [ -z "$out" ]
}

echo "== systemd-analyze verify $name (ExecStart -> $binary)"
strict_verify "$tmp/$name" || fail "systemd-analyze verify reported problems"

for key in Type=notify NotifyAccess=main WatchdogSec= 'ExecReload=/bin/kill -HUP $MAINPID' \
  DynamicUser=yes StateDirectory=winrm-exporter \
  LoadCredential=winrm-exporter:/etc/winrm-exporter/credentials 'Environment=KRB5CCNAME=MEMORY:' \
  ProtectSystem=strict NoNewPrivileges=yes LimitCORE=0; do
  grep -qxF -- "$key" "$tmp/$name" || grep -qF -- "$key" "$tmp/$name" || fail "unit lacks '$key'"
done

echo "== the shipped unit starts Basic, NTLM and Kerberos installs alike"
# LoadCredential= of a single file fails the start when that file is missing (a Basic
# install has no keytab): only whole directories, which the package ships (empty).
while IFS= read -r line; do
  source=${line#*:}
  case $source in
    /etc/winrm-exporter/credentials) ;;
    *) fail "LoadCredential=$line: a missing file stops the start; use the credentials directory" ;;
  esac
done < <(sed -n 's/^LoadCredential=//p' "$tmp/$name")
grep -q '^Environment=KRB5_CLIENT_KTNAME' "$tmp/$name" &&
  fail "KRB5_CLIENT_KTNAME is not used by the exporter (keytab: in the config is)"

echo "== limits follow the worker cap"
src=$(cd "$(dirname "$unit")/.." && pwd)
cap=$(sed -n 's/.*kMaxSchedulerWorkers = \([0-9]*\);.*/\1/p' "$src"/daemon/*.h | head -n1)
[ -n "$cap" ] || fail "kMaxSchedulerWorkers not found in $src/daemon"
tasks=$(sed -n 's/^TasksMax=//p' "$tmp/$name")
# Poll workers, one libcurl resolver thread per worker's connect, ~20 others.
[ -n "$tasks" ] && [ "$tasks" -ge $((2 * cap + 20)) ] ||
  fail "TasksMax=$tasks < 2 x $cap workers + 20 (docs/operations.md#limits)"
grep -q "TasksMax=$tasks" "$src/docs/operations.md" || fail "docs/operations.md does not state TasksMax=$tasks"
memory=$(sed -n 's/^MemoryMax=//p' "$tmp/$name")
grep -q "MemoryMax=$memory" "$src/docs/operations.md" || fail "docs/operations.md does not state MemoryMax=$memory"
echo "TasksMax=$tasks (worker cap $cap), MemoryMax=$memory"

if [ "$binary" != /bin/true ]; then
  echo "== configs reading secrets from \${CREDENTIALS_DIRECTORY}, as the unit provides them"
  store=$tmp/etc-credentials            # stands for /etc/winrm-exporter/credentials
  creds=$tmp/run-credentials            # what systemd makes of it for the service
  mkdir -p "$store" "$creds"
  printf 'secret\n' > "$store/monitor.pass"
  printf 'not a real keytab' > "$store/client.keytab"
  chmod 0600 "$store"/*
  id=$(sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "$tmp/$name")
  for file in "$store"/*; do cp "$file" "$creds/${id}_$(basename "$file")"; done
  for method in basic ntlm kerberos; do
    case $method in
      kerberos) secret="keytab: \"\${CREDENTIALS_DIRECTORY}/${id}_client.keytab\"" ;;
      *) secret="password_file: \"\${CREDENTIALS_DIRECTORY}/${id}_monitor.pass\"" ;;
    esac
    cat > "$tmp/$method.yml" <<YAML
credentials:
  c: {auth: $method, username: monitor@EXAMPLE.COM, $secret}
targets: [{name: win01.example.com, credential: c}]
YAML
    out=$(CREDENTIALS_DIRECTORY=$creds "$binary" --config.file="$tmp/$method.yml" --config.check 2>&1) ||
      fail "$method config with \${CREDENTIALS_DIRECTORY} rejected: $out"
    echo "$method: configuration OK"
  done
  # Negative control: without the variable (not started by systemd) the same file fails.
  env -u CREDENTIALS_DIRECTORY "$binary" --config.file="$tmp/basic.yml" --config.check >/dev/null 2>&1 &&
    fail "a config using \${CREDENTIALS_DIRECTORY} passed without it"
fi

echo "== systemd-analyze security --offline"
sec=$(cd "$tmp" && systemd-analyze security --offline=yes "./$name" 2>&1) ||
  fail "systemd-analyze security failed: $sec"
score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "no exposure score in: $sec"
echo "exposure level: $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"

echo "== negative control: broken copies must be rejected"
mkdir "$tmp/bad"
sed 's/^Type=notify/Tpye=notify/' "$tmp/$name" > "$tmp/bad/$name"
strict_verify "$tmp/bad/$name" >/dev/null && fail "a misspelt key was not detected"
sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/winrm_exporter|' "$tmp/$name" > "$tmp/bad/$name"
strict_verify "$tmp/bad/$name" >/dev/null && fail "a missing ExecStart binary was not detected"
echo "PASS"
