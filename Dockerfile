# The shop binary in a small image. Build context: the repository root.
#   docker build -t streamfold/shop .
# docker-compose.yml builds it for you.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/shop ./cmd/shop

# debian-slim rather than distroless: the healthchecks need curl.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/shop shop \
 && mkdir -p /var/lib/shop \
 && chown shop:shop /var/lib/shop
COPY --from=build /out/shop /usr/local/bin/shop
USER shop
WORKDIR /var/lib/shop
# Table state: a cache of the changelogs, restored from Kafka when lost.
VOLUME ["/var/lib/shop"]
EXPOSE 8080
ENTRYPOINT ["shop"]
# A container is reached through its network, not its loopback: name the
# listen address (the binary's default is 127.0.0.1:8080 with the embedded
# broker). Operator endpoints then need SHOP_ADMIN_TOKEN.
CMD ["run", "--data-dir", "/var/lib/shop", "--http", ":8080"]
