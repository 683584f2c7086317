//! What a Workspace's conditions mean for its WorkspaceTemplateApply, and what an apply's
//! conditions mean for the profile or cluster it creates.
//!
//! provider-terraform marks a new Workspace `Ready=False/Creating` until the first apply
//! succeeds and reports Terraform errors as `Synced=False/ReconcileError`. So "creating" is
//! never a failure, and a failure is read from `Synced`, which CAPT ignored.

use kube::ResourceExt;

use k8s_openapi::jiff::Timestamp;

use super::conditions::WantedCondition;
use super::failure::{self, Verdict};
use super::reason;
use crate::api::conditions::{READY, SYNCED, XpCondition, find};
use crate::api::{Workspace, WorkspaceTemplateApply};

/// Whether provider-terraform has applied the Workspace's current spec: `Ready=True` and a
/// `Synced=True` written for the current `metadata.generation`.
///
/// The real provider (crossplane-runtime v2) stamps `observedGeneration` only on the conditions
/// its managed reconciler sets (`Synced`, `Creating`, `Deleting`), not on `Ready=True/Available`,
/// which keeps showing while a changed Workspace is re-applied. `Synced=True` for a generation
/// is written after the reconcile that saw it succeeded: after the synchronous
/// `terraform apply` of an update, or after a plan without changes; so, with `Ready=True`, it
/// means that generation is in AWS. A `Synced` without `observedGeneration` (an older
/// crossplane-runtime) is taken as current.
pub fn workspace_applied(workspace: &Workspace) -> bool {
    let conditions = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let synced_now = find(conditions, SYNCED).is_some_and(|c| {
        c.is_true()
            && match (c.observed_generation, workspace.metadata.generation) {
                (Some(seen), Some(now)) => seen >= now,
                _ => true,
            }
    });
    synced_now && find(conditions, READY).is_some_and(XpCondition::is_true)
}

/// Whether provider-terraform has said anything of a Workspace beyond "creating": a condition
/// other than `Ready=False/Creating` and a successful `Synced` (crossplane-runtime's managed
/// reconciler writes those two right after the create call). An error, `Available`, a
/// deletion or an unknown reason is news. A new apply's first status waits a little for news
/// (`pacing::first_report_wait`): a provider that answers quickly then has its answer reported
/// in one status write instead of two (`Creating`, then `Available` on the next observation).
pub fn workspace_has_news(workspace: &Workspace) -> bool {
    let conditions = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    conditions.iter().any(|c| match c.type_.as_str() {
        READY => c.is_true() || c.reason != reason::CREATING,
        SYNCED => !c.is_true(),
        _ => true,
    })
}

/// A Workspace's non-sensitive outputs as the apply reports them: strings as they are, other
/// values as JSON text (`status.outputs` of an apply, a map of output name to text); None
/// until the provider reports any.
pub fn workspace_outputs(ws: &Workspace) -> Option<std::collections::BTreeMap<String, String>> {
    let outputs = ws.status.as_ref()?.at_provider.as_ref()?.outputs.as_ref()?;
    Some(
        outputs
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    )
}

/// The conditions an apply shows while its Workspace exists: the Workspace's own, except that
/// `Ready=True` counts only once the current spec is applied ([`workspace_applied`]); before,
/// the apply shows `Ready=False` with reason [`reason::APPLYING`].
pub fn mirror_workspace(workspace: &Workspace) -> Vec<WantedCondition> {
    let conditions = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let synced = match find(conditions, SYNCED) {
        Some(c) => WantedCondition::new(
            SYNCED,
            c.is_true(),
            &c.reason,
            c.message.clone().unwrap_or_default(),
        ),
        None => WantedCondition::new(SYNCED, true, reason::RECONCILE_SUCCESS, ""),
    };
    // Paused only while it still carries the pause: crossplane-runtime rewrites `Synced` when
    // a reconcile ends, so after an unpause a stale `ReconcilePaused` shows while Terraform
    // already runs (reported `Applying` then, an operation in flight).
    let paused = find(conditions, SYNCED).is_some_and(|c| c.reason == reason::RECONCILE_PAUSED)
        && workspace
            .annotations()
            .get(crate::names::CROSSPLANE_PAUSED_ANNOTATION)
            .is_some_and(|v| v == "true");
    let ready = match find(conditions, READY) {
        // Whether its current spec is in AWS is unknown until the provider runs again.
        _ if paused => WantedCondition::new(
            READY,
            false,
            reason::RECONCILE_PAUSED,
            format!(
                "provider-terraform does not reconcile Workspace {} while it is annotated crossplane.io/paused",
                workspace.name_any()
            ),
        ),
        Some(c) if c.is_true() && !workspace_applied(workspace) => WantedCondition::new(
            READY,
            false,
            reason::APPLYING,
            format!(
                "waiting for provider-terraform to apply generation {} of Workspace {}",
                workspace.metadata.generation.unwrap_or_default(),
                workspace.name_any()
            ),
        ),
        // provider-terraform's `Creating` (no message) says what the apply said before it:
        // the same words, so that it changes nothing and costs no status write.
        Some(c) if !c.is_true() && c.reason == reason::CREATING && no_message(c) => {
            creating(workspace)
        }
        Some(c) => WantedCondition::new(
            READY,
            c.is_true(),
            &c.reason,
            c.message.clone().unwrap_or_default(),
        ),
        None => creating(workspace),
    };
    vec![synced, ready]
}

