# syntax=docker/dockerfile:1
# replink's container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t replink .
#   docker run -v /etc/replink:/etc/replink:ro -v replink-data:/var/lib/replink replink
#
# The builder runs the same `make build` as `make test`, with CGO_ENABLED=0
# for a static binary (make deploy-check builds it that way and checks it
# is static). The final stage is debian-slim rather than distroless so
# that a Kubernetes init container or a compose helper can use the same
# image, with its shell, to copy keys with the mode 0600 replink requires.
# Checked by deploy/container's test (no Docker engine where make test runs).

# The go line of go.mod.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git is not in the build context: the version comes in as an argument.
ARG VERSION=dev
RUN CGO_ENABLED=0 make build VERSION="${VERSION}" \
 && if ldd bin/replink; then echo "bin/replink is not static" >&2; exit 1; fi

FROM debian:13-slim
RUN groupadd --system --gid 10001 replink \
 && useradd --system --uid 10001 --gid replink --home-dir /var/lib/replink --no-create-home --shell /usr/sbin/nologin replink \
 && install -d -o replink -g replink -m 0700 /var/lib/replink \
 && install -d -m 0755 /etc/replink
COPY --from=build /src/bin/replink /usr/local/bin/replink
# uid 10001 (not a name) so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# [relay] data-dir: the relay log, which must outlive the container.
VOLUME /var/lib/replink
# [relay] listen and [metrics] listen (the SPEC's ports; the defaults are
# loopback, so a container's replink.toml listens on 0.0.0.0).
EXPOSE 3307 9105
# Healthy only while replink streams from the master and stores (replink
# status exits 1 otherwise, naming why); -c gives it [metrics] listen and
# the web-config-file, so it speaks HTTPS when that listener does. The
# start period covers a first connection and a relay log recovery.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/replink", "status", "-c", "/etc/replink/replink.toml"]
ENTRYPOINT ["/usr/local/bin/replink"]
CMD ["run", "-c", "/etc/replink/replink.toml"]
