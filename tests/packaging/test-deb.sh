#!/bin/bash
# Builds the .deb with packaging/build-deb.sh into a temp dir and checks its
# contents (binary, unit, conffile, man page, copyright, changelog, overrides), its
# control fields, and that every shared library the exporter links directly comes
# from a package listed in Depends (dpkg-shlibdeps computes it; this cross-checks).
# Lintian and an install in a fresh root: test-deb-fresh-root.sh (label slow).
# Usage: test-deb.sh SOURCE_DIR BUILD_DIR   (fails when the exporter is not built)
set -u
src=$1
build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$build/daemon/winrm_exporter" ] || fail "$build/daemon/winrm_exporter is not built"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
deb=$("$src/packaging/build-deb.sh" "$build" "$tmp" | tail -n1) || fail "build-deb.sh failed"
[ -f "$deb" ] || fail "no .deb produced (got '$deb')"
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

listing=$(dpkg-deb -c "$deb") || fail "dpkg-deb -c failed"
for path in ./usr/bin/winrm_exporter ./lib/systemd/system/winrm-exporter.service \
    ./etc/winrm-exporter/config.yml ./usr/share/man/man1/winrm_exporter.1.gz \
    ./usr/share/doc/winrm-exporter/copyright ./usr/share/doc/winrm-exporter/changelog.Debian.gz \
    ./usr/share/lintian/overrides/winrm-exporter; do
  grep -qE "[[:space:]]$path\$" <<<"$listing" || fail "$path missing from the package"
done
grep -E '[[:space:]]\./usr/bin/winrm_exporter$' <<<"$listing" | grep -q '^-rwxr-xr-x root/root' ||
  fail "usr/bin/winrm_exporter is not root-owned 0755"

for field in Package Version Architecture Depends Description; do
  dpkg-deb -f "$deb" "$field" | grep -q . || fail "control field $field is empty"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/winrm-exporter/config.yml ||
  fail "/etc/winrm-exporter/config.yml is not a conffile"
head -n1 "$(dirname "$0")/../../packaging/debian/copyright" | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
  fail "copyright is not in the machine-readable format"
for script in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$script" >/dev/null 2>&1 || fail "maintainer script $script missing"
  sh -n <(dpkg-deb -I "$deb" "$script") || fail "$script has a syntax error"
done

# Depends must cover the direct NEEDED libraries of the packaged binary.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/[[:space:]]//g' | grep .)
dpkg-deb -x "$deb" "$tmp/root"
bin=$tmp/root/usr/bin/winrm_exporter
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || fail "readelf found no NEEDED entries"
# One ldd and one dpkg -S for all libraries: each dpkg -S reads the whole file database
# (over a second apiece on a busy machine). Both the ldd path and its target are asked,
# since usrmerge puts the same file under /lib and /usr/lib.
ldd_out=$(ldd "$bin")
paths=()
for lib in $needed; do
  path=$(awk -v l="$lib" '$1 == l { print $3 }' <<<"$ldd_out")
  [ -n "$path" ] && [ -e "$path" ] && paths+=("$path" "$(readlink -f "$path")")
done
owners=$(dpkg -S "${paths[@]}" 2>/dev/null)
missing=0
for lib in $needed; do
  path=$(awk -v l="$lib" '$1 == l { print $3 }' <<<"$ldd_out")
  [ -n "$path" ] && [ -e "$path" ] || { echo "cannot resolve $lib" >&2; missing=1; continue; }
  real=$(readlink -f "$path")
  pkg=$(awk -F': ' -v p="$path" -v r="$real" '$2 == p || $2 == r { print $1; exit }' <<<"$owners")
  pkg=${pkg%%:*}
  [ -n "$pkg" ] || { echo "no package owns $path" >&2; missing=1; continue; }
  # The package itself or a name it Provides (libspdlog1.10 provides libspdlog1.10-fmt9).
  provides=$(dpkg-query -W -f='${Provides}' "$pkg" | tr ',' '\n' | sed 's/(.*)//; s/[[:space:]]//g')
  found=0
  for name in $pkg $provides; do grep -qx "$name" <<<"$depends" && found=1; done
  [ $found = 1 ] || { echo "$lib ($pkg) not in Depends" >&2; missing=1; }
done
[ $missing -eq 0 ] || fail "Depends is incomplete"
echo "Depends covers: $(echo $needed)"
echo "PASS"
