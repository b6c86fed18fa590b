# classrelay: multi-stage build. The runtime image holds only the binary and its config.
FROM rust:1-bookworm AS build
# libopus: the automatic S-T draft decodes recorded Opus with it (src/record/voice.rs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libopus-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY web ./web
# The schema is compiled in (sqlx::migrate!) and applied at start.
COPY migrations ./migrations
# Workspace members (the load generator, the UDP send path, the GStreamer exports crate) must
# be present for the workspace to resolve; `media` is built only with `--features gst`.
COPY loadtest ./loadtest
COPY udp ./udp
COPY media ./media
RUN cargo build --release --locked --bin classrelay

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libopus0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/classrelay --create-home classrelay
COPY --from=build /src/target/release/classrelay /usr/local/bin/classrelay
COPY config/classrelay.toml /etc/classrelay/classrelay.toml
USER classrelay
WORKDIR /var/lib/classrelay
# In a container, bind all interfaces and announce the host's public IP:
#   docker run -p 8080:8080 -p 3478-3479:3478-3479/udp -e CLASSRELAY_MEDIA__PUBLIC_IP=203.0.113.7 \
#     -v classrelay-data:/var/lib/classrelay/data classrelay
# The first start writes the administrator's password to data/admin-password (read it with
# `docker exec <container> cat /var/lib/classrelay/data/admin-password`; it is removed once
# the administrator sets a password). Serve HTTPS with CLASSRELAY_HTTP__TLS_CERT/_TLS_KEY or
# behind a proxy listed in CLASSRELAY_HTTP__TRUSTED_PROXIES (docs/SECURITY.md). For
# PostgreSQL instead of the SQLite file: -e CLASSRELAY_DATABASE__URL=postgres://user:pw@host/db
# One UDP port per media worker, 3478 + i. The count is pinned here, so the ports below are
# the ones in use whatever the host's core count (the server's default is one worker per
# core). For N workers: -e CLASSRELAY_MEDIA__WORKERS=N and publish 3478 to 3477+N.
ENV CLASSRELAY_HTTP__LISTEN=0.0.0.0:8080 \
    CLASSRELAY_MEDIA__BIND_IP=0.0.0.0 \
    CLASSRELAY_MEDIA__WORKERS=2 \
    CLASSRELAY_DATA__DIR=/var/lib/classrelay/data
EXPOSE 8080/tcp 3478-3479/udp
# `docker stop` sends this; the server shuts down gracefully on it (as on Ctrl-C).
STOPSIGNAL SIGTERM
ENTRYPOINT ["classrelay", "--config", "/etc/classrelay/classrelay.toml"]
CMD ["serve"]
