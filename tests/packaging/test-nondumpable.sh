#!/bin/bash
# The running daemon is non-dumpable (PR_SET_DUMPABLE=0, daemon/main.cpp), so a process of
# the same uid cannot read its memory, environment or attach to it, and no core is written.
# Observable from outside through /proc: the files of a non-dumpable process belong to root,
# and ptrace_may_access() refuses a reader without CAP_SYS_PTRACE. The check runs the
# exporter and a control process (sleep, dumpable) as the same unprivileged uid and reads
# both processes' /proc/<pid>/environ as that uid: the control's must be readable and owned
# by the uid (else the check proves nothing), the exporter's must be root's and unreadable.
# As root the uid is nobody (setpriv); otherwise the caller's own uid.
# Usage: test-nondumpable.sh EXPORTER_BINARY
set -u
exporter=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$exporter" ] || fail "$exporter is not built"
command -v curl >/dev/null || fail "curl not found (Debian package curl)"

tmp=$(mktemp -d)
chmod 0755 "$tmp"
exporter_pid=""
control_pid=""
cleanup() {
  [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null && wait "$exporter_pid" 2>/dev/null
  [ -n "$control_pid" ] && kill "$control_pid" 2>/dev/null && wait "$control_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ "$(id -u)" = 0 ]; then
  uid=65534
  as_user=(setpriv --reuid="$uid" --regid=65534 --clear-groups --inh-caps=-all)
else
  uid=$(id -u)
  as_user=()
fi
printf 'global:\n  interval: 30s\ntargets: []\n' > "$tmp/config.yml"
chmod 0644 "$tmp/config.yml"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The same marker in both environments, so "readable" means the real environ was read.
WINRM_TEST_MARKER=nondumpable-$$ "${as_user[@]}" "$exporter" --config.file="$tmp/config.yml" \
  --web.listen-address="127.0.0.1:$port" > "$tmp/exporter.log" 2>&1 &
exporter_pid=$!
WINRM_TEST_MARKER=nondumpable-$$ "${as_user[@]}" sleep 60 &
control_pid=$!

# Bounded (20 s): serving /metrics means main() is well past its prctl.
for _ in $(seq 1 200); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" && break
  kill -0 $exporter_pid 2>/dev/null || { cat "$tmp/exporter.log"; fail "the exporter exited"; }
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" || fail "the exporter did not serve /metrics"

for pid in $exporter_pid $control_pid; do
  [ "$(awk '$1 == "Uid:" { print $2 }' /proc/$pid/status)" = "$uid" ] || fail "pid $pid does not run as uid $uid"
done
# Control: a dumpable process of the same uid is readable by that uid.
[ "$(stat -c %u /proc/$control_pid/environ)" = "$uid" ] || fail "control's environ is not owned by $uid"
"${as_user[@]}" cat /proc/$control_pid/environ 2>/dev/null | tr '\0' '\n' |
  grep -qx "WINRM_TEST_MARKER=nondumpable-$$" || fail "control: uid $uid cannot read a dumpable process's environ"

owner=$(stat -c %u /proc/$exporter_pid/environ)
echo "environ owner: exporter uid $owner, control uid $(stat -c %u /proc/$control_pid/environ)"
[ "$owner" = 0 ] || fail "the exporter's /proc files belong to uid $owner, not root: it is dumpable"
if "${as_user[@]}" cat /proc/$exporter_pid/environ > "$tmp/read" 2> "$tmp/read.err"; then
  fail "uid $uid read the exporter's environ ($(wc -c < "$tmp/read") bytes)"
fi
grep -q 'Permission denied' "$tmp/read.err" || { cat "$tmp/read.err"; fail "unexpected error reading environ"; }
echo "uid $uid reading the exporter's environ: $(cat "$tmp/read.err")"
echo "PASS"
