//! WorkspaceTemplateApply controller: keeps one provider-terraform Workspace per apply, built
//! from its WorkspaceTemplate, and mirrors the Workspace's state into the apply's status.
//!
//! Unlike CAPT it updates the Workspace when the template or variables change, watches
//! Workspaces, Secrets and templates instead of polling, and reports waiting and failures as
//! conditions.

mod decide;
mod handover;
mod look;
mod reconcile;
mod release;
mod status;
mod trim;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::control_plane::pause;
use super::{Context, secret_guard};
use crate::api::cluster::Cluster;
use crate::api::{CAPTControlPlane, Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use crate::error::Error;
use crate::names;
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::echo::{self, OwnWrites};
use crate::runtime::packed::{Packed, PackedStore, packed_ref, packed_refs, reconcile_decoded};
use crate::runtime::shared::{
    ApplyCache, ClusterShare, ControlPlaneShare, Events, SecretCache, Watched, fan_out,
};
use crate::runtime::{index, version};
use reconcile::reconcile;
pub use trim::trim_workspace;
use trim::workspace_digest;

const CONTROLLER: &str = "workspacetemplateapply";
/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// The Workspace cache: packed (`runtime::packed`; a cached Workspace is 1.6 KB of JSON and
/// 6.0 KB decoded), read one Workspace at a time.
pub type WorkspaceCache = Cache<Workspace, PackedStore<Workspace>>;

/// The apply controller's view of the cluster: watch caches, each fed by the same stream that
/// triggers reconciles (see `cache`).
pub struct State {
    ctx: Arc<Context>,
    applies: ApplyCache,
    workspaces: WorkspaceCache,
    templates: Cache<WorkspaceTemplate>,
    secrets: SecretCache,
    /// Cluster API Clusters: an apply of a paused Cluster is left alone (`pause`).
    clusters: pause::Clusters,
    /// Control planes' metadata: one annotated `cluster.x-k8s.io/paused` holds its applies.
    control_planes: Cache<PartialObjectMeta<CAPTControlPlane>>,
    /// Workspaces this controller created, whose echo need not wake it.
    created: Arc<OwnWrites<Workspace>>,
    /// Wakes the sweep that releases the Workspaces of applies gone while paused (`release`).
    release: tokio::sync::Notify,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    (clusters, control_planes): (ClusterShare, ControlPlaneShare),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let config = || ctx.watcher_config();
    let shutdown = shutdown.shared();
    let Watched {
        applies,
        apply_events,
        secrets,
        secret_events,
    } = watched;
    // All Workspaces, not only this operator's: a name taken by someone else's must be seen
    // before one is created under it. Indexed by the Secrets they read, for the secret guard.
    let (workspaces, workspace_source) = cache::watch_packed(
        watcher(Api::<Workspace>::all(ctx.client.clone()), config()),
        trim_workspace,
        Some(secret_guard::workspace_index_keys),
        trim::WORKSPACE_PACKING,
    );
    // The secret guard runs beside this controller on the same caches and events.
    let [workspace_events, guard_workspaces] =
        fan_out(workspace_source, shutdown.clone(), "workspaces");
    let [apply_events, guard_applies] = fan_out(apply_events, shutdown.clone(), "applies");
    let [secret_events, guard_secrets] = fan_out(secret_events, shutdown.clone(), "secrets");
    let guard = secret_guard::run(
        ctx.clone(),
        secret_guard::Watched {
            secrets: secrets.clone(),
            secret_events: guard_secrets,
            workspaces: workspaces.clone(),
            workspace_events: guard_workspaces,
            applies: applies.clone(),
            apply_events: guard_applies,
        },
        shutdown.clone(),
    );
    let (templates, template_events) = cache::watch(
        watcher(ctx.scoped_api::<WorkspaceTemplate>(), config()),
        cache::keep_all,
        None,
    );
    let created = Arc::new(OwnWrites::default());
    let state = Arc::new(State {
        ctx,
        applies,
        workspaces,
        templates,
        secrets,
        clusters: clusters.cache,
        control_planes: control_planes.cache,
        created: Arc::clone(&created),
        release: tokio::sync::Notify::new(),
    });
    let releases = release::run(Arc::clone(&state), shutdown.clone());
    let triggers = Triggers {
        applies: apply_events,
        workspaces: workspace_events,
        secrets: secret_events,
        templates: template_events.boxed(),
        clusters: clusters.events,
        control_planes: control_planes.events,
    };
    let controller = controller(state, triggers, created, shutdown);
    futures::future::join3(controller, guard, releases).await;
}

/// The event streams that wake applies.
struct Triggers {
    applies: Events<WorkspaceTemplateApply>,
    workspaces: Events<Workspace>,
    secrets: Events<Secret>,
    templates: Events<WorkspaceTemplate>,
    /// The pause of an apply's Cluster, or its control plane's annotation, holds its
    /// Workspace too (both watches shared with the other controllers, `runtime::shared`).
    clusters: Events<Cluster>,
    control_planes: Events<PartialObjectMeta<CAPTControlPlane>>,
}

/// The apply controller on `state`, woken by `triggers`, until `shutdown` resolves.
async fn controller(
    state: Arc<State>,
    triggers: Triggers,
    created: Arc<OwnWrites<Workspace>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let applies = &state.applies;
    let (by_secret, by_template, by_cluster, by_owner) = (
        applies.clone(),
        applies.clone(),
        applies.clone(),
        applies.clone(),
    );
    let scope = state.ctx.namespace.clone();
    // Status writes (this controller's own) do not trigger: the Workspace's changes do.
    let gone = Arc::clone(&state);
    let own = triggers
        .applies
        .inspect_ok(move |event| {
            // Also an apply whose finalizer was removed by someone else.
            if let watcher::Event::Delete(apply) = event {
                forget(apply, &gone);
                // Gone while paused (moved by clusterctl): its Workspace is released.
                gone.release.notify_one();
            }
        })
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default())
        // The controller schedules from the packed store: it reads the reference only.
        .map_ok(|apply| Packed::reference(&apply));
    Controller::for_stream(own, applies.packed_store())
        .watches_stream(
            workspace_triggers(triggers.workspaces, created),
            move |ws| apply_of_workspace(&ws, scope.as_deref()).map(|r| packed_ref(&r)),
        )
        .watches_stream(triggers.secrets.touched_objects(), move |s| {
            packed_refs(applies_waiting_for(&by_secret, &s))
        })
        .watches_stream(triggers.templates.touched_objects(), move |t| {
            packed_refs(applies_using(&by_template, &t))
        })
        .watches_stream(
            triggers
                .clusters
                .applied_objects()
                .predicate_filter(pause::pause_version, Default::default()),
            move |c| {
                let key = index::cluster(&c.namespace().unwrap_or_default(), &c.name_any());
                packed_refs(by_cluster.indexed_refs(&key))
            },
        )
        .watches_stream(
            triggers
                .control_planes
                .applied_objects()
                .predicate_filter(paused_annotation, Default::default()),
            move |cp| {
                packed_refs(by_owner.indexed_refs(&index::owner(&cp.uid().unwrap_or_default())))
            },
        )
        .with_config(state.ctx.controller_config(Duration::ZERO))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(
            |apply, state| {
                reconcile_decoded(apply, state, "a cached WorkspaceTemplateApply", reconcile)
            },
            error_policy,
            Arc::clone(&state),
        )
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// The Workspaces whose apply should look at them: a Workspace wakes its apply when what the
/// apply reports or compares of it changed, not for the echo of its creation nor for a
/// relisted, unchanged Workspace; and when it is deleted.
fn workspace_triggers(
    events: Events<Workspace>,
    created: Arc<OwnWrites<Workspace>>,
) -> impl futures::Stream<Item = Result<Workspace, watcher::Error>> {
    let changes = echo::Changes::new(workspace_digest);
    events.try_filter_map(move |event| {
        // Deletions, and objects a relist no longer returns, leave no entry behind.
        changes.follow(&event);
        created.follow(&event);
        let news = match event {
            watcher::Event::Apply(ws) | watcher::Event::InitApply(ws) => {
                // Both see every version, in order.
                let (moved, echo) = (changes.moved(&ws), created.is_echo(&ws));
                (moved && !echo).then_some(ws)
            }
            watcher::Event::Delete(ws) => Some(ws),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(news))
    })
}

/// What wakes a control plane's applies: only whether it carries the pause annotation.
fn paused_annotation(cp: &PartialObjectMeta<CAPTControlPlane>) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    cp.metadata.uid.hash(&mut hasher);
    cp.annotations()
        .contains_key(pause::PAUSED_ANNOTATION)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// The apply a Workspace belongs to, from the annotation written when it was created.
fn apply_of_workspace(
    ws: &Workspace,
    namespace: Option<&str>,
) -> Option<ObjectRef<WorkspaceTemplateApply>> {
    let (ns, name) = ws
        .annotations()
        .get(names::ANNOTATION_APPLY)?
        .split_once('/')?;
    namespace
        .is_none_or(|scope| scope == ns)
        .then(|| ObjectRef::new(name).within(ns))
}

/// Applies that wait for a Secret.
fn applies_waiting_for(
    applies: &ApplyCache,
    secret: &Secret,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    applies.indexed_refs(&index::secret_of(secret))
}

/// Applies that use a WorkspaceTemplate.
fn applies_using(
    applies: &ApplyCache,
    template: &WorkspaceTemplate,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    let key = index::template(
        &template.namespace().unwrap_or_default(),
        &template.name_any(),
    );
    applies.indexed_refs(&key)
}

fn error_policy(
    _apply: Arc<Packed<WorkspaceTemplateApply>>,
    error: &Error,
    state: Arc<State>,
) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

/// Forgets what this process keeps about an apply that is gone (its events' de-duplication;
/// its Workspace's entries follow the Workspace watch). Called when the apply's finalizer is
/// released and when the watch reports it deleted, whoever removed the finalizer.
fn forget(apply: &WorkspaceTemplateApply, state: &State) {
    state.ctx.forget_events(apply.uid().as_deref());
}

/// Name of the Workspace of an apply: the one recorded in status, else the derived one.
pub fn workspace_name_of(apply: &WorkspaceTemplateApply) -> String {
    apply
        .status
        .as_ref()
        .and_then(|s| s.workspace_name.clone())
        .unwrap_or_else(|| {
            names::workspace_name(&apply.namespace().unwrap_or_default(), &apply.name_any())
        })
}

/// Whether `ws` was created for this apply (same uid label).
fn owned_by(ws: &Workspace, apply: &WorkspaceTemplateApply) -> bool {
    ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str) == apply.uid().as_deref()
}
