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
    let paused = find(conditions, SYNCED).is_some_and(|c| c.reason == reason::RECONCILE_PAUSED);
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
    fn only_more_than_creating_is_news() {
        let creating = workspace(
            1,
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        assert!(!workspace_has_news(&creating));
        assert!(!workspace_has_news(&workspace(1, json!([]))), "nothing yet");
        let available = workspace(
            1,
            json!([
                cond("Ready", "True", "Available", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        assert!(workspace_has_news(&available));
        let failed = workspace(
            1,
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond("Synced", "False", "ReconcileError", "apply failed", 1)
            ]),
        );
        assert!(workspace_has_news(&failed), "an error is reported at once");
        let deleting = workspace(1, json!([cond("Ready", "False", "Deleting", "", 1)]));
        assert!(workspace_has_news(&deleting));
    }

    #[test]
    fn the_providers_creating_reads_as_the_wait_before_it() {
        // Before any report, and after the provider's `Creating`: the same conditions, so an
        // apply that reported the first does not write again for the second.
        let before = mirror_workspace(&workspace(1, json!([])));
        let creating = mirror_workspace(&workspace(
            1,
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        ));
        assert_eq!(before, creating);
        assert_eq!(
            creating[1].message,
            "waiting for provider-terraform to apply Workspace ws"
        );
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

    /// A condition as crossplane-runtime v2 writes `Ready=True/Available`: without
    /// `observedGeneration`.
    fn available() -> serde_json::Value {
        json!({ "type": "Ready", "status": "True", "reason": "Available", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" })
    }

    #[test]
    fn ready_counts_once_synced_is_for_the_current_generation() {
        // A Workspace changed to generation 2 keeps the Ready=True of generation 1 while
        // provider-terraform has not applied it: Synced still carries generation 1.
        let ws = workspace(
            2,
            json!([
                available(),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        assert!(!workspace_applied(&ws));
        let m = mirror_workspace(&ws);
        assert_eq!(
            (m[1].status, m[1].reason.as_str(), m[1].message.as_str()),
            (
                false,
                reason::APPLYING,
                "waiting for provider-terraform to apply generation 2 of Workspace ws"
            )
        );
        // After the synchronous terraform apply, Synced=True is written for generation 2.
        let ws = workspace(
            2,
            json!([
                available(),
                cond("Synced", "True", "ReconcileSuccess", "", 2)
            ]),
        );
        assert!(workspace_applied(&ws));
        assert_eq!(
            (
                mirror_workspace(&ws)[1].status,
                mirror_workspace(&ws)[1].reason.as_str()
            ),
            (true, "Available")
        );
        // A failed update of generation 2 leaves Ready=True as it was: not applied.
        let ws = workspace(
            2,
            json!([
                available(),
                cond(
                    "Synced",
                    "False",
                    "ReconcileError",
                    "update failed: boom",
                    2
                )
            ]),
        );
        assert!(!workspace_applied(&ws));
        let m = mirror_workspace(&ws);
        assert_eq!(
            (m[0].status, m[0].message.as_str()),
            (false, "update failed: boom")
        );
        assert_eq!(
            (m[1].status, m[1].reason.as_str()),
            (false, reason::APPLYING)
        );
        // The first apply ends with Creating for the current generation, then Available.
        let ws = workspace(
            1,
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond("Synced", "True", "ReconcileSuccess", "", 1)
            ]),
        );
        assert_eq!(mirror_workspace(&ws)[1].reason, "Creating");
        // An older crossplane-runtime without observedGeneration: taken as current.
        let ws = workspace(
            3,
            json!([
                available(),
                json!({ "type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-01-01T00:00:00Z" })
            ]),
        );
        assert!(workspace_applied(&ws));
        // Ready=True without Synced is not enough.
        assert!(!workspace_applied(&workspace(1, json!([available()]))));
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
        assert_eq!(child_state(&deleting), ChildState::Deleting(None));
    }

    #[test]
    fn a_paused_workspace_is_neither_a_failure_nor_in_flight() {
        // crossplane-runtime's paused reconcile: Synced=False/ReconcilePaused, no message,
        // Ready as it was.
        let ws = workspace(
            1,
            json!([
                available(),
                cond("Synced", "False", "ReconcilePaused", "", 1)
            ]),
        );
        let mirrored = mirror_workspace(&ws);
        let find = |t: &str| mirrored.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(find("Synced").reason, reason::RECONCILE_PAUSED);
        let ready = find("Ready");
        assert!(!ready.status && ready.reason == reason::RECONCILE_PAUSED);
        assert!(
            ready.message.contains("crossplane.io/paused"),
            "{}",
            ready.message
        );
        // The apply that mirrors it: not Failed (it was terminal before), not in flight.
        let paused = apply(
            1,
            Some(1),
            json!([
                cond("Synced", "False", "ReconcilePaused", "", 1),
                cond("Ready", "False", "ReconcilePaused", &ready.message, 1)
            ]),
        );
        let state = child_state(&paused);
        assert!(
            matches!(&state, ChildState::Creating { reason, .. } if reason == reason::RECONCILE_PAUSED),
            "{state:?}"
        );
        assert!(!state.in_flight());
        assert_eq!(transient_until(&paused), None);
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_transient_error_is_retried_until_the_limit() {
        let throttled = apply(
            1,
            Some(1),
            json!([
                cond("Ready", "False", "Creating", "", 1),
                cond(
                    "Synced",
                    "False",
                    "ReconcileError",
                    "ThrottlingException: Rate exceeded",
                    1
                )
            ]),
        );
        let state = child_state_at(&throttled, at("2026-01-01T00:01:00Z"));
        let ChildState::Creating { reason, message } = &state else {
            panic!("{state:?}");
        };
        assert_eq!(reason, failure::TRANSIENT_ERROR);
        assert!(
            message.starts_with("ThrottlingException: Rate exceeded (a transient error"),
            "{message}"
        );
        assert!(message.contains("2026-01-01T00:30:00Z"), "{message}");
        assert!(state.in_flight());
        assert_eq!(
            transient_until(&throttled),
            Some(at("2026-01-01T00:30:00Z"))
        );
        assert_eq!(
            child_state_at(&throttled, at("2026-01-01T00:30:00Z")),
            ChildState::Failed {
                reason: "ReconcileError".into(),
                message: "ThrottlingException: Rate exceeded".into()
            },
            "the same error past the limit needs a person"
        );
        let denied = apply(
            1,
            Some(1),
            json!([cond(
                "Synced",
                "False",
                "ReconcileError",
                "AccessDeniedException",
                1
            )]),
        );
        assert!(matches!(
            child_state_at(&denied, at("2026-01-01T00:00:01Z")),
            ChildState::Failed { .. }
        ));
        assert_eq!(transient_until(&denied), None);
    }

    #[test]
    fn a_failing_destroy_is_reported_while_deleting() {
        let mut denied = apply(
            2,
            Some(2),
            json!([cond(
                "Synced",
                "False",
                "ReconcileError",
                "delete failed: AccessDeniedException",
                2
            )]),
        );
        denied.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at("2026-01-01T00:00:00Z")),
        );
        assert_eq!(
            child_state_at(&denied, at("2026-01-01T00:01:00Z")),
            ChildState::Deleting(Some(DeleteError {
                reason: "ReconcileError".into(),
                message: "delete failed: AccessDeniedException".into(),
                terminal: true
            }))
        );
        let mut busy = denied.clone();
        busy.status.as_mut().unwrap().conditions = serde_json::from_value(json!([cond(
            "Synced",
            "False",
            "ReconcileError",
            "ResourceInUseException",
            2
        )]))
        .unwrap();
        let ChildState::Deleting(Some(e)) = child_state_at(&busy, at("2026-01-01T00:01:00Z"))
        else {
            panic!("not deleting");
        };
        assert!(!e.terminal);
    }

    #[test]
    fn what_is_in_flight() {
        let creating = |reason: &str| ChildState::Creating {
            reason: reason.into(),
            message: String::new(),
        };
        assert!(creating(reason::CREATING).in_flight());
        assert!(creating("Deleting").in_flight());
        assert!(!creating(reason::WAITING_FOR_SECRETS).in_flight());
        assert!(!creating(reason::WAITING_FOR_WORKSPACES).in_flight());
        assert!(ChildState::Deleting(None).in_flight());
        assert!(!ChildState::Ready.in_flight());
        assert!(
            !ChildState::Failed {
                reason: "ReconcileError".into(),
                message: "AccessDenied".into()
            }
            .in_flight()
        );
    }
}
