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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replica_writes_the_lease_as_its_own_field_manager() {
        let (a, b) = (lease_field_manager("pod-a"), lease_field_manager("pod-b"));
        assert_eq!(a, "capt-fargate-pod-a");
        assert_ne!(a, b);
        assert_eq!(lease_field_manager(&"x".repeat(300)).chars().count(), 128);
    }
}
