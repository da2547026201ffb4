#!/bin/bash
# Builds the real Dockerfile without a Docker engine and runs the image:
#   1. if docker.io/library/debian:bookworm-slim is not in local storage, makes it
#      with mmdebstrap (minbase) and imports it with buildah;
#   2. buildah bud --isolation chroot (the multi-stage Dockerfile, unchanged);
#   3. checks the image metadata (numeric non-root user, entrypoint, port, KRB5CCNAME),
#      buildah runs it (its own USER) with --version and --help, and once as a server
#      with an empty target list: /metrics and /-/healthy must answer from the host.
# Heavy (minutes, needs root and network to the Debian mirror); not part of `make test`.
# Usage: packaging/docker-build-check.sh [IMAGE_TAG]     (default winrm_exporter:check)
#        SKIP_BUILD=1 packaging/docker-build-check.sh    re-checks an image built before
# Needs the Debian packages buildah and mmdebstrap.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-winrm_exporter:check}
base=docker.io/library/debian:bookworm-slim
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
[ -n "$mirror" ] || { echo "set DEBIAN_MIRROR (no URIs: line in debian.sources)" >&2; exit 1; }

for tool in buildah mmdebstrap curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done
work=$(mktemp -d)
containers=()
cleanup() {
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $(date +%T) $*"; }
t0=$SECONDS

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  step "creating $base with mmdebstrap from $mirror"
  mmdebstrap --variant=minbase --quiet bookworm "$work/base.tar" "$mirror"
  c=$(buildah from scratch); containers+=("$c")
  buildah add --quiet "$c" "$work/base.tar" /
  buildah config --cmd /bin/bash "$c"
  buildah commit --quiet "$c" "$base" >/dev/null
  echo "base image done after $((SECONDS - t0)) s"
fi

if [ "${SKIP_BUILD:-0}" = 1 ]; then
  step "SKIP_BUILD=1: checking the existing $tag"
else
  step "buildah bud -t $tag"
  t1=$SECONDS
  buildah bud --isolation chroot --pull=never --layers=false --build-arg REVISION="$(git -C "$src" rev-parse --short HEAD 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)" -t "$tag" -f "$src/Dockerfile" "$src"
  echo "image built in $((SECONDS - t1)) s"
fi

step "checking image metadata"
# buildah 1.28's --format has no json function: read the config with python3.
config=$(buildah inspect --type image "$tag" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
print(c.get("User", ""))
print(json.dumps(c.get("Entrypoint")))
print(json.dumps(c.get("Env")))
print(json.dumps(c.get("ExposedPorts")))')
{ read -r user; read -r entrypoint; read -r env; read -r ports; } <<<"$config"
echo "user=$user entrypoint=$entrypoint ports=$ports"
[[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || { echo "USER is not a numeric non-root id" >&2; exit 1; }
[ "$entrypoint" = '["/usr/bin/winrm_exporter"]' ] || { echo "unexpected ENTRYPOINT" >&2; exit 1; }
grep -q 'KRB5CCNAME=MEMORY:' <<<"$env" || { echo "KRB5CCNAME is not a MEMORY: cache" >&2; exit 1; }
grep -q '9725/tcp' <<<"$ports" || { echo "port 9725 not exposed" >&2; exit 1; }

step "running the image"
c=$(buildah from --pull-never "$tag"); containers+=("$c")
uid=$(buildah run --isolation chroot "$c" -- id -u)
[ "$uid" = "${user%%:*}" ] || { echo "runs as uid $uid, expected ${user%%:*}" >&2; exit 1; }
buildah run --isolation chroot "$c" -- /usr/bin/winrm_exporter --version
buildah run --isolation chroot "$c" -- /usr/bin/winrm_exporter --help | head -n 40
# Every shared library resolves inside the runtime image.
if buildah run --isolation chroot "$c" -- ldd /usr/bin/winrm_exporter | grep 'not found'; then
  echo "missing runtime libraries in the image" >&2; exit 1
fi

step "serving /metrics from the image (host network, empty target list)"
mkdir -m 0755 "$work/etc"
printf 'global:\n  interval: 30s\ntargets: []\n' > "$work/etc/config.yml"
chmod 0644 "$work/etc/config.yml"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 120 buildah run --isolation chroot -v "$work/etc:/etc/winrm-exporter:ro" "$c" -- \
  /usr/bin/winrm_exporter --config.file=/etc/winrm-exporter/config.yml \
  --web.listen-address="127.0.0.1:$port" > "$work/run.log" 2>&1 &
run_pid=$!
served=0
for _ in $(seq 1 100); do
  if curl -sf -o "$work/metrics.txt" "http://127.0.0.1:$port/metrics"; then served=1; break; fi
  kill -0 $run_pid 2>/dev/null || break
  sleep 0.2
done
healthy=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/-/healthy" || true)
kill -TERM $run_pid 2>/dev/null || true   # timeout forwards it to buildah, which stops the container
wait $run_pid 2>/dev/null || true
if [ $served != 1 ] || ! grep -q '^winrm_exporter_build_info{' "$work/metrics.txt"; then
  echo "the containerised exporter did not serve /metrics:" >&2; cat "$work/run.log" >&2; exit 1
fi
[ "$healthy" = 200 ] || { echo "/-/healthy answered $healthy" >&2; exit 1; }
echo "/metrics served $(grep -vc '^#' "$work/metrics.txt") samples, /-/healthy 200"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
echo "docker-build-check: OK in $((SECONDS - t0)) s"
