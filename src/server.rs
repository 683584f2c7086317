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

/// The two bound listeners: binding happens before anything is spawned, so a port clash fails
/// `run` at once instead of leaving the operator running without probes.
pub struct Listeners {
    metrics: tokio::net::TcpListener,
    health: tokio::net::TcpListener,
}

impl Listeners {
    /// Binds `metrics_addr` and `health_addr`.
    ///
    /// # Errors
    /// The address that could not be bound, with the OS error (e.g. address in use).
    pub async fn bind(
        metrics_addr: SocketAddr,
        health_addr: SocketAddr,
    ) -> Result<Self, BindError> {
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { addr, source })
        };
        Ok(Listeners {
            metrics: bind(metrics_addr).await?,
            health: bind(health_addr).await?,
        })
    }
}

/// A listener address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// Serves `/metrics` and `/healthz`, `/readyz` on the bound `listeners` until `shutdown`
/// resolves.
pub async fn serve(
    state: ServerState,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + Clone + 'static,
) -> std::io::Result<()> {
    let metrics_app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let health_app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(state);
    let a = axum::serve(listeners.metrics, metrics_app).with_graceful_shutdown(shutdown.clone());
    let b = axum::serve(listeners.health, health_app).with_graceful_shutdown(shutdown);
    tokio::try_join!(a, b).map(|_| ())
}
