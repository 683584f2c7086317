//! One reconcile of an apply: observe (its Workspace, from the cache) → decide (pure, in
//! `decide`: one [`Step`]) → act (the write, deletion or status report that step names),
//! reading what the decision asks for when it asks ([`Step::Look`]).

use std::sync::Arc;

use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::decide::{
    Desired, HandOver, Lookup, Observed, Prerequisites, Step, decide, hand_over as handover_step,
    paused_for_cluster,
};
use super::status::{blocked, template_found, template_missing, waiting, write_status};
use super::{RESYNC, State, forget, owned_by, workspace_name_of};
use crate::api::conditions::READY;
use crate::api::workspace::WorkspaceSpec;
use crate::api::{CAPTControlPlane, Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use crate::controller::control_plane::pause;
use crate::controller::secrets::{self, Required};
use crate::error::{Error, Result};
use crate::names::{self, APPLY_FINALIZER};
use crate::render;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::write::{self, write};
use crate::status::apply::mirror_workspace;
use crate::status::{pacing, reason};

/// Reconciles one apply: the controller's entry point.
pub(super) async fn reconcile(
    apply: Arc<WorkspaceTemplateApply>,
    state: Arc<State>,
) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.workspaces.is_ready() && state.templates.is_ready() && state.secrets.is_ready()) {
        return Ok(Action::requeue(crate::controller::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(super::CONTROLLER);
    // The cache may hold this process's last status write, newer than the scheduled copy.
    let mut apply = state.applies.latest(apply);
    let ns = apply
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(apply.name_any()))?;
    // Paused (its Cluster, or its own annotation): no Workspace, finalizer or status write.
    let cluster_name = apply.labels().get(names::LABEL_CLUSTER_NAME);
    let cluster = match state.clusters.named(&ns, cluster_name.map(String::as_str)) {
        pause::Known::Unknown => return Ok(Action::requeue(pause::CLUSTERS_UNKNOWN)),
        pause::Known::Cluster(cluster) => cluster,
    };
    // Not waited for at start (its first list slowed every apply's first report past the
    // control plane's first-status grace in tests): until it is filled, only the Cluster and
    // the apply's own annotation hold the apply; the control-plane controller holds its
    // applies' changes meanwhile.
    let owner_paused = owning_control_plane(&apply, &state)
        .is_some_and(|cp| pause::is_paused(cp.as_ref(), None).is_some());
    let api: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    if owner_paused || pause::is_paused(apply.as_ref(), cluster.as_deref()).is_some() {
        return hand_over(&apply, &state, &api).await;
    }
    if apply.metadata.deletion_timestamp.is_none() {
        // Applies rendered by the control-plane controller carry the finalizer already.
        apply = ensure_finalizer(&api, &state.applies, apply, APPLY_FINALIZER).await?;
        // Only an apply of a Cluster API cluster is in a `clusterctl move` graph.
        if apply.labels().contains_key(names::LABEL_CLUSTER_NAME) {
            apply = block_move(&api, &state, apply, true).await?;
        }
    }
    let ws_name = workspace_name_of(&apply);
    let mut existing = workspace(&state, &ws_name);
    // Unpaused: lift the pause this operator set on its Workspace (a move that failed, or a
    // plain pause); provider-terraform then plans it again, with nothing to apply.
    if existing
        .as_deref()
        .is_some_and(|ws| owned_by(ws, &apply) && paused_for_cluster(ws))
    {
        existing = Some(set_workspace_pause(&state, &ws_name, false).await?);
    }
    // A handed-over Workspace that exists again (created after the pause) took its state back;
    // for a deleted apply, once provider-terraform holds it (its finalizer), so that the
    // deletion that follows destroys it.
    if existing.as_deref().is_some_and(|ws| {
        owned_by(ws, &apply)
            && (apply.metadata.deletion_timestamp.is_none() || !ws.finalizers().is_empty())
    }) && apply.annotations().contains_key(names::RELEASED_ANNOTATION)
    {
        apply = annotate(&api, &state, apply, names::RELEASED_ANNOTATION, None).await?;
    }
    let observed = Observed {
        apply: &apply,
        ws_name: &ws_name,
        existing: existing.as_deref(),
        workspace_age: existing.as_deref().and_then(crate::controller::age),
        desired: None,
        prerequisites: None,
    };
    act(observed, &state, &api).await
}

/// How often an apply waiting for other Workspaces to be Ready looks at them again (from the
/// cache: no request).
const WORKSPACES_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// How often a paused apply looks again while provider-terraform has not confirmed the pause
/// of its Workspace (the echo of its own writes does not wake it).
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A paused apply (its Cluster paused, as `clusterctl move` does first) pauses its Workspace
/// in provider-terraform too ([`HandOver`]), then drops the block-move annotation once the
/// provider confirms, and clusterctl goes on. The Workspace object stays: unpaused (a plain
/// pause, or a failed move), the apply lifts the pause; moved, the source's Workspace is
/// released once clusterctl has deleted the apply (`release`), and the target's operator
/// creates one of the same name, whose plan finds the state as it was: nothing is applied.
async fn hand_over(
    apply: &Arc<WorkspaceTemplateApply>,
    state: &State,
    api: &Api<WorkspaceTemplateApply>,
) -> Result<Action> {
    let ws_name = workspace_name_of(apply);
    let existing = workspace(state, &ws_name);
    match handover_step(apply, existing.as_deref()) {
        HandOver::Pause => {
            // First the mark a deletion needs to destroy the state later (see decide).
            let released = Some(ws_name.clone());
            annotate(
                api,
                state,
                apply.clone(),
                names::RELEASED_ANNOTATION,
                released,
            )
            .await?;
            if let Some(ws) = existing.as_deref() {
                keep_connection_secret(apply, ws, state).await?;
            }
            set_workspace_pause(state, &ws_name, true).await?;
            let message = format!(
                "paused: Workspace {ws_name} paused in provider-terraform (crossplane.io/paused); nothing is destroyed"
            );
            let ctx = &state.ctx;
            ctx.event(
                apply.as_ref(),
                EventType::Normal,
                "PausedWorkspace",
                message,
            )
            .await;
            Ok(Action::requeue(PAUSE_POLL))
        }
        HandOver::AwaitPause | HandOver::AwaitDeletion => Ok(Action::requeue(PAUSE_POLL)),
        HandOver::Unblock => {
            block_move(api, state, apply.clone(), false).await?;
            Ok(Action::await_change())
        }
        HandOver::Nothing => Ok(Action::await_change()),
    }
}

/// Sets (`paused`) or lifts this operator's pause of the Workspace `ws_name`: crossplane's
/// pause annotation and [`names::WORKSPACE_PAUSED_ANNOTATION`] together, in one merge patch;
/// returns the Workspace as written, trimmed as the cache keeps it.
pub(super) async fn set_workspace_pause(
    state: &State,
    ws_name: &str,
    paused: bool,
) -> Result<Arc<Workspace>> {
    let workspaces: Api<Workspace> = Api::all(state.ctx.client.clone());
    let (crossplane, ours) = if paused {
        (serde_json::json!("true"), serde_json::json!(""))
    } else {
        (serde_json::Value::Null, serde_json::Value::Null)
    };
    let patch = serde_json::json!({ "metadata": { "annotations": {
        (names::CROSSPLANE_PAUSED_ANNOTATION): crossplane,
        (names::WORKSPACE_PAUSED_ANNOTATION): ours,
    } } });
    let mut written = workspaces
        .patch(
            ws_name,
            &crate::runtime::write::patch_params(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    // Trimmed as cached: the caller compares it with a desired Workspace.
    state.workspaces.prepare(&mut written);
    state.workspaces.remember(written.clone());
    Ok(Arc::new(written))
}

/// Hands the Workspace's connection Secret to the apply before the Workspace goes: the
/// Workspace's (controller) owner reference becomes the apply's (not a controller), so the
/// garbage collector keeps the Secret while the apply lives, and a Workspace created again
/// under the same name adopts it (crossplane-runtime publishes into a connection Secret
/// that no one controls) instead of finding it controlled by a Workspace that is gone. After
/// a move the source's apply is deleted and the Secret with it; the target's Workspaces
/// publish their own.
async fn keep_connection_secret(
    apply: &WorkspaceTemplateApply,
    ws: &Workspace,
    state: &State,
) -> Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let (Some(r), Some(ws_uid)) = (&ws.spec.write_connection_secret_to_ref, ws.uid()) else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(state.ctx.client.clone(), &r.namespace);
    let Some(secret) = secrets.get_opt(&r.name).await? else {
        return Ok(());
    };
    // The Workspace's, or orphaned by the garbage collector already; not someone else's.
    let current = secret.owner_references();
    let theirs = current
        .iter()
        .any(|o| o.controller == Some(true) && o.uid != ws_uid);
    if theirs {
        return Ok(());
    }
    let mut owners: Vec<OwnerReference> = current
        .iter()
        .filter(|o| o.uid != ws_uid)
        .cloned()
        .collect();
    if apply.namespace().as_deref() == Some(r.namespace.as_str())
        && let Some(uid) = apply.uid()
        && !owners.iter().any(|o| o.uid == uid)
    {
        owners.push(OwnerReference {
            api_version: "infrastructure.cluster.x-k8s.io/v1beta1".into(),
            kind: "WorkspaceTemplateApply".into(),
            name: apply.name_any(),
            uid,
            controller: None,
            block_owner_deletion: None,
        });
    }
    if owners.as_slice() == current {
        return Ok(());
    }
    let patch = serde_json::json!({ "metadata": {
        "ownerReferences": owners,
        "resourceVersion": secret.resource_version(),
    } });
    secrets
        .patch(
            &r.name,
            &crate::runtime::write::patch_params(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Adds (`on`) or removes clusterctl's block-move annotation on `apply`, if it is not so
/// already; returns the apply as written.
async fn block_move(
    api: &Api<WorkspaceTemplateApply>,
    state: &State,
    apply: Arc<WorkspaceTemplateApply>,
    on: bool,
) -> Result<Arc<WorkspaceTemplateApply>> {
    let value = on.then(String::new);
    annotate(api, state, apply, names::BLOCK_MOVE_ANNOTATION, value).await
}

/// Sets the annotation `key` of `apply` to `value` (None: removes it), unless it is so
/// already; returns the apply as written.
async fn annotate(
    api: &Api<WorkspaceTemplateApply>,
    state: &State,
    apply: Arc<WorkspaceTemplateApply>,
    key: &str,
    value: Option<String>,
) -> Result<Arc<WorkspaceTemplateApply>> {
    if apply.annotations().get(key) == value.as_ref() {
        return Ok(apply);
    }
    let patch = serde_json::json!({ "metadata": {
        "annotations": { (key): value },
        "resourceVersion": apply.resource_version(),
    } });
    let written = api
        .patch(
            &apply.name_any(),
            &crate::runtime::write::patch_params(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    state.applies.remember(written.clone());
    Ok(Arc::new(written))
}

/// The control plane that owns `apply` (as its controller), from the metadata cache.
fn owning_control_plane(
    apply: &WorkspaceTemplateApply,
    state: &State,
) -> Option<Arc<PartialObjectMeta<CAPTControlPlane>>> {
    let owner = apply
        .owner_references()
        .iter()
        .find(|o| o.kind == "CAPTControlPlane" && o.controller == Some(true))?;
    state
        .control_planes
        .get_named(apply.namespace().as_deref(), &owner.name)
}

/// Does the steps [`decide`] names, reading what it asks for, until one ends the reconcile.
async fn act(
    mut o: Observed<'_>,
    state: &State,
    api: &Api<WorkspaceTemplateApply>,
) -> Result<Action> {
    let (apply, existing) = (o.apply, o.existing);
    loop {
        return match decide(&o) {
            Step::Look(Lookup::Desired) => {
                o.desired = Some(desire(state, apply, o.ws_name, existing).await?);
                continue;
            }
            Step::Look(Lookup::Prerequisites) => {
                o.prerequisites = Some(prerequisites(state, apply).await?);
                continue;
            }
            Step::Retain => {
                let message = format!("kept Workspace {} as requested", o.ws_name);
                let ctx = &state.ctx;
                ctx.event(apply, EventType::Normal, "RetainedWorkspace", message)
                    .await;
                release(apply, state, api).await
            }
            Step::Release => release(apply, state, api).await,
            Step::DeleteWorkspace => delete_workspace(&o, state, api).await,
            Step::AwaitDeletion => {
                // The destroy's progress and errors reach the apply's status (and from there
                // the control plane's), so a deletion that does not finish says why.
                write_status(apply, state, existing, Vec::new(), None).await?;
                Ok(Action::await_change())
            }
            Step::Blocked { reason, message } => {
                blocked(apply, state, existing, reason, message).await
            }
            Step::TemplateGone { message } => {
                let (warning, why) = (EventType::Warning, reason::TEMPLATE_NOT_FOUND);
                state.ctx.event(apply, warning, why, message.clone()).await;
                write_status(apply, state, existing, template_missing(message), None).await
            }
            Step::Wait { reason, message } => {
                let action = waiting(apply, state, reason, message).await?;
                // No watch maps a Workspace to the applies that wait for it (an apply created
                // again after a pause waits for its peers' Workspaces): look again soon.
                Ok(if reason == reason::WAITING_FOR_WORKSPACES {
                    Action::requeue(WORKSPACES_POLL)
                } else {
                    action
                })
            }
            Step::AwaitFirstReport(wait) => Ok(Action::requeue(wait)),
            Step::Report { applied } => {
                write_status(apply, state, existing, template_found(), applied).await
            }
            Step::Write { workspace, create } => {
                write_workspace(&o, state, workspace, create).await
            }
        };
    }
}

/// Releases the finalizer of a deleted apply and forgets it.
async fn release(
    apply: &WorkspaceTemplateApply,
    state: &State,
    api: &Api<WorkspaceTemplateApply>,
) -> Result<Action> {
    remove_finalizer(api, apply, APPLY_FINALIZER).await?;
    forget(apply, state);
    Ok(Action::await_change())
}

/// Deletes a deleted apply's Workspace and reports it as being destroyed; the Workspace watch
/// brings the apply back when it is gone.
async fn delete_workspace(
    o: &Observed<'_>,
    state: &State,
    api: &Api<WorkspaceTemplateApply>,
) -> Result<Action> {
    let (ctx, apply, ws_name) = (&state.ctx, o.apply, o.ws_name);
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    match workspaces.delete(ws_name, &Default::default()).await {
        // Still there, held by the provider's finalizer: remember that it is terminating, so
        // a reconcile before the watch echo does not delete again.
        Ok(deleted) => {
            if let Some(terminating) = deleted.left() {
                state.workspaces.remember(terminating);
            }
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            return release(apply, state, api).await;
        }
        Err(e) => return Err(e.into()),
    }
    let message = format!("deleting Workspace {ws_name}");
    ctx.event(apply, EventType::Normal, "DeletingWorkspace", message)
        .await;
    if let Some(ws) = workspace(state, ws_name).filter(|ws| owned_by(ws, apply)) {
        write_status(apply, state, Some(ws.as_ref()), Vec::new(), None).await?;
    }
    Ok(Action::await_change())
}

/// Creates or updates the apply's Workspace and announces it.
async fn write_workspace(
    o: &Observed<'_>,
    state: &State,
    desired: &Workspace,
    create: bool,
) -> Result<Action> {
    let (ctx, apply, ws_name) = (&state.ctx, o.apply, o.ws_name);
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    let written = write(&workspaces, &state.workspaces, desired, o.existing).await?;
    // Recorded before anything else awaits: the provider's next updates may be on their way.
    if create {
        state.created.record(&written);
    }
    state.workspaces.remember(written);
    let verb = if create { "Created" } else { "Updated" };
    info!(apply = %apply.name_any(), workspace = %ws_name, "{verb} Workspace");
    // A control plane's applies are announced on the control plane, where users look.
    if !owned_by_control_plane(apply) {
        let (reason, note) = (
            format!("{verb}Workspace"),
            format!("{verb} Workspace {ws_name}"),
        );
        ctx.event(apply, EventType::Normal, &reason, note).await;
    }
    if create {
        // Nothing to report before the provider's first report, which wakes this apply; if it
        // does not come within the grace, the apply reports the Workspace as created.
        return Ok(Action::requeue(pacing::FIRST_REPORT_GRACE));
    }
    // The update's echo wakes this apply to report the Workspace as being applied.
    Ok(Action::requeue(RESYNC))
}

/// The Workspace the template renders for this apply, compared with the existing one.
async fn desire(
    state: &State,
    apply: &WorkspaceTemplateApply,
    ws_name: &str,
    existing: Option<&Workspace>,
) -> Result<Desired> {
    let template_ns = apply.template_namespace();
    let Some(template) = template(state, &template_ns, &apply.spec.template_ref.name).await? else {
        return Ok(Desired::NoTemplate);
    };
    let spec = match render::workspace::render(apply, &template, ws_name) {
        Ok(spec) => spec,
        Err(e) => return Ok(Desired::Invalid(e.to_string())),
    };
    let mut workspace = render::workspace::object(apply, ws_name, spec);
    // With the record of what was rendered, so that a removal shows (`runtime::write::stamp`).
    write::stamp(&mut workspace)?;
    // Compared as the cache keeps it (module fingerprinted).
    let mut comparable = workspace.clone();
    state.workspaces.prepare(&mut comparable);
    let held = existing
        .filter(|ws| state.workspaces.holds(ws, &comparable))
        .map(|_| spec_hash(&comparable.spec));
    Ok(Desired::Rendered {
        workspace: Box::new(workspace),
        held,
    })
}

/// The Secrets and Workspaces the apply waits for, from the caches (a Secret outside the
/// operator's scope is read directly). Only key names of Secrets are read, never values.
async fn prerequisites(state: &State, apply: &WorkspaceTemplateApply) -> Result<Prerequisites> {
    let ctx = &state.ctx;
    let mut missing = Vec::new();
    for req in apply.spec.wait_for_secrets.iter().flatten() {
        let keys = req.keys.clone().unwrap_or_default();
        let required = Required {
            namespace: &req.namespace,
            name: &req.name,
            keys: &keys,
        };
        let in_scope = ctx.in_scope(&req.namespace);
        missing.extend(secrets::missing(&ctx.client, &state.secrets, in_scope, required).await?);
    }
    Ok(Prerequisites {
        missing_secrets: (!missing.is_empty())
            .then(|| format!("waiting for {}", missing.join("; "))),
        unready_workspaces: unready_workspaces(state, apply),
    })
}

/// Workspaces this apply waits for that are not Ready yet, as a message.
fn unready_workspaces(state: &State, apply: &WorkspaceTemplateApply) -> Option<String> {
    let mut waiting = Vec::new();
    for r in apply.spec.wait_for_workspaces.iter().flatten() {
        let ready = match workspace(state, &r.name) {
            Some(ws) => mirror_workspace(&ws)
                .iter()
                .any(|c| c.type_ == READY && c.status),
            None => false,
        };
        if !ready {
            waiting.push(r.name.clone());
        }
    }
    (!waiting.is_empty())
        .then(|| format!("waiting for Workspaces to be Ready: {}", waiting.join(", ")))
}

/// A Workspace by name, from the cache (which holds every Workspace).
fn workspace(state: &State, name: &str) -> Option<Arc<Workspace>> {
    state.workspaces.get_named(None, name)
}

/// The WorkspaceTemplate of an apply: from the cache, or read directly when it lives in a
/// namespace outside the operator's watch.
async fn template(
    state: &State,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<WorkspaceTemplate>>> {
    if state.ctx.in_scope(namespace) {
        return Ok(state.templates.get_named(Some(namespace), name));
    }
    let api: Api<WorkspaceTemplate> = Api::namespaced(state.ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

/// Whether a CAPTControlPlane owns this apply (it then reports the apply's progress itself).
fn owned_by_control_plane(apply: &WorkspaceTemplateApply) -> bool {
    apply
        .owner_references()
        .iter()
        .any(|o| o.kind == "CAPTControlPlane" && o.controller == Some(true))
}

fn spec_hash(spec: &WorkspaceSpec) -> String {
    names::short_hash(&serde_json::to_string(spec).unwrap_or_default(), 16)
}
