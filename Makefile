# Quick start: `make demo` and `make test`. Both install missing Debian packages first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

# python3: configuring the project needs it (tests/collectors/CMakeLists.txt), even for one target.
BUILD_PACKAGES := python3 cmake g++ make pkg-config libcpp-httplib-dev libssl-dev zlib1g-dev libdeflate-dev libbrotli-dev \
  libkrb5-dev libtinyxml2-dev libyaml-cpp-dev libspdlog-dev libfmt-dev doctest-dev \
  libcurl4-openssl-dev libcrypt-dev libldap-dev libsasl2-dev libsasl2-modules-gssapi-mit \
  nlohmann-json3-dev
TEST_PACKAGES := openssl curl ca-certificates krb5-kdc krb5-admin-server krb5-user prometheus tinyproxy stunnel4 \
  python3 python3-winrm python3-requests-kerberos python3-gssapi gss-ntlmssp systemd \
  python3-yaml python3-kubernetes slapd ldap-utils \
  clang-16 libclang-rt-16-dev
# The .deb (packaging/build-deb.sh): dpkg-shlibdeps/dpkg-gencontrol, the man page, RUNPATH.
DEB_PACKAGES := dpkg-dev help2man chrpath
# The slow tests (`make test-slow`, .ci/run): lintian, a fresh Debian root, the container.
SLOW_TEST_PACKAGES := $(DEB_PACKAGES) lintian mmdebstrap buildah util-linux curl openssl python3

.PHONY: all build deps test-deps test demo clean format

all: build

deps:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)

test-deps:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES) $(DEB_PACKAGES)

# Configure once: `cmake --build` re-runs CMake by itself when a CMakeLists changes, and a
# second explicit configure reorders pkg-config's -isystem flags, rebuilding everything.
CONFIGURE = test -f $(BUILD_DIR)/CMakeCache.txt || cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps
	$(CONFIGURE)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The RelWithDebInfo suite, then the ASan+UBSan suite (build-asan), the TSan run of the
# threaded tests (build-tsan) and a short run of each libFuzzer target (build-fuzz, clang):
# see scripts/test-all.sh. One stage alone: `scripts/test-all.sh asan`.
test: test-deps
	BUILD_DIR=$(BUILD_DIR) JOBS=$(JOBS) scripts/test-all.sh

# Builds only what the demo runs (the exporter and winrm-sim, not the test suite).
# `make demo DEMO_INVENTORY=ldap`: the hosts come from a demo slapd (Active Directory
# inventory, config/CONFIG.md) instead of the static target list.
demo: deps
	@scripts/ensure-packages.sh curl $(if $(filter ldap,$(DEMO_INVENTORY)),slapd ldap-utils openssl)
	$(CONFIGURE)
	cmake --build $(BUILD_DIR) -j $(JOBS) --target winrm_exporter winrm-sim
	DEMO_INVENTORY=$(DEMO_INVENTORY) scripts/demo.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp')

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz

# Not part of the quick start: a .deb, a container image built without a Docker engine, the
# tests that need downloads (label slow), and the scale benchmark (packaging/, bench/README.md).
.PHONY: deb deb-deps container slow-test-deps test-slow bench
DEB_BUILD_DIR ?= build-deb

deb-deps:
	@scripts/ensure-packages.sh $(DEB_PACKAGES)

# Its own build dir: built with Debian's hardening flags (packaging/configure-hardened.sh).
deb: deps deb-deps
	test -f $(DEB_BUILD_DIR)/CMakeCache.txt || packaging/configure-hardened.sh . $(DEB_BUILD_DIR)
	cmake --build $(DEB_BUILD_DIR) -j $(JOBS) --target winrm_exporter
	packaging/build-deb.sh $(DEB_BUILD_DIR)

# The Dockerfile with buildah (packaging/build-container.sh); the image is
# localhost/winrm_exporter:<version> in buildah's (and podman's) local storage.
container:
	@scripts/ensure-packages.sh buildah mmdebstrap python3
	packaging/build-container.sh

slow-test-deps:
	@scripts/ensure-packages.sh $(SLOW_TEST_PACKAGES)

# The .deb in a fresh Debian 12 root and the container image (ctest -L slow, root, network
# to the Debian mirror); after `make test`, in the same build dir. Both at once: most of
# their time is downloads, so they overlap well on 2 cores.
test-slow: build slow-test-deps
	cmake --build $(BUILD_DIR) -j $(JOBS) --target winrm_exporter winrm-sim
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 -L '^slow$$'

bench: build
	bench/scale.sh --build-dir $(BUILD_DIR) -n $${N:-1000}

# The quick start on a fresh Debian 12 root (mmdebstrap + chroot): see the script header.
.PHONY: fresh-check
fresh-check:
	@scripts/ensure-packages.sh mmdebstrap git python3 util-linux
	packaging/fresh-machine-check.sh
