#!/bin/bash
# Builds winrm-exporter_<version>_<arch>.deb from an existing CMake build.
# Usage: packaging/build-deb.sh BUILD_DIR [OUT_DIR] [VERSION]
#   BUILD_DIR  CMake build dir holding daemon/winrm_exporter (required, must be built)
#   OUT_DIR    where the .deb goes (default: BUILD_DIR)
#   VERSION    package version (default: project(VERSION) from CMakeLists.txt)
# Prints the path of the .deb on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:?usage: build-deb.sh BUILD_DIR [OUT_DIR] [VERSION]}
out=${2:-$build}
version=${3:-$(sed -n 's/^project([a-z_]* VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")}
[ -n "$version" ] || { echo "build-deb.sh: no version found" >&2; exit 1; }
binary=$build/daemon/winrm_exporter
[ -x "$binary" ] || { echo "build-deb.sh: $binary not built" >&2; exit 1; }
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
doc=$stage/usr/share/doc/winrm-exporter
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$doc"
# Strip debug info: RelWithDebInfo binaries are several times larger.
install -m 0755 "$binary" "$stage/usr/bin/winrm_exporter"
if command -v strip >/dev/null; then strip --strip-unneeded "$stage/usr/bin/winrm_exporter"; fi
install -m 0644 "$src/systemd/winrm-exporter.service" "$stage/lib/systemd/system/"
[ -f "$src/docs/operations.md" ] && install -m 0644 "$src/docs/operations.md" "$doc/"
[ -f "$src/README.md" ] && install -m 0644 "$src/README.md" "$doc/"
if [ -d "$src/config/examples" ]; then
  install -d "$doc/examples"
  find "$src/config/examples" -maxdepth 1 -type f -exec install -m 0644 {} "$doc/examples/" \;
fi
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
  "$here/debian-control.in" > "$stage/DEBIAN/control"

mkdir -p "$out"
deb=$out/winrm-exporter_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
