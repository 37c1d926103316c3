# syntax=docker/dockerfile:1
# ld-eaas: one static-ish binary (templates, static assets and migrations are
# compiled in) on a distroless base with no shell, running as a non-root user.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Queries compile from the committed .sqlx/ data when it is present; no
# database is reachable while the image builds.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never
COPY . .
RUN cargo build --release --locked --bin ld-eaas \
 && cp target/release/ld-eaas /ld-eaas

# ---- runtime ------------------------------------------------------------------
# glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="ld-eaas" \
      org.opencontainers.image.description="LaunchDarkly environments for every ephemeral environment an EaaS vendor spins up" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/your-org/ld-eaas"
COPY --from=build /ld-eaas /usr/local/bin/ld-eaas
# Listen on every interface inside the container; everything else comes from
# the environment (see docs/operating.md).
ENV LD_EAAS_LISTEN=0.0.0.0:8080 \
    LD_EAAS_LOG_FORMAT=json
EXPOSE 8080
# uid 65532 ("nonroot" in distroless images).
USER 65532:65532
# No HEALTHCHECK: the image has no shell or curl to run one. Orchestrators
# probe GET /healthz (liveness) and GET /readyz (readiness) over HTTP; see
# deploy/kubernetes/deployment.yaml and docs/operating.md.
ENTRYPOINT ["/usr/local/bin/ld-eaas"]
CMD ["serve"]
