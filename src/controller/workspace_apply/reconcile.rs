//! One reconcile of an apply: observe (its Workspace, from the cache) → decide (pure, in
//! `decide`: one [`Step`]) → act (the write, deletion or status report that step names),
//! reading what the decision asks for when it asks ([`Step::Look`]).

use std::sync::Arc;

use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::decide::{Lookup, Observed, Step, decide};
use super::handover::{annotate, block_move, hand_over, paused_for_cluster, set_workspace_pause};
use super::look::{desire, prerequisites, workspace};
use super::status::{blocked, template_found, template_missing, waiting, write_status};
use super::{RESYNC, State, forget, owned_by, workspace_name_of};
use crate::api::{CAPTControlPlane, Workspace, WorkspaceTemplateApply};
use crate::controller::control_plane::pause;
use crate::error::{Error, Result};
use crate::names::{self, APPLY_FINALIZER};
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::write::write;
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
                ctx.event(
                    apply,
                    EventType::Normal,
                    crate::status::events::RETAINED_WORKSPACE,
                    message,
                )
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
    ctx.event(
        apply,
        EventType::Normal,
        crate::status::events::DELETING_WORKSPACE,
        message,
    )
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
    // A control plane's or CAPTCluster's applies report through their owner, where users look.
    if !announced_by_owner(apply) {
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

/// Whether a CAPTControlPlane or a CAPTCluster controls this apply: its owner reports the
/// apply's progress (the control plane's status and `FargateProfilesReady`, the CAPTCluster's
/// `CreatedVPCWorkspace` and `VPCCreated`), so the apply publishes no `CreatedWorkspace` or
/// `UpdatedWorkspace` event of its own (one Event less per cluster than before, for the VPC).
/// Its deletion is still announced on the apply (`DeletingWorkspace`).
fn announced_by_owner(apply: &WorkspaceTemplateApply) -> bool {
    apply.owner_references().iter().any(|o| {
        matches!(o.kind.as_str(), "CAPTControlPlane" | "CAPTCluster") && o.controller == Some(true)
    })
}

#[cfg(test)]
mod tests {
    use super::announced_by_owner;
    use crate::api::WorkspaceTemplateApply;

    fn owned_by(kind: &str, controller: bool) -> WorkspaceTemplateApply {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "WorkspaceTemplateApply",
            "metadata": { "name": "a", "namespace": "n", "ownerReferences": [{
                "apiVersion": "x/v1", "kind": kind, "name": "o", "uid": "u",
                "controller": controller,
            }] },
            "spec": { "templateRef": { "name": "t" } },
        }))
        .expect("an apply")
    }

    #[test]
    fn only_applies_of_a_cluster_owner_leave_the_announcement_to_it() {
        assert!(announced_by_owner(&owned_by("CAPTControlPlane", true)));
        assert!(announced_by_owner(&owned_by("CAPTCluster", true)));
        // A user's own apply, or one merely referenced by an owner, announces its Workspace.
        assert!(!announced_by_owner(&owned_by("ConfigMap", true)));
        assert!(!announced_by_owner(&owned_by("CAPTCluster", false)));
    }
}
