//! The Cluster API pause of an apply, and `clusterctl move`'s hand-over: a paused apply
//! pauses its Workspace in provider-terraform too (`crossplane.io/paused`) and lifts
//! clusterctl's block-move annotation once the provider confirms; unpaused, it lifts the
//! pause again (`reconcile`); moved, `release` lets the source's Workspace go. The decision
//! ([`hand_over`]) is pure and tested in `decide_tests.rs`.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::look::workspace;
use super::{State, owned_by, workspace_name_of};
use crate::api::{Workspace, WorkspaceTemplateApply};
use crate::error::Result;
use crate::names;
use crate::status::reason;

/// What a paused apply does with its Workspace: pause it in provider-terraform too
/// (`crossplane.io/paused`), so that `clusterctl move` can carry the apply to another
/// management cluster while nothing runs Terraform here; the target's operator creates a
/// Workspace of the same name whose plan finds the state where it was. A plain pause and
/// unpause keeps the Workspace object as it is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HandOver {
    /// Mark the apply ([`names::RELEASED_ANNOTATION`]), hand the Workspace's connection
    /// Secret to the apply, and pause the Workspace unless it is paused already.
    Pause,
    /// Paused, but provider-terraform has not said so yet (`Synced` reason
    /// [`reason::RECONCILE_PAUSED`]): a reconcile it started may still run Terraform.
    AwaitPause,
    /// The Workspace is being deleted (destroyed): wait until it is gone.
    AwaitDeletion,
    /// Nothing of this apply runs Terraform here any more: drop the block-move annotation.
    Unblock,
    /// Nothing to do.
    Nothing,
}

/// The hand-over step of a paused apply (`apply`, and the Workspace of its name). A deleted
/// apply keeps its Workspace: its destroy runs once it is unpaused. Pure.
pub(super) fn hand_over_step(
    apply: &WorkspaceTemplateApply,
    existing: Option<&Workspace>,
) -> HandOver {
    if apply.metadata.deletion_timestamp.is_some() {
        return HandOver::Nothing;
    }
    match existing.filter(|ws| owned_by(ws, apply)) {
        Some(ws) if ws.metadata.deletion_timestamp.is_some() => HandOver::AwaitDeletion,
        Some(ws)
            if !crossplane_paused(ws)
                || !apply.annotations().contains_key(names::RELEASED_ANNOTATION) =>
        {
            HandOver::Pause
        }
        Some(ws) if !provider_paused(ws) => HandOver::AwaitPause,
        _ if apply
            .annotations()
            .contains_key(names::BLOCK_MOVE_ANNOTATION) =>
        {
            HandOver::Unblock
        }
        _ => HandOver::Nothing,
    }
}

/// Whether this operator paused `ws` for its apply's Cluster (both annotations set).
pub(super) fn paused_for_cluster(ws: &Workspace) -> bool {
    ws.annotations()
        .contains_key(names::WORKSPACE_PAUSED_ANNOTATION)
        && crossplane_paused(ws)
}

/// Whether `ws` carries crossplane's pause, whoever set it. A pause set by hand is kept as
/// it is: neither marked as this operator's nor lifted on unpause.
fn crossplane_paused(ws: &Workspace) -> bool {
    ws.annotations()
        .get(names::CROSSPLANE_PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Whether provider-terraform reports `ws` paused: `Synced=False` with reason
/// `ReconcilePaused`, which crossplane-runtime writes before it returns from a paused
/// reconcile (so no Terraform of its runs after it).
fn provider_paused(ws: &Workspace) -> bool {
    ws.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == "Synced" && c.status == "False" && c.reason == reason::RECONCILE_PAUSED
        })
    })
}

/// How often a paused apply looks again while provider-terraform has not confirmed the pause
/// of its Workspace (the echo of its own writes does not wake it).
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A paused apply (its Cluster paused, as `clusterctl move` does first) pauses its Workspace
/// in provider-terraform too ([`HandOver`]), then drops the block-move annotation once the
/// provider confirms, and clusterctl goes on. The Workspace object stays: unpaused (a plain
/// pause, or a failed move), the apply lifts the pause; moved, the source's Workspace is
/// released once clusterctl has deleted the apply (`release`), and the target's operator
/// creates one of the same name, whose plan finds the state as it was: nothing is applied.
pub(super) async fn hand_over(
    apply: &Arc<WorkspaceTemplateApply>,
    state: &State,
    api: &Api<WorkspaceTemplateApply>,
) -> Result<Action> {
    let ws_name = workspace_name_of(apply);
    let existing = workspace(state, &ws_name);
    match hand_over_step(apply, existing.as_deref()) {
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
            if existing.as_deref().is_some_and(|ws| !crossplane_paused(ws)) {
                set_workspace_pause(state, &ws_name, true).await?;
            }
            let message = format!(
                "paused: Workspace {ws_name} paused in provider-terraform (crossplane.io/paused); nothing is destroyed"
            );
            let ctx = &state.ctx;
            ctx.event(
                apply.as_ref(),
                EventType::Normal,
                crate::status::events::PAUSED_WORKSPACE,
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

/// Hands the paused Workspace's connection Secret to the apply: the Workspace's (controller)
/// owner reference becomes the apply's (not a controller). While the Workspace stays paused, the
/// Secret then follows the apply, not the Workspace: a `clusterctl move` deletes the source's
/// apply and its Workspace is released (orphaned, `workspace_apply::release`), and the garbage
/// collector takes the Secret with the apply; the target's Workspace publishes its own. When
/// the pause is lifted instead, provider-terraform publishes into the Secret again (it adopts
/// a connection Secret that no one controls).
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
pub(super) async fn block_move(
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
pub(super) async fn annotate(
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
