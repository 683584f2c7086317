//! Leader election on a coordination.k8s.io Lease: only the holder runs the controllers, so two
//! replicas never both write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, Result};
use tokio::sync::watch;

use crate::runtime::lock;

/// Settings of the election.
pub struct Election {
    /// Lease name.
    pub lease: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
}

/// Starts competing for the lease. The receiver turns true while this replica leads.
pub async fn elect(
    client: Client,
    election: Election,
) -> Result<(
    watch::Receiver<bool>,
    tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager>>,
)> {
    let seconds = election.duration.as_secs().max(2);
    let field_manager = lease_field_manager(&election.identity);
    let manager = LeaseManagerBuilder::new(client, election.lease)
        .with_namespace(election.namespace)
        .with_identity(election.identity)
        .with_duration(seconds)
        // Renew halfway through the lease, so a renewal slowed by a busy API server or a
        // starved CPU (seconds, on a loaded 2-core machine) does not cost the lease.
        .with_grace((seconds / 2).max(1))
        .with_field_manager(field_manager)
        .build()
        .await?;
    Ok(manager.watch().await)
}

/// The field manager of this replica's lease writes. A free lease is taken with a server-side
/// apply that must conflict with another replica's claim; under one shared manager both applies
/// succeed and two replicas lead until the next renewal shows one of them the other's name.
fn lease_field_manager(identity: &str) -> String {
    // Field manager names are limited to 128 characters; identities are pod names (63).
    let name = format!("{}-{identity}", crate::names::FIELD_MANAGER);
    name.chars().take(128).collect()
}

/// What a replica knows of its hold on the Lease, from its own Lease writes: after each one the
/// API server accepted, the Lease is held until `duration` later, less a second for clock skew
/// (other replicas take it over only after `duration` without a renewal). A replica frozen
/// (SIGSTOP, a paused VM, a starved CPU) past that point resumes with watch events and timers
/// that are due at once, before its election notices the loss; its writes are refused from
/// that moment, so that two replicas never act at once.
#[derive(Clone)]
pub struct WriteGate {
    inner: Arc<GateState>,
}

struct GateState {
    /// Path suffix of the Leases of its namespace (`/namespaces/<ns>/leases`), where the
    /// election creates it.
    leases_path: String,
    /// Path suffix of the Lease (`/namespaces/<ns>/leases/<name>`).
    lease_path: String,
    validity: Duration,
    held_until: Mutex<Option<Instant>>,
}

/// A write refused because this replica cannot be sure it holds the Lease.
#[derive(Debug, thiserror::Error)]
#[error(
    "not writing: this replica has not renewed its Lease within its duration (it may have been frozen, or the API server is not answering); it exits if the Lease is lost"
)]
pub struct NotLeading;

impl WriteGate {
    /// A gate for `election`'s Lease; closed until the first Lease write succeeds.
    pub fn new(election: &Election) -> Self {
        WriteGate {
            inner: Arc::new(GateState {
                leases_path: format!("/namespaces/{}/leases", election.namespace),
                lease_path: format!(
                    "/namespaces/{}/leases/{}",
                    election.namespace, election.lease
                ),
                // `elect` makes the lease at least 2 s long.
                validity: election
                    .duration
                    .max(Duration::from_secs(2))
                    .saturating_sub(Duration::from_secs(1)),
                held_until: Mutex::new(None),
            }),
        }
    }

    /// Whether `path` is the Lease, or the collection it is created in.
    fn is_lease(&self, path: &str) -> bool {
        path.contains("/apis/coordination.k8s.io/")
            && (path.ends_with(&self.inner.lease_path) || path.ends_with(&self.inner.leases_path))
    }

    /// Whether a request renews (or takes) the Lease when it succeeds.
    fn renews(&self, method: &http::Method, path: &str) -> bool {
        matches!(*method, http::Method::PATCH | http::Method::PUT)
            && path.contains("/apis/coordination.k8s.io/")
            && path.ends_with(&self.inner.lease_path)
    }

