# syntax=docker/dockerfile:1
# The FleetMQ image: the operator (/fleetmq-operator, the entrypoint) and the broker
# (/fleetmq-broker) in one distroless image, so that broker pods run the very build of the
# operator that manages them.
#
#   docker build -t fleetmq:latest .                 # or: make docker-build IMG=...
#   docker build --build-arg VERSION=0.2.0 -t ghcr.io/fleetmq/fleetmq:0.2.0 .
#
# VERSION is the broker version the binaries report, and the tag of the image the operator
# gives broker pods by default (ghcr.io/fleetmq/fleetmq:$VERSION), so set it for releases.

# The builder runs on the build machine's platform and cross-compiles, which is much faster
# than emulating the target platform (docker buildx build --platform linux/arm64 ...).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=0.1.0-dev
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
# Static binaries (no cgo) for a base image without libc; -trimpath keeps build paths out of
# the binaries and -s -w drops the symbol tables and DWARF.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    ldflags="-s -w -X github.com/fleetmq/fleetmq/broker.Version=${VERSION}"; \
    for cmd in fleetmq-operator fleetmq-broker; do \
        CGO_ENABLED=0 GOOS="${TARGETOS}" GOARCH="${TARGETARCH}" \
            go build -trimpath -ldflags="${ldflags}" -o "/out/${cmd}" "./cmd/${cmd}"; \
    done

# distroless/static: CA certificates, tzdata and /etc/passwd, no shell or package manager.
FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="fleetmq" \
      org.opencontainers.image.description="FleetMQ MQTT broker and Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/fleetmq/fleetmq"
COPY --from=builder /out/fleetmq-operator /fleetmq-operator
COPY --from=builder /out/fleetmq-broker /fleetmq-broker
# Broker pods name the broker by its bare name (command: [fleetmq-broker]); the runtime
# looks it up in the image's PATH, so put / on it after the usual directories.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/
# nonroot's UID and GID, numeric so that runAsNonRoot can verify them without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/fleetmq-operator"]
