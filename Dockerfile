# syntax=docker/dockerfile:1
# capt-fargate operator image.
#   docker build -t capt-fargate:0.1.0 .
# Build stage: glibc Rust toolchain (kube uses rustls, so no OpenSSL is needed). The cache
# mounts keep the crates.io registry and the target directory between builds.
ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin capt-fargate \
    && cp target/release/capt-fargate /capt-fargate

# Runtime: distroless with glibc and CA certificates, no shell, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="capt-fargate" \
      org.opencontainers.image.description="Kubernetes operator that manages Amazon EKS Fargate profiles for CAPT (Cluster API provider for Terraform)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /capt-fargate /capt-fargate
# The chart's podSecurityContext runs as this uid/gid too (distroless "nonroot").
USER 65532:65532
# Metrics and health endpoints (--metrics-addr, --health-addr).
EXPOSE 8080 8081
ENTRYPOINT ["/capt-fargate"]
CMD ["run"]
