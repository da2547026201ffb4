#!/bin/sh
# Configures a CMake build with the flags a Debian package build uses (dpkg-buildflags with
# hardening=+all: _FORTIFY_SOURCE, stack protector, format security, relro, bindnow, PIE),
# for the .deb and the container (`make deb`, the Dockerfile). Needs dpkg-dev.
# Unity build, as make test's stages: shared headers parsed once per batch of sources (a third
# less compile CPU, scripts/test-all.sh), which the container build and `make test-slow` wait on.
# Usage: packaging/configure-hardened.sh SOURCE_DIR BUILD_DIR [cmake args...]
set -eu
src=$1
build=$2
shift 2
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
  exec cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD=ON "$@"
