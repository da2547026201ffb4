#!/bin/bash
# The container image as an orchestrator runs it (label slow: builds the Dockerfile, which
# downloads Debian packages):
#   1. `make container`'s script (packaging/build-container.sh) builds the Dockerfile with
#      buildah; the image is removed again at the end (the debian base stays in storage).
#   2. The image's root filesystem (buildah mount) runs in its own mount, PID, IPC and UTS
#      namespaces (host network: loopback only), mounted READ-ONLY, with a fresh /proc, a
#      /dev of null/zero/random/urandom, and the config directory bound read-only. Inside,
#      setpriv switches to the image's USER, clears the bounding, inheritable and ambient
#      capability sets and sets no_new_privs, then runs the image's ENTRYPOINT with the
#      image's ENV (podman/crun cannot set rlimits under this machine's sandbox; this is
#      what `docker run --read-only --cap-drop=ALL` amounts to).
#   3. The exporter polls a winrm-sim (BUILD_DIR's, on loopback, HTTPS, Basic) and /metrics,
#      scraped with curl, shows the simulated host up with data.
#   4. Proof of the sandbox: the exporter's /proc/<pid>/status has CapEff, CapPrm, CapBnd
#      and CapAmb 0, NoNewPrivs 1 and the image's uid; a write to / as root in the same
#      mount namespace fails with "Read-only file system".
# Every process is stopped by PID; every wait is bounded.
# Usage: test-container.sh SOURCE_DIR BUILD_DIR     (root; buildah, mmdebstrap)
# Env:   CONTAINER_IMAGE=TAG  run an image built before (`make container`) instead of building
#        one; it is not removed.
set -uo pipefail
src=$1
build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (buildah, mounts, namespaces)"
for tool in buildah mmdebstrap unshare curl python3 openssl; do
  command -v $tool >/dev/null || fail "missing $tool (make slow-test-deps)"
done
sim_bin=$build/sim/winrm-sim
[ -x "$sim_bin" ] || fail "$sim_bin is not built"

