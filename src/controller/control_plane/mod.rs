//! CAPTControlPlane controller: keeps the EKS cluster apply (with the default Fargate profiles)
//! and one apply per additional Fargate profile, sequenced as `status::profiles` decides, and
//! reports every profile in the control plane's status.
//!
//! A reconcile is one pass (`reconcile`): `observe` reads the caches once, `desire` renders
//! every child once, `plan` decides purely what to write, delete or wait for, `act` writes,
//! and `report` writes the status that `status` builds purely.

mod act;
mod desire;
mod endpoint;
mod kubeconfig;
mod kubeconfig_write;
mod observe;
pub mod pause;
mod plan;
mod readiness;
mod reconcile;
mod report;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::Context;
use crate::api::{CAPTControlPlane, WorkspaceTemplateApply};
use crate::error::Error;
use crate::names;
use crate::render::{self, eks};
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::echo::OwnWrites;
use crate::runtime::packed::{Packed, PackedStore, Packing, packed_refs, reconcile_decoded};
use crate::runtime::shared::{ApplyCache, ClusterShare, SecretCache, Share, Watched};
use crate::runtime::status_writes::StatusWrites;
use crate::runtime::{index, version};
use crate::status::pacing;
use reconcile::reconcile;

const CONTROLLER: &str = "controlplane";

/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// How soon a profile apply that could not be written (name taken, forbidden, invalid) is
/// tried again.
const WRITE_FAILURE_RETRY: Duration = Duration::from_secs(30);

/// The control-plane controller's view of the cluster: watch caches, each fed by the same
/// stream that triggers reconciles (see `cache`).
pub struct State {
    ctx: Arc<Context>,
    control_planes: ControlPlaneCache,
    /// Cluster API Clusters, for their `spec.paused` (`pause`).
    clusters: pause::Clusters,
    applies: ApplyCache,
    secrets: SecretCache,
    /// When this process last wrote each control plane's status (by uid), for `pacing`.
    status_writes: StatusWrites,
    /// This controller's writes to applies and its finalizer writes to control planes, whose
    /// echoes do not wake it.
    apply_writes: Arc<OwnWrites<WorkspaceTemplateApply>>,
    finalizer_writes: Arc<OwnWrites<CAPTControlPlane>>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    clusters: ClusterShare,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watched {
        applies,
        apply_events,
        secrets,
        secret_events,
    } = watched;
    let (control_planes, cp_events) = cache::watch_packed(
        watcher(ctx.scoped_api::<CAPTControlPlane>(), ctx.filtered_watch()),
        cache::keep_all,
        Some(lookup_keys),
        Packing::IDENTITY,
    );
    let Share {
        cache: clusters,
        events: cluster_events,
    } = clusters;
    let lookup = control_planes.clone();
    let by_cluster = control_planes.clone();
    let (apply_writes, finalizer_writes) = (Arc::default(), Arc::default());
    let state = Arc::new(State {
        ctx,
        control_planes: control_planes.clone(),
        clusters,
        applies,
        secrets,
        status_writes: StatusWrites::default(),
        apply_writes: Arc::clone(&apply_writes),
        finalizer_writes: Arc::clone(&finalizer_writes),
    });
    // Status writes (this controller's own) do not trigger: the children's changes do. Nor
    // does the echo of the finalizer it adds (after the predicate, which must see that version).
    let followed = Arc::clone(&state);
    let own = cp_events
        .inspect_ok(move |event| {
            followed.finalizer_writes.follow(event);
            // Also a control plane whose finalizer was removed by someone else.
            if let watcher::Event::Delete(cp) = event {
                forget(cp, &followed);
            }
        })
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default())
        .try_filter(move |cp| futures::future::ready(!finalizer_writes.is_echo(cp)))
        // The controller schedules from the packed store: it reads the reference only.
        .map_ok(|cp| Packed::reference(&cp));
    Controller::for_stream(own, control_planes.packed_store())
        .owns_stream(
            apply_events
                .inspect_ok({
                    let followed = Arc::clone(&apply_writes);
                    move |event| followed.follow(event)
                })
                .touched_objects()
                .try_filter(move |apply| futures::future::ready(!apply_writes.is_echo(apply))),
        )
        .watches_stream(secret_events.touched_objects(), move |s| {
            packed_refs(control_planes_reading(&lookup, &s))
        })
        // Only a Cluster's pause and its control plane reference matter, not its status.
        .watches_stream(
            cluster_events
                .applied_objects()
                .predicate_filter(pause::pause_version, Default::default()),
            move |c| packed_refs(control_planes_of_cluster(&by_cluster, &c)),
        )
        .with_config(state.ctx.controller_config(super::DEBOUNCE))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(
            |cp, state| reconcile_decoded(cp, state, "a cached CAPTControlPlane", reconcile),
            error_policy,
            state,
        )
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// Control planes that read a Secret: its EKS or VPC connection secret.
fn control_planes_reading(
    control_planes: &ControlPlaneCache,
    secret: &Secret,
) -> Vec<ObjectRef<CAPTControlPlane>> {
    control_planes.indexed_refs(&index::secret_of(secret))
}

