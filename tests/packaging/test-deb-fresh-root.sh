#!/bin/bash
# The .deb as a Debian 12 admin gets it (label slow: downloads from the Debian mirror):
#   1. packaging/build-deb.sh builds it from BUILD_DIR;
#   2. lintian finds no error or warning (each accepted finding is in
#      packaging/debian/lintian-overrides with its reason), and no override is unused;
#   3. mmdebstrap makes a fresh minbase bookworm root holding only the packages the .deb's
#      Depends names (from /etc/apt/sources.list.d/debian.sources); inside it (mmdebstrap's
#      customize hook: its own mounts, removed with the root) `dpkg -i` must install the .deb
#      with no further package, and then:
#        winrm_exporter --config.check passes on the shipped /etc/winrm-exporter/config.yml,
#        the config is a registered conffile, /etc/winrm-exporter/credentials is root 0700,
#        the man page, copyright and changelog.Debian.gz are there, man renders the page,
#        `dpkg --purge` removes the binary and /etc/winrm-exporter.
# Nothing is cached: the root goes to mmdebstrap's null target and is deleted with it.
# Usage: test-deb-fresh-root.sh SOURCE_DIR BUILD_DIR    (root, network to the mirror)
set -uo pipefail
src=$1
build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (mmdebstrap's root mode, chroot)"
for tool in mmdebstrap lintian help2man dpkg-shlibdeps; do
  command -v $tool >/dev/null || fail "missing $tool (make slow-test-deps)"
done
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || fail "no $sources"

tmp=$(mktemp -d /var/tmp/deb-fresh-root.XXXXXX)
trap 'rm -rf --one-file-system "$tmp"' EXIT
trap 'exit 143' TERM INT   # so the EXIT trap cleans up on ctest's or timeout's kill too
t0=$SECONDS
deb=$("$src/packaging/build-deb.sh" "$build" "$tmp" | tail -n1) || fail "build-deb.sh failed"
[ -f "$deb" ] || fail "no .deb produced"
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes); Depends: $(dpkg-deb -f "$deb" Depends)"

echo "== lintian"
# --fail-on error,warning: informational tags are shown but pass. unused-override would be
# informational, so it is checked separately: every override must still match a finding.
# (No --show-overrides: with it, overridden findings count for --fail-on.)
lintian --fail-on error,warning --display-info "$deb" > "$tmp/lintian.txt" 2>&1
lintian_rc=$?
cat "$tmp/lintian.txt"
[ $lintian_rc = 0 ] || fail "lintian reported errors or warnings"
! grep -E '^[EWI]: .*(unused-override|mismatched-override)' "$tmp/lintian.txt" ||
  fail "a lintian override no longer matches a finding: remove it"

# Depends without version constraints, first alternative of each, for mmdebstrap --include.
include=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
  grep . | paste -sd, -)
[ -n "$include" ] || fail "empty Depends"

cat > "$tmp/inner.sh" <<'INNER'
#!/bin/sh
# Runs in the fresh root as its admin. Every check prints its result; the first failure exits.
set -eu
check() { printf '%s: ' "$1"; shift; if "$@"; then echo ok; else echo FAILED; exit 1; fi; }
deb=$(ls /tmp/winrm-exporter_*.deb)
export DEBIAN_FRONTEND=noninteractive
# dpkg -i, not apt: it installs nothing else, so a missing Depends entry fails here.
dpkg -i "$deb"
check "package installed" sh -c 'dpkg-query -W -f="\${Status}" winrm-exporter | grep -qx "install ok installed"'
check "config.yml is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" winrm-exporter | grep -q "^ /etc/winrm-exporter/config.yml "'
check "credentials dir root 0700" sh -c '[ "$(stat -c %U:%a /etc/winrm-exporter/credentials)" = root:700 ]'
for f in /usr/share/man/man1/winrm_exporter.1.gz /usr/share/doc/winrm-exporter/copyright \
         /usr/share/doc/winrm-exporter/changelog.Debian.gz /lib/systemd/system/winrm-exporter.service; do
  check "$f" test -s "$f"
done
check "man page has the flags" sh -c 'zcat /usr/share/man/man1/winrm_exporter.1.gz | grep -qF "listen\\-address"'
/usr/bin/winrm_exporter --version
check "--config.check on the shipped config" \
  /usr/bin/winrm_exporter --config.file=/etc/winrm-exporter/config.yml --config.check
dpkg --purge winrm-exporter
check "binary removed" test ! -e /usr/bin/winrm_exporter
check "/etc/winrm-exporter purged" test ! -e /etc/winrm-exporter
echo "INNER-PASS"
INNER
chmod 0755 "$tmp/inner.sh"

echo "== mmdebstrap: minbase bookworm + $include, then dpkg -i"
# --skip=cleanup/reproducible: nothing of the root is kept (null target) anyway.
timeout 1380 mmdebstrap --variant=minbase --quiet --include="$include" \
  --customize-hook="copy-in $deb $tmp/inner.sh /tmp" \
  --customize-hook='chroot "$1" /tmp/inner.sh' \
  bookworm /dev/null "$sources" > "$tmp/root.log" 2>&1
rc=$?
cat "$tmp/root.log"
[ $rc = 0 ] || fail "mmdebstrap or a check in the root failed (rc $rc)"
grep -q '^INNER-PASS$' "$tmp/root.log" || fail "the checks in the root did not finish"
echo "PASS in $((SECONDS - t0)) s"