    /// Whether a write may go out at `now`.
    fn open(&self, now: Instant) -> bool {
        lock(&self.inner.held_until).is_some_and(|until| now < until)
    }

    /// A Lease write sent at `sent` succeeded.
    fn renewed(&self, sent: Instant) {
        let until = sent + self.inner.validity;
        let mut held = lock(&self.inner.held_until);
        *held = Some(held.map_or(until, |h| h.max(until)));
    }

    /// Whether `method` and `path` are a write that needs the Lease (the Lease itself does not).
    fn guards(&self, method: &http::Method, path: &str) -> bool {
        !matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ) && !self.is_lease(path)
    }
}

impl<S> tower::Layer<S> for WriteGate {
    type Service = Gated<S>;
    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            inner,
            gate: self.clone(),
        }
    }
}

/// A client stack behind a [`WriteGate`].
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    gate: WriteGate,
}

impl<S, B, R> tower::Service<http::Request<B>> for Gated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = tower::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let now = Instant::now();
        if self.gate.guards(request.method(), &path) && !self.gate.open(now) {
            return Box::pin(futures::future::ready(Err(NotLeading.into())));
        }
        let lease_write = self.gate.renews(request.method(), &path);
        let gate = self.gate.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await.map_err(Into::into)?;
            if lease_write && response.status().is_success() {
                gate.renewed(now);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> WriteGate {
        WriteGate::new(&Election {
            lease: "capt-fargate-leader".into(),
            namespace: "capt-system".into(),
            identity: "pod-a".into(),
            duration: Duration::from_secs(15),
        })
    }

    #[test]
    fn writes_wait_for_a_lease_write_and_stop_a_lease_duration_after_the_last() {
        let gate = gate();
        let t0 = Instant::now();
        assert!(!gate.open(t0), "closed before the Lease is taken");
        gate.renewed(t0);
        assert!(gate.open(t0 + Duration::from_secs(13)));
        assert!(
            !gate.open(t0 + Duration::from_secs(14)),
            "a second of the lease is kept for clock skew"
        );
        gate.renewed(t0 + Duration::from_secs(8));
        assert!(gate.open(t0 + Duration::from_secs(21)));
        // An answer to an older renewal arriving late does not shorten the hold.
        gate.renewed(t0);
        assert!(gate.open(t0 + Duration::from_secs(21)));
    }

    #[test]
    fn only_writes_other_than_the_lease_are_guarded() {
        let gate = gate();
        let lease =
            "/apis/coordination.k8s.io/v1/namespaces/capt-system/leases/capt-fargate-leader";
        assert!(!gate.guards(&http::Method::PATCH, lease));
        assert!(gate.renews(&http::Method::PATCH, lease));
        let leases = "/apis/coordination.k8s.io/v1/namespaces/capt-system/leases";
        assert!(
            !gate.guards(&http::Method::POST, leases),
            "the election creates it"
        );
        assert!(!gate.renews(&http::Method::POST, leases));
        assert!(!gate.guards(&http::Method::GET, "/api/v1/namespaces/a/secrets"));
        assert!(gate.guards(&http::Method::POST, "/api/v1/namespaces/a/events"));
        assert!(gate.guards(
            &http::Method::PATCH,
            "/apis/coordination.k8s.io/v1/namespaces/other/leases/capt-fargate-leader"
        ));
        assert!(gate.guards(
            &http::Method::DELETE,
            "/apis/infrastructure.cluster.x-k8s.io/v1beta1/namespaces/a/workspacetemplateapplies/x"
        ));
    }

    #[test]
    fn each_replica_writes_the_lease_as_its_own_field_manager() {
        let (a, b) = (lease_field_manager("pod-a"), lease_field_manager("pod-b"));
        assert_eq!(a, "capt-fargate-pod-a");
        assert_ne!(a, b);
        assert_eq!(lease_field_manager(&"x".repeat(300)).chars().count(), 128);
    }
}
