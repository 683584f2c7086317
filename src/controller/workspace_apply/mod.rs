//! WorkspaceTemplateApply controller: keeps one provider-terraform Workspace per apply, built
//! from its WorkspaceTemplate, and mirrors the Workspace's state into the apply's status.
//!
//! Unlike CAPT it updates the Workspace when the template or variables change, watches
//! Workspaces, Secrets and templates instead of polling, and reports waiting and failures as
//! conditions.

mod decide;
mod reconcile;
mod status;

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
use crate::api::{CAPTControlPlane, Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use crate::error::Error;
use crate::names;
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::echo::{self, OwnWrites};
use crate::runtime::shared::{ClusterShare, ControlPlaneShare, Share, Watched, fan_out};
use crate::runtime::{index, version};
use reconcile::reconcile;

const CONTROLLER: &str = "workspacetemplateapply";
/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// The apply controller's view of the cluster: watch caches, each fed by the same stream that
/// triggers reconciles (see `cache`).
pub struct State {
    ctx: Arc<Context>,
    applies: Cache<WorkspaceTemplateApply>,
    workspaces: Cache<Workspace>,
    templates: Cache<WorkspaceTemplate>,
    secrets: Cache<Secret>,
    /// Cluster API Clusters: an apply of a paused Cluster is left alone (`pause`).
    clusters: pause::Clusters,
    /// Control planes' metadata: one annotated `cluster.x-k8s.io/paused` holds its applies.
    control_planes: Cache<PartialObjectMeta<CAPTControlPlane>>,
    /// Workspaces this controller created, whose echo need not wake it.
    created: Arc<OwnWrites<Workspace>>,
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
    let (workspaces, workspace_source) = cache::watch(
        watcher(Api::<Workspace>::all(ctx.client.clone()), config()),
        trim_workspace,
        Some(secret_guard::workspace_index_keys),
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
    // The pause of an apply's Cluster, or its control plane's annotation, holds its Workspace
    // too (both watches shared with the other controllers, `runtime::shared`).
    let Share {
        cache: clusters,
        events: cluster_events,
    } = clusters;
    let by_cluster = applies.clone();
    let Share {
        cache: control_planes,
        events: cp_events,
    } = control_planes;
    let by_owner = applies.clone();
    let (by_secret, by_template, scope) = (applies.clone(), applies.clone(), ctx.namespace.clone());
    let created = Arc::new(OwnWrites::default());
    let state = Arc::new(State {
        ctx,
        applies: applies.clone(),
        workspaces,
        templates,
        secrets,
        clusters,
        control_planes,
        created: Arc::clone(&created),
    });
    // A Workspace wakes its apply when what the apply reports or compares of it changed, not
    // for the echo of its creation nor for a relisted, unchanged Workspace.
    let changes = echo::Changes::new(workspace_digest);
    let workspace_triggers = workspace_events.try_filter_map(move |event| {
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
    });
    // Status writes (this controller's own) do not trigger: the Workspace's changes do.
    let gone = Arc::clone(&state);
    let own = apply_events
        .inspect_ok(move |event| {
            // Also an apply whose finalizer was removed by someone else.
            if let watcher::Event::Delete(apply) = event {
                forget(apply, &gone);
            }
        })
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default());
    let controller = Controller::for_stream(own, applies.store())
        .watches_stream(workspace_triggers, move |ws| {
            apply_of_workspace(&ws, scope.as_deref())
        })
        .watches_stream(secret_events.touched_objects(), move |s| {
            applies_waiting_for(&by_secret, &s)
        })
        .watches_stream(template_events.touched_objects(), move |t| {
            applies_using(&by_template, &t)
        })
        .watches_stream(
            cluster_events
                .applied_objects()
                .predicate_filter(pause::pause_version, Default::default()),
            move |c| {
                let key = index::cluster(&c.namespace().unwrap_or_default(), &c.name_any());
                by_cluster.indexed_refs(&key)
            },
        )
        .watches_stream(
            cp_events
                .applied_objects()
                .predicate_filter(paused_annotation, Default::default()),
            move |cp| by_owner.indexed_refs(&index::owner(&cp.uid().unwrap_or_default())),
        )
        .with_config(state.ctx.controller_config(Duration::ZERO))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) });
    futures::future::join(controller, guard).await;
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

