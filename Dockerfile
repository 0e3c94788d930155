# syntax=docker/dockerfile:1
# MeshGuard's server image, for those who build with Docker:
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) -t meshguard .
# `make image` builds the same image with no Docker engine and no registry
# (tools/image, docs/install.md#container-image); tools/image's tests hold this
# file and that builder to one table: user, entrypoint, command, ports,
# variables, labels, paths and build flags. Change both together.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
# Static (FROM a distroless base there is no C library), and stamped like `make build`.
RUN CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-X main.version=${VERSION} -X main.commit=${REVISION} -X main.date=${CREATED}" -o /out/meshguard ./cmd/meshguard \
 && mkdir -p /out/data /out/policies

# Certificates, /etc/passwd with nonroot (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
COPY --from=build /out/meshguard /usr/local/bin/meshguard
# DATA_DIR is written at every start: mount a volume here when the root
# filesystem is read-only.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /var/lib/meshguard
COPY --from=build /out/policies /etc/meshguard/policies
ENV HOST=0.0.0.0 DATA_DIR=/var/lib/meshguard POLICIES_DIR=/etc/meshguard/policies
USER 65532:65532
EXPOSE 3100/tcp 3101/tcp
LABEL org.opencontainers.image.title="meshguard" \
      org.opencontainers.image.description="MeshGuard: governance for AI-agent meshes (Envoy ext_authz, xDS, gateway, audit trail)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/meshguard/meshguard" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/meshguard"]
CMD ["serve"]
