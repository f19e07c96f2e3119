# syntax=docker/dockerfile:1
# Container image of the ringmesh coordinator (meshctl included for
# `docker exec`): a static CGO_ENABLED=0 binary on a distroless base, run as
# an unprivileged user, its state (the JetStream store) on a volume.
#
#   docker build -t ringmesh-coordinator \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run -d --name voter1 -v ringmesh:/var/lib/ringmesh \
#     -p 4222:4222 -p 127.0.0.1:8077:8077 ringmesh-coordinator --name hetzner-cpu1
#
# Flags after the image name are passed to the coordinator; RINGMESH_* and the
# provider credentials (VAST_API_KEY, HCLOUD_TOKEN, ...) come in as
# environment variables (--env-file with mode 0600, never on the command line).
# The HTTP port has no authentication: publish it on loopback or a private
# address only. Clustered voters add --nats-cluster-listen 0.0.0.0:6222,
# --nats-routes, and -p 6222:6222; gossip needs 7946/tcp and 7946/udp.

ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
ARG DATE=
# Set by buildx (docker buildx build --platform linux/amd64,linux/arm64 ...): cross-compiled, no emulation.
ARG TARGETOS
ARG TARGETARCH
RUN set -eu; \
    pkg=github.com/ringmesh/ringmesh/pkg/version; \
    ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Commit=$COMMIT -X $pkg.Date=$DATE"; \
    goarch="${TARGETARCH:-$(go env GOARCH)}"; \
    export CGO_ENABLED=0 GOOS="${TARGETOS:-linux}" GOARCH="$goarch"; \
    go build -trimpath -ldflags "$ldflags" -o /out/ringmesh-coordinator ./cmd/coordinator; \
    go build -trimpath -ldflags "$ldflags" -o /out/meshctl ./cmd/meshctl; \
    if [ "$goarch" = "$(go env GOHOSTARCH)" ]; then /out/ringmesh-coordinator --version; fi; \
    mkdir -p /out/data

FROM ${BASE_IMAGE}
# distroless "nonroot": uid/gid 65532, HOME /home/nonroot; CA certificates included.
COPY --from=build /out/ringmesh-coordinator /out/meshctl /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /var/lib/ringmesh
USER 65532:65532
VOLUME ["/var/lib/ringmesh"]
# 4222 NATS clients, 6222 NATS routes (clustered), 8077 HTTP, 7946 gossip.
EXPOSE 4222 6222 8077 7946/tcp 7946/udp
ENTRYPOINT ["/usr/local/bin/ringmesh-coordinator", "--data-dir=/var/lib/ringmesh", "--nats-listen=0.0.0.0:4222", "--http=0.0.0.0:8077"]