/// Cached Workspaces keep what the operator reads: the spec it compares (the module, and each
/// list or object of `varmap`, as a digest: [`fingerprint_module`], `runtime::digest`), the
/// conditions it reports and the outputs an apply reports (`status.outputs`, which give the
/// control plane its `status.version`); not the provider's checksum, nor the annotations
/// crossplane-runtime keeps (`crossplane.io/…`).
pub fn trim_workspace(ws: &mut Workspace) {
    fingerprint_module(ws);
    if let Some(varmap) = ws.spec.for_provider.varmap.as_mut() {
        crate::runtime::digest::containers(varmap);
    }
    if let Some(a) = ws.metadata.annotations.as_mut() {
        a.retain(|k, _| !k.starts_with("crossplane.io/"));
    }
    if let Some(at_provider) = ws.status.as_mut().and_then(|s| s.at_provider.as_mut()) {
        at_provider.checksum = None;
    }
}

/// Cached Workspaces keep a digest of their Terraform module instead of its text: the cache
/// only compares it, and 1,000s of modules would dominate the operator's memory.
fn fingerprint_module(ws: &mut Workspace) {
    let module = &mut ws.spec.for_provider.module;
    if !module.starts_with(MODULE_DIGEST) {
        *module = format!("{MODULE_DIGEST}{}", names::short_hash(module, 64));
    }
}

/// Digest of what an apply reads of its Workspace: its generation (which every spec change
/// moves), lifecycle metadata and status; not the version fields.
fn workspace_digest(ws: &Workspace) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    version::spec_or_lifecycle(ws).hash(&mut hasher);
    version::hash_serialized(&ws.status, &mut hasher);
    hasher.finish()
}

/// Prefix of a fingerprinted module (not valid HCL, so never mistaken for a module).
const MODULE_DIGEST: &str = "sha256:";

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
    applies: &Cache<WorkspaceTemplateApply>,
    secret: &Secret,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    applies.indexed_refs(&index::secret_of(secret))
}

/// Applies that use a WorkspaceTemplate.
fn applies_using(
    applies: &Cache<WorkspaceTemplateApply>,
    template: &WorkspaceTemplate,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    let key = index::template(
        &template.namespace().unwrap_or_default(),
        &template.name_any(),
    );
    applies.indexed_refs(&key)
}

fn error_policy(_apply: Arc<WorkspaceTemplateApply>, error: &Error, state: Arc<State>) -> Action {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cached_workspaces_keep_a_module_digest_conditions_and_outputs() {
        let mut ws: Workspace = serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": { "name": "ws", "generation": 2 },
            "spec": { "forProvider": { "source": "Inline", "module": "resource \"x\" \"y\" {}" } },
            "status": {
                "atProvider": { "outputs": { "cluster_name": "c" }, "checksum": "abc" },
                "conditions": [{ "type": "Ready", "status": "True", "reason": "Available",
                                 "lastTransitionTime": "2026-01-01T00:00:00Z" }]
            }
        }))
        .expect("a Workspace");
        let mut again = ws.clone();
        trim_workspace(&mut ws);
        let module = &ws.spec.for_provider.module;
        assert!(module.starts_with(MODULE_DIGEST) && !module.contains("resource"));
        let status = ws.status.as_ref().expect("status kept");
        let at_provider = status.at_provider.as_ref().expect("outputs kept");
        assert_eq!(at_provider.checksum, None);
        assert_eq!(at_provider.outputs.as_ref().map(|o| o.len()), Some(1));
        assert_eq!(status.conditions.len(), 1);
        // Trimming is idempotent: a desired object trimmed for comparison matches the cache.
        trim_workspace(&mut again);
        trim_workspace(&mut again);
        let json = |w: &Workspace| serde_json::to_value(w).expect("serializes");
        assert_eq!(json(&again), json(&ws));
    }
}
