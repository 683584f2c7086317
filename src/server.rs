//! HTTP endpoints: Prometheus metrics and liveness/readiness probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Shared by the endpoints.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics to serve.
    pub metrics: Arc<Metrics>,
    /// Set once the API server has answered; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn ready(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Serves `/metrics` on `metrics_addr` and `/healthz`, `/readyz` on `health_addr` until
/// `shutdown` resolves.
pub async fn serve(
    state: ServerState,
    metrics_addr: SocketAddr,
    health_addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + Clone + 'static,
) -> std::io::Result<()> {
    let metrics_app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let health_app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state);
    let metrics_listener = tokio::net::TcpListener::bind(metrics_addr).await?;
    let health_listener = tokio::net::TcpListener::bind(health_addr).await?;
    let a = axum::serve(metrics_listener, metrics_app).with_graceful_shutdown(shutdown.clone());
    let b = axum::serve(health_listener, health_app).with_graceful_shutdown(shutdown);
    tokio::try_join!(a, b).map(|_| ())
}
