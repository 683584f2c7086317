//! Releases the Workspaces this operator paused for a Cluster API pause once their apply is
//! gone without its finalizer running. `clusterctl move` does exactly that: it removes the
//! finalizers of the objects it copied to the target and deletes them from the source, so no
//! reconcile of the apply sees the deletion. Such a Workspace is deleted under
//! `deletionPolicy: Orphan`: provider-terraform drops it without `terraform destroy`, and its
//! state stays in the backend for the target's Workspace of the same name.
//!
//! Three writes, in this order, each done once (the next sweep finds where it stopped): Orphan
//! while the Workspace is still paused (so no reconcile of the provider can run Terraform in
//! between), the delete, then the pause lifted (crossplane-runtime checks the pause before a
//! deletion, so a paused Workspace would never go).
//!
//! Built on the apply controller's watch caches: a sweep reads them only (no request), at
//! start, after each apply deletion the watch reports, and every [`RESCAN`] while a release
//! is on its way. kube-runtime's `Controller` reconciles only objects its store holds, so it
//! cannot run for an apply that is already gone.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, Patch};
use kube::{Api, ResourceExt};
use tracing::info;

use super::handover::{paused_for_cluster, set_workspace_pause};
use super::{RESYNC, State, apply_of_workspace};
use crate::api::Workspace;
use crate::error::Result;
use crate::names;

/// How soon a sweep runs again while a release is on its way.
const RESCAN: Duration = Duration::from_secs(1);

/// The next write of a release.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Release {
    /// Set `spec.deletionPolicy: Orphan`.
    Orphan,
    /// Delete the Workspace (its connection Secret is orphaned, not deleted).
    Delete,
    /// Lift the pause, so that provider-terraform removes its finalizer.
    Resume,
    /// Deleted and unpaused: provider-terraform finishes it.
    Await,
}

/// What to do with `ws`, whose apply is `apply_here` on this management cluster (same name
/// and uid), for its release; `None` when it is not one to release. Pure.
pub(super) fn release_step(ws: &Workspace, apply_here: bool) -> Option<Release> {
    let ours = ws
        .annotations()
        .contains_key(names::WORKSPACE_PAUSED_ANNOTATION);
    if apply_here || !ours {
        return None;
    }
    Some(if ws.spec.deletion_policy.as_deref() != Some("Orphan") {
        Release::Orphan
    } else if ws.metadata.deletion_timestamp.is_none() {
        Release::Delete
    } else if paused_for_cluster(ws) {
        Release::Resume
    } else {
        Release::Await
    })
}

/// Sweeps until `shutdown` resolves: at start, on `state.release` (an apply deletion), and
/// every [`RESCAN`] while a release is under way ([`RESYNC`] otherwise).
pub(super) async fn run(state: Arc<State>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let ready = state.workspaces.is_ready() && state.applies.is_ready();
        let wait = match ready.then(|| sweep(&state)) {
            None => RESCAN,
            Some(sweep) => match sweep.await {
                Ok(false) => RESYNC,
                Ok(true) => RESCAN,
                Err(error) => {
                    tracing::warn!(%error, "releasing a moved Workspace failed; trying again");
                    RESCAN
                }
            },
        };
        tokio::select! {
            _ = state.release.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => return,
        }
    }
}

/// One pass over the cached Workspaces; `true` while a release is under way.
async fn sweep(state: &State) -> Result<bool> {
    let scope = state.ctx.namespace.as_deref();
    let candidates = state.workspaces.filter_by_meta(|meta| {
        meta.annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(names::WORKSPACE_PAUSED_ANNOTATION))
    });
    let mut pending = false;
    for ws in candidates {
        // Another namespace's Workspace is another operator's to release.
        let Some(apply_ref) = apply_of_workspace(&ws, scope) else {
            continue;
        };
        let apply_here = state.applies.get(&apply_ref).is_some_and(|apply| {
            apply.uid().as_deref() == ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str)
        });
        let Some(step) = release_step(&ws, apply_here) else {
            continue;
        };
        // The apply cache may be filtered (`--watch-filter`): before the first write, make
        // sure the apply is gone from the API server too, not only another instance's.
        if step == Release::Orphan && apply_exists(state, &apply_ref, &ws).await? {
            continue;
        }
        pending = true;
        release(state, &ws, step).await?;
    }
    Ok(pending)
}

