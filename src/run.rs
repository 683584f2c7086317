//! `run`: connects, serves probes and metrics, waits for leadership, runs both controllers, and
//! shuts down gracefully on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::future::Future;

use futures::FutureExt;
use futures::future::Shared;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::cli::{LogFormat, RunArgs};
use crate::controller::{self, Context};
use crate::leader::{self, Election, WriteGate};
use crate::metrics::Metrics;
use crate::server::{self, ServerState};

/// How long running reconciles may take to finish after SIGTERM (Kubernetes waits 30 s by
/// default before it kills the pod).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The kubeconfig could not be read or used.
    #[error(
        "cannot build a Kubernetes client ({0}); check --kubeconfig or the in-cluster service account"
    )]
    Config(String),
    /// The API server could not be reached.
    #[error("cannot reach the Kubernetes API server: {0}")]
    Connect(#[source] kube::Error),
    /// The metrics or probe address could not be bound.
    #[error(
        "cannot serve metrics/probes: {0}; choose a free port with --metrics-addr and --health-addr"
    )]
    Server(#[source] server::BindError),
    /// Leader election failed.
    #[error(
        "leader election failed: {0}; the ServiceAccount needs get/create/patch on coordination.k8s.io leases"
    )]
    Leader(String),
    /// Leadership was lost; exiting lets a fresh process compete again.
    #[error("lost the leader lease; exiting so that only one replica acts")]
    LostLease,
}

/// Sets up logging.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The controllers' client (`limits` from `args`) and the Lease's (none: a renewal never waits
/// behind the controllers' requests), both behind `gate`.
async fn clients(args: &RunArgs, gate: Option<WriteGate>) -> Result<(Client, Client), RunError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| RunError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::Config(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| RunError::Config(e.to_string()))?,
    };
    let limits = RequestLimits {
        in_flight: args.max_requests_in_flight.into(),
        answer_within: ANSWER_WITHIN,
    };
    Ok((
        client_for(config.clone(), Some(limits), gate.clone())?,
        client_for(config, None, gate)?,
    ))
}

/// How long a request of the controllers may wait for its response headers, kube's retries of
/// 429, 503 and 504 answers included: a request the API server never answers (a half-open
/// connection; kube 5 sets no read timeout) would otherwise keep its place under the cap
/// forever. A watch's headers come at once, and a list of thousands of objects starts in
/// seconds.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The limits on a client's requests (`client_for`).
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Requests waiting for their answer at once; more wait for a place
    /// (`--max-requests-in-flight`).
    pub in_flight: std::num::NonZeroUsize,
    /// How long a request may wait for its response headers before it fails
    /// (`tower::timeout::error::Elapsed`, a kube `Error::Service`), giving its place back.
    pub answer_within: Duration,
}

/// A client for `config`: named (`identify`), within `limits` if given, behind `gate` if given
/// (a write the gate refuses takes no place). The limits are tower's `ConcurrencyLimit` and
/// `Timeout`: a request holds a place from when it is sent until its response headers arrive
/// (a watch, or a list still streaming its body, then gives it back) or `answer_within` has
/// passed. Errors: a `config` kube cannot build a client from (`RunError::Config`: its TLS
/// settings or proxy).
pub fn client_for(
    mut config: Config,
    limits: Option<RequestLimits>,
    gate: Option<WriteGate>,
) -> Result<Client, RunError> {
    identify(&mut config);
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| RunError::Config(e.to_string()))?;
    Ok(match (limits, gate) {
        (None, None) => builder.build(),
        (None, Some(gate)) => builder.with_layer(&gate).build(),
        (Some(limits), gate) => {
            let limited = builder
                .with_layer(&tower::timeout::TimeoutLayer::new(limits.answer_within))
                .with_layer(&tower::limit::ConcurrencyLimitLayer::new(
                    limits.in_flight.get(),
                ));
            match gate {
                None => limited.build(),
                Some(gate) => limited.with_layer(&gate).build(),
            }
        }
    })
}

/// Names the operator in the User-Agent of every request (`capt-fargate/<version>`). The API
/// server takes the field manager of a write that names none from it (the operator's own writes,
/// Events included, name `names::FIELD_MANAGER` explicitly).
pub fn identify(config: &mut Config) {
    let agent = format!(
        "{}/{}",
        crate::names::FIELD_MANAGER,
        env!("CARGO_PKG_VERSION")
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&agent) {
        config
            .headers
            .retain(|(name, _)| name != axum::http::header::USER_AGENT);
        config.headers.push((axum::http::header::USER_AGENT, value));
    }
}

/// Where kubeconfig tokens come from: the operator's AWS credentials, unless the test-only
/// static token file is given.
fn token_source(args: &RunArgs) -> crate::aws::token::SharedTokenSource {
    use crate::aws::token::{AwsTokenSource, StaticTokenSource};
    match &args.test_only_static_token_file {
        Some(path) => {
            warn!(file = %path.display(), "TEST ONLY: kubeconfig Secrets get a static token from a file instead of an EKS IAM token");
            Arc::new(StaticTokenSource::from_file(path))
        }
        None => Arc::new(AwsTokenSource::from_environment()),
    }
}

