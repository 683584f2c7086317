//! A CAPTCluster's reconcile: its VPC apply and its teardown (the writes); what they mean for
//! its status is observed in `observe` and reported in `report`.

use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::report::{observed_with, write_built, write_status};
use super::status::Vpc;
use super::{CONTROLLER, RESYNC, State, control_planes_of, pause};
use crate::api::{CAPTCluster, WorkspaceTemplateApply};
use crate::controller::workspace_apply::workspace_name_of;
use crate::error::{Error, Result};
use crate::names::{CAPT_CLUSTER_FINALIZER, IN_USE_FINALIZER};
use crate::render::vpc;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::write::{check_owner, write_if_changed};

/// How soon a VPC apply whose name is taken is tried again (nothing wakes the CAPTCluster
/// when the other object goes).
const WRITE_FAILURE_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn reconcile(c: Arc<CAPTCluster>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.applies.is_ready() && state.control_planes.is_ready()) {
        return Ok(Action::requeue(crate::controller::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let c = state.capt_clusters.latest(c);
    let ns = c
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(c.name_any()))?;
    let api: Api<CAPTCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = vpc::cluster_of(&c.metadata);
    let known = match state.clusters.named(&ns, Some(&cluster)) {
        pause::Known::Unknown => return Ok(Action::requeue(pause::CLUSTERS_UNKNOWN)),
        pause::Known::Cluster(known) => known,
    };
    let paused = pause::is_paused(c.as_ref(), known.as_deref());
    let apply = own_apply(&c, &state);
    if paused.is_some() {
        // Cluster API's pause: nothing but the status is written, deletion included.
        let deleting = c
            .metadata
            .deletion_timestamp
            .is_some()
            .then(|| "deletion waits until the pause ends".to_string());
        write_status(&c, &state, apply.as_deref(), paused, deleting).await?;
        return Ok(Action::await_change());
    }
    if c.metadata.deletion_timestamp.is_some() {
        return teardown(&c, &state, &api, apply.as_deref()).await;
    }
    let c = ensure_finalizer(&api, &state.capt_clusters, c, CAPT_CLUSTER_FINALIZER).await?;
    reconcile_vpc(&c, &state, apply).await
}

/// The VPC apply of `c` if it exists and is controlled by `c`.
fn own_apply(c: &CAPTCluster, state: &State) -> Option<Arc<WorkspaceTemplateApply>> {
    let apply = state
        .applies
        .get_named(Some(&vpc::namespace(c)), &vpc::apply_name(c))?;
    let uid = c.uid()?;
    apply
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
        .then_some(apply)
}

/// Keeps the VPC apply as rendered and reports it.
async fn reconcile_vpc(
    c: &CAPTCluster,
    state: &State,
    existing: Option<Arc<WorkspaceTemplateApply>>,
) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = vpc::namespace(c);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    let desired = vpc::render(c);
    let name = desired.name_any();
    if let Some(apply) = existing.as_deref()
        && apply.metadata.deletion_timestamp.is_some()
    {
        // Deleted by someone else (a person, the namespace's deletion): its Workspace is kept
        // until no control plane reads its Secret; then it is recreated.
        release_when_unused(c, state, &applies, apply).await?;
        write_status(c, state, Some(apply), None, None).await?;
        return Ok(Action::await_change());
    }
    // An apply of that name that `c` does not control is left alone and reported.
    if existing.is_none()
        && let Some(other) = state.applies.get_named(Some(&ns), &name)
        && let Err(e) = check_owner(&desired, other.as_ref())
    {
        let message = format!("{e}");
        let vpc = Vpc::NotReady {
            reason: crate::status::reason::APPLY_NAME_CONFLICT.into(),
            message,
        };
        write_built(c, state, &observed_with(c, None, vpc, None, None)).await?;
        return Ok(Action::requeue(WRITE_FAILURE_RETRY));
    }
    let mut apply = existing;
    let written = match write_if_changed(&applies, &state.applies, &desired, apply.as_deref()).await
    {
        // An apply of that name outside this controller's watch (without the VPC label)
        // that `c` does not control: reported, left alone, tried again later.
        Err(e @ Error::NotOwned { .. }) => {
            let vpc = Vpc::NotReady {
                reason: crate::status::reason::APPLY_NAME_CONFLICT.into(),
                message: e.to_string(),
            };
            write_built(c, state, &observed_with(c, None, vpc, None, None)).await?;
            return Ok(Action::requeue(WRITE_FAILURE_RETRY));
        }
        other => other?,
    };
    if let Some(written) = written {
        // Recorded before the event's round trip: later versions may be on their way.
        state.applies.remember(written.clone());
        if apply.is_none() {
            info!(capt_cluster = %c.name_any(), apply = %name, "creating VPC apply");
            ctx.event(
                c,
                EventType::Normal,
                crate::status::events::CREATED_VPC_WORKSPACE,
                format!("created WorkspaceTemplateApply {name} for the VPC"),
            )
            .await;
        }
        apply = Some(Arc::new(written));
    }
    write_status(c, state, apply.as_deref(), None, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// Removes [`IN_USE_FINALIZER`] from `apply` once no control plane of the cluster exists.
/// Returns the control planes still there.
async fn release_when_unused(
    c: &CAPTCluster,
    state: &State,
    applies: &Api<WorkspaceTemplateApply>,
    apply: &WorkspaceTemplateApply,
) -> Result<Vec<String>> {
    let left = control_planes_of(state, &vpc::namespace(c), &vpc::cluster_of(&c.metadata));
    if left.is_empty() {
        remove_finalizer(applies, apply, IN_USE_FINALIZER).await?;
    }
    Ok(left)
}

/// Deletion: with `retainVpcOnDelete`, keeps the VPC (the apply retains its Workspace and
/// no longer holds it); otherwise waits until every control plane of the cluster is gone
/// (their workspaces read the VPC connection Secret when they are destroyed), then deletes
/// the apply and waits for it (and so for the VPC's destroy) before releasing the finalizer.
async fn teardown(
    c: &CAPTCluster,
    state: &State,
    api: &Api<CAPTCluster>,
    apply: Option<&WorkspaceTemplateApply>,
) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = vpc::namespace(c);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(apply) = apply else {
        remove_finalizer(api, c, CAPT_CLUSTER_FINALIZER).await?;
        ctx.forget_events(c.uid().as_deref());
        return Ok(Action::await_change());
    };
    let name = apply.name_any();
    if vpc::retained(c) {
        if apply.metadata.deletion_timestamp.is_none()
            && apply.spec.retain_workspace_on_delete != Some(true)
        {
            // retainVpcOnDelete was set after the last reconcile: the apply says so first.
            let desired = vpc::render(c);
            if let Some(written) =
                write_if_changed(&applies, &state.applies, &desired, Some(apply)).await?
            {
                state.applies.remember(written);
            }
            return Ok(Action::await_change());
        }
        remove_finalizer(&applies, apply, IN_USE_FINALIZER).await?;
        ctx.event(
            c,
            EventType::Normal,
            crate::status::events::RETAINED_VPC,
            format!(
                "kept the VPC: WorkspaceTemplateApply {name} keeps its Workspace {} when it is deleted",
                workspace_name_of(apply)
            ),
        )
        .await;
        remove_finalizer(api, c, CAPT_CLUSTER_FINALIZER).await?;
        ctx.forget_events(c.uid().as_deref());
        return Ok(Action::await_change());
    }
    let left = control_planes_of(state, &ns, &vpc::cluster_of(&c.metadata));
    let waiting = if left.is_empty() {
        if apply.metadata.deletion_timestamp.is_none() {
            match applies.delete(&name, &Default::default()).await {
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                other => {
                    other?;
                }
            }
            ctx.event(
                c,
                EventType::Normal,
                crate::status::events::DELETING_VPC_WORKSPACE,
                format!("every control plane of the cluster is gone; deleting WorkspaceTemplateApply {name}"),
            )
            .await;
        }
        remove_finalizer(&applies, apply, IN_USE_FINALIZER).await?;
        format!(
            "destroying the VPC: waiting for WorkspaceTemplateApply {name} and its Workspace {} to be deleted",
            workspace_name_of(apply)
        )
    } else {
        format!(
            "waiting for CAPTControlPlane {} to be deleted first: their workspaces read the VPC connection Secret when they are destroyed",
            left.join(", ")
        )
    };
    write_status(c, state, Some(apply), None, Some(waiting)).await?;
    // The apply's and the control planes' watches bring it back.
    Ok(Action::await_change())
}
