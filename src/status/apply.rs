//! What a Workspace's conditions mean for its WorkspaceTemplateApply, and what an apply's
//! conditions mean for the profile or cluster it creates.
//!
//! provider-terraform marks a new Workspace `Ready=False/Creating` until the first apply
//! succeeds and reports Terraform errors as `Synced=False/ReconcileError`. So "creating" is
//! never a failure, and a failure is read from `Synced`, which CAPT ignored.

use kube::ResourceExt;

use super::conditions::Desired;
use crate::api::conditions::{READY, SYNCED, XpCondition, find};
use crate::api::{Workspace, WorkspaceTemplateApply};

/// Reasons set by the apply controller itself.
pub mod reason {
    /// Required secrets or keys are missing.
    pub const WAITING_FOR_SECRETS: &str = "WaitingForSecrets";
    /// Required workspaces are not ready.
    pub const WAITING_FOR_WORKSPACES: &str = "WaitingForWorkspaces";
    /// The Workspace was written and the provider has not reported on it yet.
    pub const CREATING: &str = "Creating";
    /// The WorkspaceTemplate does not exist.
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// The WorkspaceTemplate cannot be rendered.
    pub const INVALID_TEMPLATE: &str = "InvalidTemplate";
    /// A Workspace of that name belongs to something else.
    pub const WORKSPACE_CONFLICT: &str = "WorkspaceNameConflict";
    /// Nothing went wrong.
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
    /// The Workspace is being deleted.
    pub const DELETING: &str = "Deleting";
}

/// The conditions an apply shows while its Workspace exists: the Workspace's own, except that
/// conditions computed for an older generation of the Workspace spec do not count as Ready.
pub fn mirror_workspace(workspace: &Workspace) -> Vec<Desired> {
    let conditions = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = workspace.metadata.generation;
    let current = |c: &&XpCondition| match (c.observed_generation, generation) {
        (Some(seen), Some(now)) => seen >= now,
        _ => true,
    };
    let synced = match find(conditions, SYNCED) {
        Some(c) => Desired::new(
            SYNCED,
            c.is_true(),
            &c.reason,
            c.message.clone().unwrap_or_default(),
        ),
        None => Desired::new(SYNCED, true, reason::RECONCILE_SUCCESS, ""),
    };
    let ready = match find(conditions, READY).filter(current) {
        Some(c) => Desired::new(
            READY,
            c.is_true(),
            &c.reason,
            c.message.clone().unwrap_or_default(),
        ),
        None => Desired::new(
            READY,
            false,
            reason::CREATING,
            format!(
                "waiting for provider-terraform to apply Workspace {}",
                workspace.name_any()
            ),
        ),
    };
    vec![synced, ready]
}

/// What an apply is doing, as the control plane sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ChildState {
    /// Being created or updated, or waiting for something it needs.
    Creating {
        /// Why it is not ready yet.
        reason: String,
        /// Details.
        message: String,
    },
    /// Applied and ready.
    Ready,
    /// Terraform or the apply controller reported an error.
    Failed {
        /// Reason of the failing condition.
        reason: String,
        /// Its message.
        message: String,
    },
    /// Being deleted.
    Deleting,
}

/// The state of an apply from its status. Status written for an older generation means the
/// apply controller has not caught up yet, so it is still in progress.
pub fn child_state(apply: &WorkspaceTemplateApply) -> ChildState {
    if apply.metadata.deletion_timestamp.is_some() {
        return ChildState::Deleting;
    }
    let Some(status) = apply
        .status
        .as_ref()
        .filter(|s| s.observed_generation == apply.metadata.generation)
    else {
        return ChildState::Creating {
            reason: reason::CREATING.into(),
            message: format!(
                "waiting for WorkspaceTemplateApply {} to be processed",
                apply.name_any()
            ),
        };
    };
    if let Some(synced) = find(&status.conditions, SYNCED).filter(|c| !c.is_true()) {
        return ChildState::Failed {
            reason: synced.reason.clone(),
            message: synced
                .message
                .clone()
                .unwrap_or_else(|| synced.reason.clone()),
        };
    }
    match find(&status.conditions, READY) {
        Some(ready) if ready.is_true() => ChildState::Ready,
        Some(ready) => ChildState::Creating {
            reason: ready.reason.clone(),
            message: ready.message.clone().unwrap_or_default(),
        },
        None => ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workspace(generation: i64, conditions: serde_json::Value) -> Workspace {
        serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1", "kind": "Workspace",
            "metadata": { "name": "ws", "generation": generation },
            "spec": { "forProvider": { "source": "Inline", "module": "" } },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    }

    fn cond(t: &str, s: &str, r: &str, m: &str, g: i64) -> serde_json::Value {
        json!({ "type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": g })
    }

    #[test]
    fn creating_is_not_a_failure() {
        let ws = workspace(
            1,
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        let m = mirror_workspace(&ws);
        assert!(m[0].status);
        assert_eq!((m[1].status, m[1].reason.as_str()), (false, "Creating"));
    }

    #[test]
    fn terraform_errors_come_from_synced() {
        let ws = workspace(
            1,
            json!([cond(
                "Synced",
                "False",
                "ReconcileError",
                "apply failed: boom",
                1
            )]),
        );
        let m = mirror_workspace(&ws);
        assert_eq!(
            (m[0].status, m[0].reason.as_str(), m[0].message.as_str()),
            (false, "ReconcileError", "apply failed: boom")
        );
        assert!(!m[1].status);
    }

    #[test]
    fn ready_for_an_older_spec_is_not_ready() {
        let ws = workspace(2, json!([cond("Ready", "True", "Available", "", 1)]));
        assert!(!mirror_workspace(&ws)[1].status);
        let ws = workspace(2, json!([cond("Ready", "True", "Available", "", 2)]));
        assert!(mirror_workspace(&ws)[1].status);
    }

    fn apply(
        generation: i64,
        observed: Option<i64>,
        conditions: serde_json::Value,
    ) -> WorkspaceTemplateApply {
        serde_json::from_value(json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply",
            "metadata": { "name": "a", "namespace": "n", "generation": generation },
            "spec": { "templateRef": { "name": "t" } },
            "status": { "observedGeneration": observed, "conditions": conditions }
        }))
        .unwrap()
    }

    #[test]
    fn child_states() {
        let ready = apply(
            1,
            Some(1),
            json!([
                cond("Ready", "True", "Available", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        assert_eq!(child_state(&ready), ChildState::Ready);
        let stale = apply(
            2,
            Some(1),
            json!([cond("Ready", "True", "Available", "", 1)]),
        );
        assert!(matches!(child_state(&stale), ChildState::Creating { .. }));
        let failed = apply(
            1,
            Some(1),
            json!([cond(
                "Synced",
                "False",
                "ReconcileError",
                "ResourceLimitExceeded",
                1
            )]),
        );
        assert_eq!(
            child_state(&failed),
            ChildState::Failed {
                reason: "ReconcileError".into(),
                message: "ResourceLimitExceeded".into()
            }
        );
        let waiting = apply(
            1,
            Some(1),
            json!([cond("Ready", "False", "WaitingForSecrets", "missing x", 1)]),
        );
        assert_eq!(
            child_state(&waiting),
            ChildState::Creating {
                reason: "WaitingForSecrets".into(),
                message: "missing x".into()
            }
        );
        let mut deleting = ready.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(child_state(&deleting), ChildState::Deleting);
    }
}
