# syntax=docker/dockerfile:1
# salesforce-kpis image: every binary (sfk-bridge, sfk-worker, sfk-loader, sfk) in one slim runtime.
# Build:  docker build -t salesforce-kpis:0.1.0 .
# The runtime stage installs only the shared libraries the binaries link against;
# tests/deploy/check_image_libs.sh compares SFK_RUNTIME_PACKAGES with `ldd` of the built binaries.

ARG DEBIAN_RELEASE=bookworm

# ---- build stage ---------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      librdkafka-dev libcurl4-openssl-dev libjansson-dev libssl-dev libhiredis-dev \
      libmicrohttpd-dev libgnutls28-dev zlib1g-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release build of the four product binaries only (tests and the emulator are not built).
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && ninja -C /build sfk-bridge sfk-worker sfk-loader sfk \
 && mkdir -p /out/bin /out/share/sfk \
 && install -m 0755 /build/bin/sfk-bridge /build/bin/sfk-worker /build/bin/sfk-loader /build/bin/sfk /out/bin/ \
 && strip --strip-unneeded /out/bin/* \
 && cp -r policies schemas /out/share/sfk/

# ---- runtime stage -------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# One package per shared library the binaries need (see tests/deploy/check_image_libs.sh);
# their own dependencies come with them. ca-certificates: TLS to Salesforce, Kafka, Redis, ES.
ARG SFK_RUNTIME_PACKAGES="librdkafka1 libcurl4 libjansson4 libssl3 libhiredis0.14 libmicrohttpd12 ca-certificates"
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ${SFK_RUNTIME_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 sfk \
 && useradd --system --uid 10001 --gid sfk --home-dir /var/lib/sfk --shell /usr/sbin/nologin sfk \
 && install -d -o sfk -g sfk -m 0750 /var/lib/sfk /var/lib/sfk/flywheel
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/share/sfk/ /usr/share/sfk/
# Relative defaults (policies/workloads.json, schemas/...) resolve here.
WORKDIR /usr/share/sfk
ENV SFK_ADMIN_ADDR=0.0.0.0:9090 \
    FLYWHEEL_DIR=/var/lib/sfk/flywheel
USER 10001:10001
EXPOSE 9090
HEALTHCHECK NONE
# No ENTRYPOINT: the chart sets the command per component (sfk-bridge, sfk-worker --workload W, ...).
CMD ["sfk", "--help"]
