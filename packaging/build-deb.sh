#!/bin/bash
# Builds winrm-exporter_<version>_<arch>.deb from an existing CMake build with dpkg-dev's own
# tools, as debhelper would: dpkg-shlibdeps computes Depends from the binary's libraries,
# dpkg-gencontrol writes the control file from packaging/debian/{control,changelog}.
# Contents: the stripped binary, its man page (help2man, from --help and --version), the
# systemd unit, the default configuration as a conffile, the machine-readable copyright,
# changelog.Debian.gz (packaging/debian/changelog), the upstream changelog, docs, examples
# and the lintian overrides (each with its reason).
# No sysusers.d/tmpfiles.d: the unit has DynamicUser=yes and systemd makes its State/Runtime
# directories; postinst makes /etc/winrm-exporter/credentials (0700).
# Usage: packaging/build-deb.sh BUILD_DIR [OUT_DIR]
#   BUILD_DIR  CMake build dir holding daemon/winrm_exporter (required, must be built)
#   OUT_DIR    where the .deb goes (default: BUILD_DIR)
# `make deb` builds BUILD_DIR with dpkg-buildflags (hardening) first. Needs dpkg-dev,
# help2man, chrpath (`make deb-deps`).
# Prints the path of the .deb on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
build=${1:?usage: build-deb.sh BUILD_DIR [OUT_DIR]}
out=${2:-$build}
binary=$build/daemon/winrm_exporter
[ -x "$binary" ] || { echo "build-deb.sh: $binary not built" >&2; exit 1; }
for tool in dpkg-shlibdeps dpkg-gencontrol dpkg-parsechangelog help2man chrpath; do
  command -v $tool >/dev/null || { echo "build-deb.sh: missing $tool (make deb-deps)" >&2; exit 1; }
done

# The changelog names the package version; its upstream part must be the CMake project's,
# so a version bump needs a packaging/debian/changelog entry.
upstream=$(sed -n 's/^project([a-z_]* VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
if [ "${version%-*}" != "$upstream" ]; then
  echo "build-deb.sh: packaging/debian/changelog is at $version, CMakeLists.txt at $upstream" >&2
  exit 1
fi
arch=$(dpkg --print-architecture)
# Reproducible timestamps (gzip -n, dpkg-deb, help2man's date) from the changelog entry.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/winrm-exporter
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/winrm-exporter" \
  "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides" "$doc/examples"

# Debug info and the compiler's notes are not shipped (RelWithDebInfo is several times larger).
install -m 0755 "$binary" "$root/usr/bin/winrm_exporter"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/winrm_exporter"
# CMake's build-tree RUNPATH (pkg-config's mit-krb5 link directory, which holds only the -dev
# symlinks): the installed binary finds every library in the default path.
if readelf -d "$root/usr/bin/winrm_exporter" | grep -qE '\((RUNPATH|RPATH)\)'; then
  chrpath -d "$root/usr/bin/winrm_exporter" >/dev/null
fi
install -m 0644 "$src/systemd/winrm-exporter.service" "$root/lib/systemd/system/"
install -m 0644 "$here/config.yml" "$root/etc/winrm-exporter/config.yml"

# --version-string: the first line of --version ("winrm_exporter, version ...") would make
# the page's name "winrm_exporter,".
help2man --no-info --no-discard-stderr --section=1 --version-string="winrm_exporter $upstream" \
  --name="Prometheus exporter for Windows hosts over WinRM" \
  --output="$stage/winrm_exporter.1" "$root/usr/bin/winrm_exporter"
gzip -9n -c "$stage/winrm_exporter.1" > "$root/usr/share/man/man1/winrm_exporter.1.gz"

install -m 0644 "$here/debian/copyright" "$doc/copyright"
gzip -9n -c "$here/debian/changelog" > "$doc/changelog.Debian.gz"
gzip -9n -c "$src/CHANGELOG.md" > "$doc/changelog.gz"
for f in README.md SECURITY.md config/CONFIG.md docs/operations.md; do
  install -m 0644 "$src/$f" "$doc/"
done
find "$src/config/examples" -maxdepth 1 -type f -exec install -m 0644 {} "$doc/examples/" \;
install -m 0644 "$here/debian/lintian-overrides" "$root/usr/share/lintian/overrides/winrm-exporter"
chmod 0644 "$root/usr/share/man/man1/winrm_exporter.1.gz" "$doc"/*.gz

for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
install -m 0644 "$here/debian/conffiles" "$root/DEBIAN/conffiles"

# dpkg-shlibdeps and dpkg-gencontrol read debian/control and debian/changelog from the cwd.
mkdir "$stage/debian"
cp "$here/debian/control" "$here/debian/changelog" "$stage/debian/"
(cd "$stage" &&
  dpkg-shlibdeps -Tdebian/substvars -e root/usr/bin/winrm_exporter 2> debian/shlibdeps.err ||
    { cat debian/shlibdeps.err >&2; exit 1; }
  dpkg-gencontrol -pwinrm-exporter -Proot -Tdebian/substvars -fdebian/files)
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

mkdir -p "$out"
deb=$out/winrm-exporter_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
