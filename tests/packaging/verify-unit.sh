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
  DynamicUser=yes StateDirectory=winrm-exporter LoadCredential=client.keytab: \
  'Environment=KRB5_CLIENT_KTNAME=FILE:%d/client.keytab' 'Environment=KRB5CCNAME=MEMORY:' \
  ProtectSystem=strict NoNewPrivileges=yes; do
  grep -qF -- "$key" "$tmp/$name" || fail "unit lacks '$key'"
done

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