/// Control planes that belong to a Cluster, or that it names as its control plane.
fn control_planes_of_cluster(
    control_planes: &ControlPlaneCache,
    cluster: &crate::api::cluster::Cluster,
) -> Vec<ObjectRef<CAPTControlPlane>> {
    let key = index::cluster(
        &cluster.namespace().unwrap_or_default(),
        &cluster.name_any(),
    );
    let mut refs = control_planes.indexed_refs(&key);
    refs.extend(pause::control_plane_named_by(cluster).filter(|r| !refs.contains(r)));
    refs
}

/// What control planes are looked up by: the connection secrets they read, the kubeconfig
/// Secrets they keep (whose deletion or edit wakes them to restore it), and their Cluster.
fn lookup_keys(cp: &CAPTControlPlane) -> Vec<String> {
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    let kept = kubeconfig::secrets_of(cp)
        .into_iter()
        .map(|(ns, name)| index::secret(&ns, &name));
    let cluster = pause::cluster_name(cp).map(|c| index::cluster(&render::namespace(cp), &c));
    let mut keys = vec![
        index::secret(
            &render::namespace(cp),
            &names::eks_connection_secret(&cp.name_any()),
        ),
        index::secret(&vpc_ns, &vpc_name),
    ];
    keys.extend(kept);
    keys.extend(cluster);
    // Counted by the pacing of progress writes (`report`), without decoding each control plane.
    if cp.status.as_ref().is_some_and(pacing::rolling_out) {
        keys.push(index::ROLLING_OUT.to_string());
    }
    keys
}

/// The control plane cache: packed (`runtime::packed`; the sample control plane with 8
/// profiles, Ready, is 13.5 KB decoded), read one control plane at a time; the control planes
/// rolling out are counted through the index ([`index::ROLLING_OUT`]).
pub type ControlPlaneCache = Cache<CAPTControlPlane, PackedStore<CAPTControlPlane>>;

fn error_policy(_cp: Arc<Packed<CAPTControlPlane>>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

/// Forgets everything kept about a control plane that is gone: its metrics, events, status
/// write time and finalizer write. Every deletion path calls it: the finalizer's release and
/// the watch's deletion.
fn forget(cp: &CAPTControlPlane, state: &State) {
    let ctx = &state.ctx;
    ctx.metrics.forget_profiles(&metrics_key(cp));
    ctx.forget_events(cp.uid().as_deref());
    state.status_writes.forget(&cp.uid().unwrap_or_default());
    state.finalizer_writes.forget(cp);
}

/// The key of a control plane's profile phases in the metrics.
fn metrics_key(cp: &CAPTControlPlane) -> String {
    format!("{}/{}", render::namespace(cp), cp.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::controlplane::{
        CAPTControlPlaneStatus, FargateProfilePhase, FargateProfileStatus,
    };

    #[test]
    fn a_control_plane_with_profiles_on_their_way_is_indexed_as_rolling_out() {
        let cp: CAPTControlPlane = serde_saphyr::from_str(
            &std::fs::read_to_string("config/samples/captcontrolplane.yaml").expect("sample"),
        )
        .expect("a control plane");
        let with = |phase| {
            let mut cp = cp.clone();
            cp.status = Some(CAPTControlPlaneStatus {
                fargate_profiles: vec![FargateProfileStatus {
                    name: "monitoring".into(),
                    phase: Some(phase),
                    ..Default::default()
                }],
                ..Default::default()
            });
            lookup_keys(&cp).contains(&index::ROLLING_OUT.to_string())
        };
        assert!(with(FargateProfilePhase::Creating));
        assert!(with(FargateProfilePhase::Pending));
        assert!(!with(FargateProfilePhase::Ready));
        assert!(!with(FargateProfilePhase::Failed));
        assert!(!lookup_keys(&cp).contains(&index::ROLLING_OUT.to_string()));
    }
}