tmp=$(mktemp -d /var/tmp/test-container.XXXXXX)
chmod 0755 "$tmp"
tag=${CONTAINER_IMAGE:-localhost/winrm_exporter:test-$$}
ctr=""
sim_pid=""
ns_pid=""
cleanup() {
  [ -n "$ns_pid" ] && kill -TERM "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  if [ -n "$ctr" ]; then buildah umount "$ctr" >/dev/null 2>&1; buildah rm "$ctr" >/dev/null 2>&1; fi
  [ -n "${CONTAINER_IMAGE:-}" ] || buildah rmi "$tag" >/dev/null 2>&1
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # so the EXIT trap cleans up on ctest's or timeout's kill too
t0=$SECONDS

if [ -n "${CONTAINER_IMAGE:-}" ]; then
  echo "== running the existing $tag"
else
  echo "== make container (packaging/build-container.sh $tag)"
  timeout 2100 "$src/packaging/build-container.sh" "$tag" > "$tmp/build.log" 2>&1
  rc=$?
  tail -n 40 "$tmp/build.log"
  [ $rc = 0 ] || fail "the image did not build (rc $rc)"
  echo "image built after $((SECONDS - t0)) s"
fi

# What the image says to run: USER, ENTRYPOINT, ENV.
buildah inspect --type image "$tag" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
user = c["User"].split(":")
print(user[0]); print(user[1] if len(user) > 1 else user[0])
print(" ".join(c["Entrypoint"]))
print("\0".join(c.get("Env", [])), end="")' > "$tmp/image-config"
{ read -r uid; read -r gid; read -r entrypoint; } < "$tmp/image-config"
env_file=$tmp/image-env
tail -n +4 "$tmp/image-config" | tr '\0' '\n' > "$env_file"
[[ $uid =~ ^[1-9][0-9]*$ ]] || fail "image USER '$uid' is not a numeric non-root uid"
echo "image: uid $uid gid $gid entrypoint $entrypoint env $(tr '\n' ' ' < "$env_file")"

ctr=$(buildah from --pull-never "$tag") || fail "buildah from"
rootfs=$(buildah mount "$ctr") || fail "buildah mount"

# winrm-sim with one host; the exporter's config, CA and password in a read-only bind.
sh "$src/tests/scripts/gen-certs.sh" "$tmp/sim" >/dev/null || fail "gen-certs.sh"
password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cat > "$tmp/sim/sim.yml" <<YAML
https: {address: 127.0.0.1, port: 0, cert: $tmp/sim/server.pem, key: $tmp/sim/server.key}
users:
  - {username: monitor, password: "$password"}
hosts:
  - {name: win01.sim.test, cpus: 4}
YAML
"$sim_bin" --config "$tmp/sim/sim.yml" --ports-file "$tmp/sim/ports" --log-level warn > "$tmp/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do
  [ -s "$tmp/sim/ports" ] && break
  kill -0 $sim_pid 2>/dev/null || { cat "$tmp/sim.log"; fail "winrm-sim exited"; }
  sleep 0.1
done
sim_port=$(awk '$1 == "https" {print $2}' "$tmp/sim/ports")
[ -n "$sim_port" ] || fail "winrm-sim did not report its port"

etc=$tmp/etc
mkdir -m 0755 "$etc"
cp "$tmp/sim/ca.pem" "$etc/ca.pem"
printf '%s\n' "$password" > "$etc/monitor.pass"
chown "$uid:$gid" "$etc/monitor.pass" && chmod 0600 "$etc/monitor.pass"
cat > "$etc/config.yml" <<YAML
global:
  interval: 5s
  timeout: 4s
  scheme: https
  port: $sim_port
  tls_ca_file: /etc/winrm-exporter/ca.pem
  credential: sim
  collectors: [os, cpu]
credentials:
  sim: {auth: basic, username: monitor, password_file: /etc/winrm-exporter/monitor.pass}
targets:
  - {name: win01.sim.test, connect_address: 127.0.0.1}
YAML
chmod 0644 "$etc/config.yml" "$etc/ca.pem"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Runs in the new namespaces as root: builds the read-only view, starts the exporter as
# the image's user without capabilities, records its status and the write attempt, and
# stops it when $tmp/stop appears (or after 120 s).
cat > "$tmp/run.sh" <<'RUN'
set -u
mount --make-rprivate /
mount -t proc proc /proc   # this PID namespace's view, for the exporter's status below
mount --bind "$ROOTFS" "$ROOTFS"
mount -t proc -o nosuid,nodev,noexec proc "$ROOTFS/proc"
mount -t tmpfs -o nosuid,mode=0755,size=1m tmpfs "$ROOTFS/dev"
for d in null zero random urandom; do touch "$ROOTFS/dev/$d"; mount --bind "/dev/$d" "$ROOTFS/dev/$d"; done
mount -t tmpfs -o nosuid,nodev,mode=1777,size=16m tmpfs "$ROOTFS/tmp"
mount --bind "$ETC" "$ROOTFS/etc/winrm-exporter"
mount -o remount,bind,ro "$ROOTFS/etc/winrm-exporter"
mount -o remount,bind,ro "$ROOTFS"
if chroot "$ROOTFS" /bin/sh -c 'echo x > /written-by-root' 2> "$OUT/write.err"; then
  echo "write to / succeeded" > "$OUT/write.err"
else
  echo fails > "$OUT/write.result"
fi
# env -i + the image's ENV: nothing of this script's environment leaks in.
mapfile -t image_env < "$ENV_FILE"
chroot "$ROOTFS" /usr/bin/env -i "${image_env[@]}" \
  setpriv --reuid="$UID_" --regid="$GID_" --clear-groups \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs \
    $ENTRYPOINT --config.file=/etc/winrm-exporter/config.yml \
    --web.listen-address="127.0.0.1:$PORT" > "$OUT/exporter.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do   # chroot, env and setpriv exec in turn: wait for the exporter
  grep -q '^Name:[[:space:]]*winrm_exporter$' "/proc/$pid/status" 2>/dev/null && break
  sleep 0.1
done
cp "/proc/$pid/status" "$OUT/exporter.status" 2>/dev/null
touch "$OUT/started"
for _ in $(seq 1 1200); do
  [ -e "$OUT/stop" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
cp "/proc/$pid/status" "$OUT/exporter.status.late" 2>/dev/null
kill -TERM $pid 2>/dev/null
wait $pid
echo "exporter exit status $?" >> "$OUT/exporter.log"
RUN
out=$tmp/out
mkdir "$out"
unshare --mount --pid --ipc --uts --fork --kill-child \
  env ROOTFS="$rootfs" ETC="$etc" OUT="$out" ENV_FILE="$env_file" UID_="$uid" GID_="$gid" \
  ENTRYPOINT="$entrypoint" PORT="$port" bash "$tmp/run.sh" &
ns_pid=$!
for _ in $(seq 1 100); do
  [ -e "$out/started" ] && break
  kill -0 $ns_pid 2>/dev/null || break
  sleep 0.1
done
[ -e "$out/started" ] || { cat "$out/exporter.log" 2>/dev/null; fail "the container did not start"; }

# Bounded (60 s): the exporter answers and win01's os collector has succeeded.
ok=0
for _ in $(seq 1 120); do
  if curl -sf -o "$tmp/metrics.txt" "http://127.0.0.1:$port/metrics" &&
     grep -q '^winrm_exporter_collector_success{[^}]*target="win01.sim.test"[^}]*collector="os"} 1' "$tmp/metrics.txt"; then
    ok=1; break
  fi
  kill -0 $ns_pid 2>/dev/null || break
  sleep 0.5
done
# The image's curl as the Kubernetes exec probes use it (packaging/kubernetes/), as the
# image's user; the rootfs is reachable from here, and stdout avoids writing into it.
probe=$(chroot "$rootfs" /usr/bin/env -i setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  curl --fail --silent --max-time 5 "http://127.0.0.1:$port/-/healthy") || probe="failed: $probe"
touch "$out/stop"
wait $ns_pid
ns_pid=""
echo "--- exporter log (last lines)"; tail -n 15 "$out/exporter.log"
[ $ok = 1 ] || fail "no successful poll of win01 on /metrics within 60 s"
grep -q '^windows_os_info{' "$tmp/metrics.txt" || fail "no windows_os_info on /metrics"
[ "$probe" = Healthy. ] || fail "the image's curl probe of /-/healthy: $probe"
echo "/metrics: $(grep -vc '^#' "$tmp/metrics.txt") samples, win01 os collector success 1"

echo "--- exporter /proc/<pid>/status"
grep -E '^(Name|Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' "$out/exporter.status" ||
  fail "no status of the exporter recorded"
field() { awk -v k="$1:" '$1 == k { print $2 }' "$out/exporter.status"; }
[ "$(field Name)" = winrm_exporter ] || fail "the recorded process is $(field Name), not the exporter"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
  [ "$(field $cap)" = 0000000000000000 ] || fail "$cap is $(field $cap), not 0"
done
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs is not set"
[ "$(field Uid)" = "$uid" ] || fail "runs as uid $(field Uid), not the image's $uid"
grep -q 'Read-only file system' "$out/write.err" && [ -e "$out/write.result" ] ||
  { cat "$out/write.err"; fail "a write to the container's / did not fail as read-only"; }
echo "write to / as root: $(cat "$out/write.err")"
grep -q 'exporter exit status 0' "$out/exporter.log" || fail "the exporter did not exit 0 on SIGTERM"
echo "PASS in $((SECONDS - t0)) s"
