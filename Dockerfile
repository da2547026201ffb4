# syntax=docker/dockerfile:1
# Two stages on Debian 12. The builder installs the Makefile's build packages (one list for
# `make deps`, CI and this file), builds the exporter with Debian's hardening flags and
# packs it with packaging/build-deb.sh; the runtime stage installs that .deb with apt, so
# its libraries are the ones the package's Depends (dpkg-shlibdeps) names. Runs as a
# numeric non-root user and needs no writable path: run it with a read-only root.
#   docker build -t winrm_exporter .
#   docker run --read-only --cap-drop=ALL -p 9725:9725 \
#     -v ./config.yml:/etc/winrm-exporter/config.yml:ro winrm_exporter
# Without a Docker engine: `make container` (buildah, packaging/build-container.sh).

FROM debian:bookworm-slim AS builder
WORKDIR /src
COPY Makefile ./
COPY scripts/ensure-packages.sh scripts/
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make \
 && make deps deb-deps \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# .git is not in the build context: pass the revision for build_info, e.g.
#   --build-arg REVISION=$(git rev-parse --short HEAD)
ARG REVISION=unknown
# Debian's package build flags (fortify, stack protector, relro, bindnow): see the script.
RUN packaging/configure-hardened.sh . /build -DWINRM_EXPORTER_REVISION="$REVISION" \
 && cmake --build /build -j"$(nproc)" --target winrm_exporter \
 && packaging/build-deb.sh /build /out

FROM debian:bookworm-slim
COPY --from=builder /out/ /tmp/deb/
# gss-ntlmssp (the GSSAPI mechanism for NTLM) is only Recommended by the package; curl is
# for exec probes when the listener wants basic auth (packaging/kubernetes/).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      /tmp/deb/winrm-exporter_*.deb gss-ntlmssp curl \
 && rm -rf /var/lib/apt/lists/* /tmp/deb
# A per-process memory credential cache lets the root filesystem be read-only;
# mount krb5.conf at /etc/krb5.conf and point KRB5_CLIENT_KTNAME at the keytab.
ENV KRB5CCNAME=MEMORY:winrm-exporter
USER 65532:65532
EXPOSE 9725
ENTRYPOINT ["/usr/bin/winrm_exporter"]
CMD ["--config.file=/etc/winrm-exporter/config.yml", "--web.listen-address=:9725"]