fn no_message(condition: &XpCondition) -> bool {
    condition.message.as_deref().is_none_or(str::is_empty)
}

/// `Ready=False/Creating` while provider-terraform creates a Workspace.
fn creating(workspace: &Workspace) -> WantedCondition {
    WantedCondition::new(
        READY,
        false,
        reason::CREATING,
        format!(
            "waiting for provider-terraform to apply Workspace {}",
            workspace.name_any()
        ),
    )
}

/// What an apply is doing, as the control plane sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ChildState {
    /// Being created or updated, or waiting for something it needs, or retrying a transient
    /// error (reason [`failure::TRANSIENT_ERROR`]).
    Creating {
        /// Why it is not ready yet.
        reason: String,
        /// Details.
        message: String,
    },
    /// Applied and ready.
    Ready,
    /// Terraform or the apply controller reported an error that needs a person
    /// (`status::failure`).
    Failed {
        /// Reason of the failing condition.
        reason: String,
        /// Its message.
        message: String,
    },
    /// Being deleted; with the error its destroy reported, if any.
    Deleting(Option<DeleteError>),
}

/// The error a Workspace's destroy reported.
#[derive(Clone, Debug, PartialEq)]
pub struct DeleteError {
    /// Reason of the failing condition.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Whether it needs a person (`status::failure`); otherwise it is being retried.
    pub terminal: bool,
}

impl ChildState {
    /// Whether a Terraform operation of this apply may be running: it is being applied,
    /// retried or destroyed. Waiting for secrets or Workspaces, ready and failed are not.
    pub fn in_flight(&self) -> bool {
        match self {
            ChildState::Creating { reason, .. } => !matches!(
                reason.as_str(),
                reason::WAITING_FOR_SECRETS
                    | reason::WAITING_FOR_WORKSPACES
                    | reason::RECONCILE_PAUSED
            ),
            ChildState::Deleting(_) => true,
            ChildState::Ready | ChildState::Failed { .. } => false,
        }
    }
}

/// The apply's failing `Synced` condition, if its status is for the current generation.
fn failing_synced(apply: &WorkspaceTemplateApply) -> Option<&XpCondition> {
    let status = apply
        .status
        .as_ref()
        .filter(|s| s.observed_generation == apply.metadata.generation)?;
    // A paused Workspace is not an error: nothing runs, and someone chose it.
    find(&status.conditions, SYNCED)
        .filter(|c| !c.is_true() && c.reason != reason::RECONCILE_PAUSED)
}

/// When the transient error an apply reports counts as terminal (see `status::failure`);
/// None when it reports no transient error. The control plane looks again then.
pub fn transient_until(apply: &WorkspaceTemplateApply) -> Option<Timestamp> {
    let synced = failing_synced(apply)?;
    let message = synced.message.as_deref().unwrap_or(&synced.reason);
    match failure::verdict(
        &synced.reason,
        message,
        Some(synced.last_transition_time.0),
        synced.last_transition_time.0,
    ) {
        Verdict::Retrying { until } => Some(until),
        Verdict::Terminal => None,
    }
}

/// The state of an apply now; see [`child_state_at`].
pub fn child_state(apply: &WorkspaceTemplateApply) -> ChildState {
    child_state_at(apply, Timestamp::now())
}

/// The state of an apply at `now`. Status written for an older generation means the apply
/// controller has not caught up yet, so it is still in progress. An error counts as a failure
/// only when it needs a person at `now` (`status::failure`); a transient one is shown as
/// creating, with its message.
pub fn child_state_at(apply: &WorkspaceTemplateApply, now: Timestamp) -> ChildState {
    let failing = failing_synced(apply).map(|synced| {
        let message = synced
            .message
            .clone()
            .unwrap_or_else(|| synced.reason.clone());
        let since = Some(synced.last_transition_time.0);
        let verdict = failure::verdict(&synced.reason, &message, since, now);
        (synced.reason.clone(), message, verdict)
    });
    if apply.metadata.deletion_timestamp.is_some() {
        return ChildState::Deleting(failing.map(|(reason, message, verdict)| DeleteError {
            reason,
            message,
            terminal: verdict == Verdict::Terminal,
        }));
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
    match failing {
        Some((reason, message, Verdict::Terminal)) => {
            return ChildState::Failed { reason, message };
        }
        Some((_, message, Verdict::Retrying { until })) => {
            let hint = failure::hint(&message)
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return ChildState::Creating {
                reason: failure::TRANSIENT_ERROR.into(),
                message: format!(
                    "{message}{hint} (a transient error: provider-terraform retries it; it counts as failed if it lasts until {until})"
                ),
            };
        }
        None => {}
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
#[path = "apply_tests.rs"]
mod tests;
