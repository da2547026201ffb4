# syntax=docker/dockerfile:1
# Two stages on Debian 12: build with the distribution's -dev packages, run with
# only their runtime libraries as a numeric non-root user.
#   docker build -t winrm_exporter .
#   docker run -p 9725:9725 -v ./config.yml:/etc/winrm-exporter/config.yml:ro winrm_exporter
# Without a Docker engine: packaging/docker-build-check.sh (buildah).

FROM debian:bookworm-slim AS builder
# Keep in sync with BUILD_PACKAGES in the Makefile.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev \
      libkrb5-dev libtinyxml2-dev libyaml-cpp-dev libspdlog-dev libfmt-dev \
      prometheus-cpp-dev doctest-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .git is not in the build context: pass the revision for build_info, e.g.
#   --build-arg REVISION=$(git rev-parse --short HEAD)
ARG REVISION=unknown
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DWINRM_EXPORTER_REVISION="$REVISION" \
 && cmake --build /build -j"$(nproc)" --target winrm_exporter winrm-sim \
 && strip --strip-unneeded /build/daemon/winrm_exporter /build/sim/winrm-sim

FROM debian:bookworm-slim
# gss-ntlmssp is the GSSAPI mechanism for NTLM; ca-certificates for HTTPS targets
# whose certificates chain to a public CA.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgssapi-krb5-2 libcpp-httplib0.11 libprometheus-cpp-core1.0 libtinyxml2-9 \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libbrotli1 zlib1g libssl3 libcurl4 ca-certificates \
      gss-ntlmssp \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/winrm-exporter
COPY --from=builder /build/daemon/winrm_exporter /usr/bin/winrm_exporter
# A per-process memory credential cache lets the root filesystem be read-only;
# mount krb5.conf at /etc/krb5.conf and point KRB5_CLIENT_KTNAME at the keytab.
ENV KRB5CCNAME=MEMORY:winrm-exporter
USER 65532:65532
EXPOSE 9725
ENTRYPOINT ["/usr/bin/winrm_exporter"]
CMD ["--config.file=/etc/winrm-exporter/config.yml", "--web.listen-address=:9725"]
