//! Leader election on a coordination.k8s.io Lease: only the holder runs the controllers, so two
//! replicas never both write.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, Result};
use tokio::sync::watch;

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
    let manager = LeaseManagerBuilder::new(client, election.lease)
        .with_namespace(election.namespace)
        .with_identity(election.identity)
        .with_duration(seconds)
        // Renew halfway through the lease, so a renewal slowed by a busy API server or a
        // starved CPU (seconds, on a loaded 2-core machine) does not cost the lease.
        .with_grace((seconds / 2).max(1))
        .with_field_manager(crate::names::FIELD_MANAGER)
        .build()
        .await?;
    Ok(manager.watch().await)
}
