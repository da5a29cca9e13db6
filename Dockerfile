# syntax=docker/dockerfile:1
# Huddle server image: build with the pinned toolchain, run on a slim Debian with only CA
# certificates added. The builder uses the bookworm variant so the binary links against the
# same glibc as the runtime image.

FROM rust:1.95-bookworm AS builder
WORKDIR /build
# Only what the build reads, so a local target/ or data/ never enters the build context copy.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY sfu ./sfu
COPY signaling ./signaling
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin huddle \
    && install -m 0755 target/release/huddle /usr/local/bin/huddle

# The web client: its files as written, plus socket.io-client from npm (web/build.mjs).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json web/build.mjs ./
COPY web/public ./public
RUN npm ci --no-audit --no-fund && node build.mjs

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/huddle --create-home huddle
COPY --from=builder /usr/local/bin/huddle /usr/local/bin/huddle
COPY --from=web /web/public /usr/share/huddle/web
USER huddle
WORKDIR /var/lib/huddle
ENV HUDDLE_HTTP_ADDR=0.0.0.0:3000 \
    HUDDLE_DATA_DIR=/var/lib/huddle \
    HUDDLE_WEB_DIR=/usr/share/huddle/web
# Media: one UDP port per worker from 50000 (HUDDLE_MEDIA_WORKERS, four here).
ENV HUDDLE_MEDIA_WORKERS=4
EXPOSE 3000 50000-50003/udp
ENTRYPOINT ["/usr/local/bin/huddle"]
