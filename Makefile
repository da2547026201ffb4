# Quick start: `make demo` and `make test`. Both install missing Debian packages first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

BUILD_PACKAGES := cmake g++ make pkg-config libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev \
  libkrb5-dev libtinyxml2-dev libyaml-cpp-dev libspdlog-dev libfmt-dev prometheus-cpp-dev doctest-dev \
  libcurl4-openssl-dev libcrypt-dev
TEST_PACKAGES := openssl curl ca-certificates krb5-kdc krb5-admin-server krb5-user prometheus \
  python3 python3-winrm python3-requests-kerberos python3-gssapi gss-ntlmssp systemd \
  python3-yaml python3-kubernetes \
  clang-16 libclang-rt-16-dev

.PHONY: all build deps test-deps test demo clean format

all: build

deps:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES)

test-deps:
	@scripts/ensure-packages.sh $(BUILD_PACKAGES) $(TEST_PACKAGES)

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
demo: deps
	@scripts/ensure-packages.sh curl
	$(CONFIGURE)
	cmake --build $(BUILD_DIR) -j $(JOBS) --target winrm_exporter winrm-sim
	scripts/demo.sh $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files '*.h' '*.cpp')

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fuzz

# Not part of the quick start: a .deb, a container build without a Docker engine, and the
# scale benchmark (see packaging/, bench/README.md).
.PHONY: deb docker-check bench
deb: build
	packaging/build-deb.sh $(BUILD_DIR)

docker-check:
	@scripts/ensure-packages.sh buildah mmdebstrap curl python3
	packaging/docker-build-check.sh

bench: build
	bench/scale.sh --build-dir $(BUILD_DIR) -n $${N:-1000}

# The quick start on a fresh Debian 12 root (mmdebstrap + chroot): see the script header.
.PHONY: fresh-check
fresh-check:
	@scripts/ensure-packages.sh mmdebstrap git python3 util-linux
	packaging/fresh-machine-check.sh
