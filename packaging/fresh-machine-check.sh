#!/bin/bash
# Checks the README quick start (`make test`, `make demo`) on a fresh Debian 12 machine:
#   1. makes a minbase bookworm root with mmdebstrap (or unpacks FRESH_BASE_TAR);
#   2. enters it with unshare (own mount + PID namespaces, host network) and chroot, and
#      installs only `make git ca-certificates`: the minimum a user needs to clone the repo
#      and type `make` (everything else must come from the Makefile's ensure-packages.sh);
#   3. copies a clean `git clone` of this repository at REV (default HEAD) to /src;
#   4. runs `cd /src && make test` (CI=true) and records exit status, wall time and the
#      ctest summary;
#   5. runs `timeout 60 make demo` in the background on a free loopback port, curls the
#      printed /metrics URL from inside the root, and stops the demo by the timeout's PID
#      (the demo traps SIGTERM and stops winrm-sim and the exporter).
# The root's mounts live only in the private mount namespace and every process it starts
# dies with its PID namespace; the temp dir is removed on exit, also on failure.
# Deviation from a real machine: a policy-rc.d forbids package maintainer scripts to start
# daemons (krb5-kdc, prometheus, ...) on the shared host loopback, as in Docker images.
# mmdebstrap writes no /etc/hosts; the script adds the standard localhost lines every installed
# system has (without them Python cannot resolve "localhost" and kerberos_test_interop fails).
# Network: loopback plus apt to the Debian mirror (URIs of /etc/apt/sources.list.d/debian.sources).
# Heavy: needs root, ~2 GB of disk and ~8-10 min on 2 cores (apt ~20 s, build ~3-4 min,
# ctest ~90 s, then `make build` again before the demo).
# Usage: packaging/fresh-machine-check.sh
# Env:   REV=<commit>             commit to check (default HEAD of this checkout)
#        FRESH_BASE_TAR=base.tar  reuse a `mmdebstrap --variant=minbase bookworm` tarball
#        FRESH_LOG_DIR=dir        where logs and summary.txt go (default /tmp/fresh-machine-<time>)
#        SKIP_DEMO=1              only `make test`
#        KEEP_ROOT=1              keep the temp root (for debugging; mounts are gone anyway)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
rev=$(git -C "$src" rev-parse "${REV:-HEAD}")
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' "$sources" 2>/dev/null | head -n1)
[ -n "$mirror" ] || { echo "no URIs: line in $sources" >&2; exit 1; }
logs=${FRESH_LOG_DIR:-/tmp/fresh-machine-$(date +%Y%m%d-%H%M%S)}

[ "$(id -u)" -eq 0 ] || { echo "needs root (mmdebstrap, chroot, mounts)" >&2; exit 1; }
for tool in mmdebstrap unshare chroot git python3 findmnt; do
  command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
mkdir -p "$logs"
work=$(mktemp -d /var/tmp/fresh-machine.XXXXXX)
root=$work/root
ns_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # unshare --kill-child takes the whole PID namespace (make, demo, tests) with it.
  [ -n "$ns_pid" ] && kill -TERM "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null
  # Mounts were made in a private namespace; if any is visible here, never rm -rf through it.
  if findmnt -rn -o TARGET | grep -q "^$root"; then
    findmnt -rn -o TARGET | grep "^$root" | sort -r | xargs -r -n1 umount -l || true
  fi
  if findmnt -rn -o TARGET | grep -q "^$root"; then
    echo "mounts left under $root: not removing $work" >&2
  elif [ "${KEEP_ROOT:-0}" = 1 ]; then
    echo "kept $work"
  else
    rm -rf --one-file-system "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { echo "== $(date +%T) $*" | tee -a "$logs/summary.txt"; }
t0=$SECONDS
: > "$logs/summary.txt"
step "checking $rev (logs in $logs)"