/// Whether the apply `apply_ref` of `ws` (same uid) exists in the API server (one GET, only
/// for a Workspace about to be released).
async fn apply_exists(
    state: &State,
    apply_ref: &kube::runtime::reflector::ObjectRef<crate::api::WorkspaceTemplateApply>,
    ws: &Workspace,
) -> Result<bool> {
    let ns = apply_ref.namespace.as_deref().unwrap_or_default();
    let api: Api<crate::api::WorkspaceTemplateApply> =
        Api::namespaced(state.ctx.client.clone(), ns);
    let live = api.get_opt(&apply_ref.name).await?;
    let uid = ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str);
    Ok(live.is_some_and(|a| a.uid().as_deref() == uid))
}

/// Does one step of a release.
async fn release(state: &State, ws: &Workspace, step: Release) -> Result<()> {
    let api: Api<Workspace> = Api::all(state.ctx.client.clone());
    let name = ws.name_any();
    match step {
        Release::Orphan => {
            let orphan = serde_json::json!({ "spec": { "deletionPolicy": "Orphan" } });
            let params = crate::runtime::write::patch_params();
            let written = api.patch(&name, &params, &Patch::Merge(&orphan)).await?;
            state.workspaces.remember(written);
        }
        Release::Delete => {
            info!(workspace = %name, "releasing Workspace: its apply is gone (moved by clusterctl); deletionPolicy Orphan, nothing is destroyed");
            match api.delete(&name, &DeleteParams::orphan()).await {
                Ok(deleted) => {
                    if let Some(terminating) = deleted.left() {
                        state.workspaces.remember(terminating);
                    }
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Release::Resume => {
            set_workspace_pause(state, &name, false).await?;
        }
        Release::Await => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workspace(metadata: serde_json::Value, policy: Option<&str>) -> Workspace {
        let mut ws = json!({
            "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
            "metadata": metadata,
            "spec": { "forProvider": { "source": "Inline", "module": "" } },
        });
        if let Some(p) = policy {
            ws["spec"]["deletionPolicy"] = json!(p);
        }
        serde_json::from_value(ws).expect("a Workspace")
    }

    #[test]
    fn a_paused_workspace_without_its_apply_is_orphaned_deleted_then_resumed() {
        let paused = json!({ "name": "w", "annotations": {
            (names::CROSSPLANE_PAUSED_ANNOTATION): "true",
            (names::WORKSPACE_PAUSED_ANNOTATION): "",
        } });
        let deleted = json!({ "name": "w", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["finalizer.managedresource.crossplane.io"],
            "annotations": paused["annotations"].clone() });
        let resumed = json!({ "name": "w", "deletionTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["finalizer.managedresource.crossplane.io"],
            "annotations": { (names::WORKSPACE_PAUSED_ANNOTATION): "" } });
        let step = |m: &serde_json::Value, p| release_step(&workspace(m.clone(), p), false);
        assert_eq!(step(&paused, Some("Delete")), Some(Release::Orphan));
        assert_eq!(step(&paused, None), Some(Release::Orphan));
        assert_eq!(step(&paused, Some("Orphan")), Some(Release::Delete));
        assert_eq!(step(&deleted, Some("Orphan")), Some(Release::Resume));
        assert_eq!(step(&resumed, Some("Orphan")), Some(Release::Await));
        // Its apply is here (paused, or unpausing): not released.
        assert_eq!(release_step(&workspace(paused.clone(), None), true), None);
    }

    #[test]
    fn a_workspace_paused_by_someone_else_is_left_alone() {
        let by_hand = json!({ "name": "w", "annotations": {
            (names::CROSSPLANE_PAUSED_ANNOTATION): "true",
        } });
        assert_eq!(release_step(&workspace(by_hand, None), false), None);
        assert_eq!(
            release_step(&workspace(json!({ "name": "w" }), None), false),
            None
        );
    }
}
