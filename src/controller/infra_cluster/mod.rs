//! CAPTCluster controller: the Cluster API infrastructure cluster, i.e. the VPC. It keeps one
//! WorkspaceTemplateApply per CAPTCluster (a new VPC from `spec.vpcTemplateRef`, or the
//! description of `spec.existingVpcId`) whose connection Secret is the `<cluster>-vpc-connection`
//! that control planes wait for, reports it in the status, honours Cluster API's pause, and on
//! deletion destroys the VPC only after every CAPTControlPlane of the cluster is gone.
//!
//! Built on the same runtime pieces as the other controllers: watch caches with
//! read-your-writes and indexes (`runtime::cache`, `runtime::index`), the stamped write path
//! (`runtime::write`), finalizer patches and de-duplicated events. Its own watches are narrow
//! (CAPTClusters, VPC applies only, by label); Clusters and CAPTControlPlanes' metadata come
//! from the watches it shares with the other controllers (`runtime::shared`).

mod observe;
mod reconcile;
mod report;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};

use super::Context;
use super::control_plane::pause;
use crate::api::{CAPTCluster, CAPTControlPlane, WorkspaceTemplateApply};
use crate::error::Error;
use crate::names;
use crate::render::vpc;
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::shared::{
    APPLY_PACKING, ApplyCache, ClusterShare, ControlPlaneShare, SecretCache, Share,
};
use crate::runtime::version;

pub use status::{DELETING, PAUSED, VPC_READY};

const CONTROLLER: &str = "captcluster";

/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// The CAPTCluster controller's view of the cluster.
pub struct State {
    ctx: Arc<Context>,
    capt_clusters: Cache<CAPTCluster>,
    /// VPC applies only (label `component=vpc`).
    applies: ApplyCache,
    /// CAPTControlPlanes, metadata only: which exist for which cluster.
    control_planes: Cache<PartialObjectMeta<CAPTControlPlane>>,
    clusters: pause::Clusters,
    /// The Secrets of the operator's scope, shared with the other controllers
    /// (`runtime::shared::key_names_only`: a VPC connection secret keeps the VPC's ID and
    /// zones), so that the VPC's status is reported without reading its Secret.
    secrets: SecretCache,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    (clusters, control_planes): (ClusterShare, ControlPlaneShare),
    secrets: SecretCache,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let config = || watcher::Config::default().any_semantic();
    let (capt_clusters, own_events) = cache::watch(
        watcher(ctx.scoped_api::<CAPTCluster>(), config()),
        cache::keep_all,
        Some(capt_cluster_keys),
    );
    let vpc_label = format!("{}={}", names::LABEL_COMPONENT, names::COMPONENT_VPC);
    let (applies, apply_events) = cache::watch_packed(
        watcher(
            ctx.scoped_api::<WorkspaceTemplateApply>(),
            config().labels(&vpc_label),
        ),
        cache::keep_all,
        None,
        APPLY_PACKING,
    );
    // Shared with the other controllers (`runtime::shared`): the Cluster watch (pause) and the
    // control planes' metadata.
    let Share {
        cache: clusters,
        events: cluster_events,
    } = clusters;
    let Share {
        cache: control_planes,
        events: cp_events,
    } = control_planes;
    let (by_cp, by_cluster) = (capt_clusters.clone(), capt_clusters.clone());
    let state = Arc::new(State {
        ctx,
        capt_clusters: capt_clusters.clone(),
        applies,
        control_planes,
        clusters,
        secrets,
    });
    // Status writes (this controller's own) do not trigger.
    let own = own_events
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default());
    Controller::for_stream(own, capt_clusters.store())
        .owns_stream(apply_events.touched_objects())
        .watches_stream(cp_events.touched_objects(), move |cp| {
            by_cp.indexed_refs(&cluster_key(
                &cp.namespace().unwrap_or_default(),
                &vpc::cluster_of(&cp.metadata),
            ))
        })
        .watches_stream(cluster_events.touched_objects(), move |c| {
            by_cluster.indexed_refs(&cluster_key(
                &c.namespace().unwrap_or_default(),
                &c.name_any(),
            ))
        })
        .with_config(state.ctx.controller_config(super::DEBOUNCE))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, state)
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// The index key of a Cluster API cluster.
fn cluster_key(namespace: &str, cluster: &str) -> String {
    format!("cluster:{namespace}/{cluster}")
}

/// What CAPTClusters are looked up by: their cluster.
fn capt_cluster_keys(c: &CAPTCluster) -> Vec<String> {
    vec![cluster_key(
        &vpc::namespace(c),
        &vpc::cluster_of(&c.metadata),
    )]
}

fn error_policy(_c: Arc<CAPTCluster>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

/// The control planes of `cluster` in `namespace` that still exist, by name (sorted).
fn control_planes_of(state: &State, namespace: &str, cluster: &str) -> Vec<String> {
    let mut names: Vec<String> = state
        .control_planes
        .filter(|cp| {
            cp.metadata.namespace.as_deref() == Some(namespace)
                && vpc::cluster_of(&cp.metadata) == cluster
        })
        .iter()
        .map(|cp| cp.name_any())
        .collect();
    names.sort();
    names
}