if [ -n "${FRESH_BASE_TAR:-}" ]; then
  step "unpacking $FRESH_BASE_TAR"
  mkdir "$root"
  tar -C "$root" -xpf "$FRESH_BASE_TAR"
else
  step "mmdebstrap --variant=minbase bookworm from $sources"
  # The .sources file gives bookworm, bookworm-updates and bookworm-security, like a real install.
  mmdebstrap --variant=minbase --quiet bookworm "$root" "$sources" > "$logs/mmdebstrap.log" 2>&1 ||
    { rm -rf --one-file-system "$root"
      mmdebstrap --variant=minbase --quiet bookworm "$root" "$mirror" >> "$logs/mmdebstrap.log" 2>&1; }
fi
echo "base root ready after $((SECONDS - t0)) s" | tee -a "$logs/summary.txt"
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# Every installed Debian system has these lines (the installer, cloud images and container
# runtimes write them); mmdebstrap does not, and without them getaddrinfo("localhost") fails.
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"

step "git clone $src at $rev into /src"
git clone --quiet --no-hardlinks "$src" "$root/src"
git -C "$root/src" checkout --quiet --detach "$rev"
git -C "$root/src" status --short | head -n 5

# A free loopback port for the demo (the root shares the host network namespace).
demo_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Runs inside the chroot as root (a fresh machine's admin); writes /fresh-logs/*.
cat > "$root/fresh-check-inner.sh" <<'INNER'
#!/bin/bash
set -uo pipefail
logs=/fresh-logs
mkdir -p $logs
note() { echo "$*" | tee -a $logs/inner-summary.txt; }
t=$SECONDS
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq > $logs/apt-prereq.log 2>&1 &&
  apt-get install -y -qq --no-install-recommends make git ca-certificates >> $logs/apt-prereq.log 2>&1
note "prereq_install_rc=$? prereq_seconds=$((SECONDS - t))"
note "dpkg_packages_before_make=$(dpkg-query -W | wc -l)"

cd /src || exit 1
t=$SECONDS
CI=true make test > $logs/make-test.log 2>&1
rc=$?
note "make_test_rc=$rc make_test_seconds=$((SECONDS - t))"
note "dpkg_packages_after_make_test=$(dpkg-query -W | wc -l)"
note "ctest_summary=$(grep -E 'tests passed|tests failed' $logs/make-test.log | tail -n1)"
sed -n '/The following tests FAILED/,$p' $logs/make-test.log > $logs/ctest-failed.txt

[ "${SKIP_DEMO:-0}" = 1 ] && exit 0
# Anything the tests changed in the checkout (a rebuild or dirty tree would show up here).
note "source_files_changed_by_test=$(find /src -path /src/build -prune -o -type f -newer /src/build/CMakeCache.txt -print | grep -v '^/src/.git/' | head -n 10 | tr '\n' ' ')"
note "git_status_after_test=$(git -C /src status --short | head -n 10 | tr '\n' ' ')"
# `make demo` starts with `make build`; after `make test` that should be a no-op. Run it
# outside the demo's 60 s bound and count what it recompiles.
t=$SECONDS
make build > $logs/make-build-after-test.log 2>&1
note "make_build_after_test_rc=$? seconds=$((SECONDS - t)) recompiled_objects=$(grep -c 'Building CXX object' $logs/make-build-after-test.log)"
t=$SECONDS
# timeout puts itself in its own process group and forwards SIGTERM to it, so killing
# its PID stops make, demo.sh (which traps TERM) and through it winrm-sim and the exporter.
DEMO_PORT=$DEMO_PORT timeout 60 make demo > $logs/make-demo.log 2>&1 &
demo_pid=$!
url=""
for _ in $(seq 1 600); do   # bounded: 600 x 0.5 s (includes `make build` if test failed early)
  url=$(grep -o 'curl http://127.0.0.1:[0-9]*/metrics' $logs/make-demo.log | head -n1 | cut -d' ' -f2)
  [ -n "$url" ] && break
  kill -0 $demo_pid 2>/dev/null || break
  sleep 0.5
done
note "demo_url=${url:-none} demo_start_seconds=$((SECONDS - t))"
served=0
if [ -n "$url" ]; then
  # /metrics answers at once (target_up 0 before the first poll); wait for the first
  # successful poll of win01 and win02, bounded by 60 x 0.5 s.
  for _ in $(seq 1 60); do
    if curl -sf -o $logs/demo-metrics.txt "$url" &&
       grep -q '^winrm_exporter_target_up{target="win01.sim.test"} 1' $logs/demo-metrics.txt &&
       grep -q '^winrm_exporter_target_up{target="win02.sim.test"} 1' $logs/demo-metrics.txt; then
      served=1; break
    fi
    sleep 0.5
  done
  [ -s $logs/demo-metrics.txt ] && [ $served = 0 ] && served=partial
fi
note "demo_metrics_served=$served after_seconds=$((SECONDS - t)) samples=$(grep -vc '^#' $logs/demo-metrics.txt 2>/dev/null || echo 0)"
note "demo_target_up: $(grep '^winrm_exporter_target_up{' $logs/demo-metrics.txt 2>/dev/null | sed 's/winrm_exporter_target_up//' | tr '\n' ' ')"
sim_pid=$(sed -n 's/^winrm-sim .*(pid \([0-9]*\)).*/\1/p' $logs/make-demo.log)
exp_pid=$(sed -n 's/^winrm_exporter .*(pid \([0-9]*\)).*/\1/p' $logs/make-demo.log)
# A zombie (exited, not yet reaped) counts as stopped.
alive() { [ -r /proc/$1/stat ] && [ "$(cut -d' ' -f3 /proc/$1/stat)" != Z ]; }
kill -TERM $demo_pid 2>/dev/null
wait $demo_pid
demo_rc=$?
# demo.sh's trap stops both and prints "demo stopped"; give it up to 10 s, since this
# script is PID 1 of the namespace and its exit would kill whatever is left.
left=""
for _ in $(seq 1 50); do
  left=""
  for p in $sim_pid $exp_pid; do alive "$p" && left="$left $p"; done
  [ -z "$left" ] && grep -q 'demo stopped' $logs/make-demo.log && break
  sleep 0.2
done
note "demo_stop_rc=$demo_rc demo_stopped_message=$(grep -c 'demo stopped' $logs/make-demo.log) processes_left=${left:-none}"
INNER
chmod 0755 "$root/fresh-check-inner.sh"

step "entering the root: prerequisites, make test, make demo"
t1=$SECONDS
# Private mount namespace: /proc (of the new PID namespace), /dev (with /dev/pts, /dev/shm)
# and /sys disappear with it. --kill-child: if this script dies, everything inside dies too.
unshare --mount --propagation private --pid --fork --kill-child \
  env ROOT="$root" DEMO_PORT="$demo_port" SKIP_DEMO="${SKIP_DEMO:-0}" bash -euc '
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"
    mount --rbind /sys "$ROOT/sys"; mount --make-rslave "$ROOT/sys"
    exec chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 TERM=dumb CI=true DEMO_PORT="$DEMO_PORT" SKIP_DEMO="$SKIP_DEMO" \
      /fresh-check-inner.sh' &
ns_pid=$!
wait $ns_pid || true
ns_pid=""
echo "inside the root: $((SECONDS - t1)) s" | tee -a "$logs/summary.txt"
cp -r "$root/fresh-logs/." "$logs/" 2>/dev/null || true
cat "$logs/inner-summary.txt" >> "$logs/summary.txt" 2>/dev/null || true
[ -s "$logs/ctest-failed.txt" ] && { echo "--- failed tests:"; cat "$logs/ctest-failed.txt"; } >> "$logs/summary.txt"
echo "total_seconds=$((SECONDS - t0))" >> "$logs/summary.txt"
cat "$logs/summary.txt"
grep -q '^make_test_rc=0 ' "$logs/summary.txt"
