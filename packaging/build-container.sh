#!/bin/bash
# `make container`: builds the Dockerfile, unchanged, without a Docker engine:
#   1. if docker.io/library/debian:bookworm-slim is not in buildah's local storage, makes it
#      with mmdebstrap (minbase, from /etc/apt/sources.list.d/debian.sources) and imports it,
#      so no registry but Debian's mirror is needed;
#   2. buildah bud --isolation chroot (works as root without systemd, a daemon or cgroups);
#   3. checks the image metadata: numeric non-root USER, ENTRYPOINT, port 9725, KRB5CCNAME.
# Running it (read-only root, no capabilities, a scrape against winrm-sim):
# tests/packaging/test-container.sh. Needs root and the Debian packages buildah, mmdebstrap.
# Usage: packaging/build-container.sh [IMAGE_TAG]   (default localhost/winrm_exporter:<version>)
# Prints the tag on the last line of stdout.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^project([a-z_]* VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
tag=${1:-localhost/winrm_exporter:$version}
base=docker.io/library/debian:bookworm-slim
sources=/etc/apt/sources.list.d/debian.sources

for tool in buildah mmdebstrap python3; do
  command -v $tool >/dev/null || { echo "missing $tool: apt-get install $tool" >&2; exit 1; }
done
work=$(mktemp -d /var/tmp/build-container.XXXXXX)
containers=()
cleanup() {
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # so the EXIT trap cleans up on ctest's or timeout's kill too
step() { echo "== $(date +%T) $*" >&2; }
t0=$SECONDS

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  step "creating $base with mmdebstrap (minbase bookworm from $sources)"
  # The slim image's own dpkg filter: no docs or man pages beyond copyright files.
  mmdebstrap --variant=minbase --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/base.tar" "$sources" >&2
  c=$(buildah from scratch); containers+=("$c")
  buildah add --quiet "$c" "$work/base.tar" / >&2
  buildah config --cmd /bin/bash "$c"
  buildah commit --quiet "$c" "$base" >/dev/null
  rm -f "$work/base.tar"
  step "base image done after $((SECONDS - t0)) s"
fi

revision=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)
step "buildah bud -t $tag (revision $revision)"
t1=$SECONDS
buildah bud --isolation chroot --pull=never --layers=false --build-arg REVISION="$revision" \
  -t "$tag" -f "$src/Dockerfile" "$src" >&2
step "image built in $((SECONDS - t1)) s"

# buildah 1.28's --format has no json function: read the config with python3.
config=$(buildah inspect --type image "$tag" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
print(c.get("User", ""))
print(json.dumps(c.get("Entrypoint")))
print(json.dumps(c.get("Env")))
print(json.dumps(c.get("ExposedPorts")))')
{ read -r user; read -r entrypoint; read -r env; read -r ports; } <<<"$config"
echo "user=$user entrypoint=$entrypoint ports=$ports" >&2
fail() { echo "build-container.sh: $*" >&2; exit 1; }
[[ $user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "USER is not a numeric non-root id"
[ "$entrypoint" = '["/usr/bin/winrm_exporter"]' ] || fail "unexpected ENTRYPOINT"
grep -q 'KRB5CCNAME=MEMORY:' <<<"$env" || fail "KRB5CCNAME is not a MEMORY: cache"
grep -q '9725/tcp' <<<"$ports" || fail "port 9725 not exposed"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag" >&2
step "done in $((SECONDS - t0)) s"
echo "$tag"