/// Resolves on the first SIGTERM or Ctrl-C.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Runs until SIGTERM (Ok) or a fatal error.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("capt-fargate-{}", std::process::id()))
    });
    let election = args.leader_election.then(|| Election {
        lease: args.lease_name.clone(),
        namespace: args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_duration_seconds),
    });
    // Every write but the Lease's own waits for a Lease this replica knows it holds.
    let (client, lease_client) = clients(&args, election.as_ref().map(WriteGate::new)).await?;
    client
        .apiserver_version()
        .await
        .map_err(RunError::Connect)?;

    // Bound before anything runs: a port clash must stop the operator, not leave it without probes.
    let listeners = server::Listeners::bind(args.metrics_addr, args.health_addr)
        .await
        .map_err(RunError::Server)?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(true));
    let (stopped, stop_rx) = stop_on_termination();
    let state = ServerState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = tokio::spawn(server::serve(state, listeners, stopped.clone()));

    let leadership = match election {
        Some(election) => match lead(&lease_client, election, stopped.clone()).await? {
            Some(rx) => Some(rx),
            // Stopped before it became leader.
            None => return Ok(()),
        },
        None => None,
    };
    let ctx = Context::new(client, metrics, args.namespace.clone(), Some(identity))
        .with_max_concurrent_reconciles(args.max_concurrent_reconciles)
        .with_watch_filter(args.watch_filter.clone())
        .with_token_source(token_source(&args))
        .with_operator_role_arn(args.operator_role_arn.clone());
    // Asked once: an API server without streaming lists (Kubernetes 1.33) rejects them.
    let streaming = crate::runtime::listing::streaming_lists_served(
        &ctx.scoped_api::<k8s_openapi::api::core::v1::Secret>(),
    )
    .await;
    info!(streaming, "watches fill their caches with streaming lists");
    let ctx = Arc::new(ctx.with_streaming_lists(streaming));
    // The Lease is renewed while a receiver of its flag lives: until `run` returns.
    let _leading = leadership.clone();
    let lost = lost(leadership);
    let shutdown = futures::future::select(stopped.clone(), lost.clone())
        .map(|_| ())
        .shared();
    run_controllers(ctx, shutdown).await;
    ready.store(false, Ordering::Relaxed);
    if lost.now_or_never().is_some() && !*stop_rx.borrow() {
        error!("lost leadership");
        return Err(RunError::LostLease);
    }
    // Idle keep-alive connections (a metrics scraper) must not hold the exit either.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    info!("stopped");
    Ok(())
}

/// A future that resolves once SIGTERM or Ctrl-C came, and the flag it resolves on.
fn stop_on_termination() -> (Shared<impl Future<Output = ()>>, watch::Receiver<bool>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = {
        let rx = stop_rx.clone();
        async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        }
        .shared()
    };
    tokio::spawn(async move {
        termination().await;
        info!("termination requested; finishing running reconciles");
        let _ = stop_tx.send(true);
    });
    (stopped, stop_rx)
}

/// Waits until this replica leads; returns the leadership flag then, or None when `stopped`
/// resolved first.
async fn lead(
    client: &Client,
    election: Election,
    stopped: impl Future<Output = ()>,
) -> Result<Option<watch::Receiver<bool>>, RunError> {
    let identity = election.identity.clone();
    let (mut rx, _task) = leader::elect(client.clone(), election)
        .await
        .map_err(|e| RunError::Leader(e.to_string()))?;
    info!(%identity, "waiting to become leader");
    tokio::select! {
        r = rx.wait_for(|leading| *leading) => { r.map_err(|e| RunError::Leader(e.to_string()))?; }
        _ = stopped => { return Ok(None); }
    }
    info!(%identity, "became leader");
    Ok(Some(rx))
}

/// A future that resolves when leadership is lost (never without leader election).
fn lost(leadership: Option<watch::Receiver<bool>>) -> Shared<impl Future<Output = ()>> {
    async move {
        match leadership {
            Some(mut rx) => {
                let _ = rx.wait_for(|leading| !*leading).await;
            }
            None => futures::future::pending::<()>().await,
        }
    }
    .shared()
}

/// Runs both controllers until `shutdown`, then gives running reconciles a bounded time to
/// finish: one stuck on an unreachable API server must not keep the pod alive until the
/// kubelet kills it.
async fn run_controllers(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let [for_control_planes, for_applies] = crate::runtime::shared::start(
        ctx.scoped_api(),
        ctx.filtered_watch(),
        ctx.scoped_api(),
        ctx.watcher_config(),
        shutdown.clone(),
    );
    // One Cluster watch (pause) for all three controllers, one control plane metadata watch
    // for the two that read it.
    let [cp_clusters, apply_clusters, infra_clusters] = crate::runtime::shared::clusters(
        ctx.client.clone(),
        ctx.namespace.clone(),
        shutdown.clone(),
    );
    let [apply_cps, infra_cps] = crate::runtime::shared::control_plane_metadata(
        ctx.scoped_api(),
        ctx.watcher_config(),
        shutdown.clone(),
    );
    // The CAPTCluster controller reads VPC connection secrets from the shared Secret cache.
    let secrets = for_control_planes.secrets.clone();
    let controllers = futures::future::join3(
        controller::control_plane::run(
            ctx.clone(),
            for_control_planes,
            cp_clusters,
            shutdown.clone(),
        ),
        controller::workspace_apply::run(
            ctx.clone(),
            for_applies,
            (apply_clusters, apply_cps),
            shutdown.clone(),
        ),
        controller::infra_cluster::run(ctx, (infra_clusters, infra_cps), secrets, shutdown.clone()),
    );
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = controllers => {}
        _ = deadline => warn!(grace = ?SHUTDOWN_GRACE, "reconciles still running at the end of the grace period; exiting"),
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
