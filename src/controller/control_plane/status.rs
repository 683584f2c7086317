//! A control plane's status: built from its children by a pure function, written when it
//! changed (paced), with the events its changes call for.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::State;
use super::reconcile::apply_reference;
use crate::api::conditions::READY;
use crate::api::{
    CAPTControlPlane, CAPTControlPlaneStatus, ControlPlanePhase, FargateProfileStatus,
    WorkspaceStatus, WorkspaceTemplateApply, WorkspaceTemplateStatus,
};
use crate::controller::Context;
use crate::error::Result;
use crate::names::FIELD_MANAGER;
use crate::render;
use crate::status::apply::ChildState;
use crate::status::conditions::{WantedCondition, merge};
use crate::status::kubeconfig::KubeconfigState;
use crate::status::profiles;
use crate::status::{events, pacing, reason};

/// The control plane's own readiness, which follows the EKS cluster workspace only: a Fargate
/// profile failure is reported by the FargateProfile conditions and never marks the control
/// plane failed (CAPI treats control plane failures as terminal).
/// A change of the EKS workspace held by a profile operation (`held_by`) is said in its message.
pub(super) fn control_plane_condition(
    eks_apply: &str,
    eks_state: &ChildState,
    held_by: Option<&str>,
) -> (WantedCondition, ControlPlanePhase) {
    match eks_state {
        ChildState::Ready => {
            let message = match held_by {
                Some(profile) => format!(
                    "control plane is ready; the change of the EKS cluster workspace {eks_apply} waits for Fargate profile {profile} (one Fargate profile operation per cluster at a time)"
                ),
                None => "control plane is ready".to_string(),
            };
            (
                WantedCondition::new(READY, true, reason::READY, message),
                ControlPlanePhase::Ready,
            )
        }
        ChildState::Failed { message, .. } => (
            WantedCondition::new(READY, false, reason::WORKSPACE_ERROR, message.clone()),
            ControlPlanePhase::Failed,
        ),
        ChildState::Creating { reason, message } => {
            let message = if message.is_empty() {
                "control plane is being created".to_string()
            } else {
                message.clone()
            };
            // A retried transient error keeps its reason; it is not a failure.
            let why = if reason == reason::TRANSIENT_ERROR {
                reason::TRANSIENT_ERROR
            } else {
                reason::CREATING
            };
            (
                WantedCondition::new(READY, false, why, message),
                ControlPlanePhase::Creating,
            )
        }
        ChildState::Deleting(_) => (
            WantedCondition::new(
                READY,
                false,
                reason::DELETING,
                "control plane is being deleted",
            ),
            ControlPlanePhase::Creating,
        ),
    }
}

/// The status of a control plane whose status is `old` and whose generation is `generation`,
/// from its EKS apply (`eks_apply`, in state `eks_state`), its Ready condition and phase, and
/// its profiles' entries, and the kubeconfig step's state (`KubeconfigReady`; None leaves that
/// condition as it is); `now` stamps conditions that change. Pure: the same inputs give the
/// same status, so an unchanged control plane needs no write. Fields this operator does not
/// set keep their old values.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_status(
    old: &CAPTControlPlaneStatus,
    generation: Option<i64>,
    eks_apply: Option<&WorkspaceTemplateApply>,
    eks_state: &ChildState,
    (ready_condition, phase): (WantedCondition, ControlPlanePhase),
    statuses: Vec<FargateProfileStatus>,
    kubeconfig: Option<&KubeconfigState>,
    now: &Time,
) -> CAPTControlPlaneStatus {
    let mut desired = profiles::conditions(&statuses);
    desired.push(ready_condition);
    desired.extend(kubeconfig.map(|k| k.condition.clone()));
    let ready = *eks_state == ChildState::Ready;
    let (failure_reason, failure_message) = match eks_state {
        ChildState::Failed { reason, message } => (Some(reason.clone()), Some(message.clone())),
        _ => (None, None),
    };
    let ready_count = statuses.iter().filter(|s| s.ready).count();
    let eks_ready_reason = eks_apply
        .and_then(|a| a.status.as_ref())
        .and_then(|s| crate::api::conditions::find(&s.conditions, READY).map(|c| c.reason.clone()));
    CAPTControlPlaneStatus {
        ready,
        initialized: Some(ready || old.initialized == Some(true)),
        workspace_template_status: Some(WorkspaceTemplateStatus {
            ready,
            state: eks_ready_reason.clone(),
            last_applied_revision: eks_apply
                .and_then(|a| a.status.as_ref())
                .and_then(|s| s.last_applied_time.as_ref())
                .map(|t| t.0.to_string()),
            last_failure_message: failure_message.clone(),
            ..Default::default()
        }),
        workspace_status: Some(WorkspaceStatus {
            ready,
            state: eks_ready_reason,
        }),
        failure_reason,
        failure_message,
        phase: Some(phase),
        conditions: merge(&old.conditions, &desired, generation, now),
        fargate_profiles_summary: Some(format!("{ready_count}/{}", statuses.len())),
        fargate_profiles: statuses,
        observed_generation: generation,
        ..old.clone()
    }
}

pub(super) async fn write_status(
    cp: &CAPTControlPlane,
    state: &State,
    eks_apply: Option<&WorkspaceTemplateApply>,
    eks_state: &ChildState,
    (ready_condition, phase): (WantedCondition, ControlPlanePhase),
    statuses: Vec<FargateProfileStatus>,
    kubeconfig: Option<&KubeconfigState>,
) -> Result<Option<Duration>> {
    let old = cp.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = build_status(
        &old,
        cp.metadata.generation,
        eks_apply,
        eks_state,
        (ready_condition, phase),
        statuses,
        kubeconfig,
        &now,
    );
    if new == old {
        return Ok(None);
    }
    let eks_reported = eks_apply
        .and_then(|a| a.status.as_ref())
        .is_some_and(|s| !s.conditions.is_empty());
    let age = crate::controller::age(cp).unwrap_or_default();
    if let Some(wait) = pacing::first_status_wait(&old, eks_reported, age) {
        return Ok(Some(wait));
    }
    let uid = cp.uid().unwrap_or_default();
    if pacing::progress_only(&old, &new) {
        // How many roll out at once, as their statuses say (this one included).
        let rolling_out = state
            .control_planes
            .filter(|c| c.status.as_ref().is_some_and(pacing::rolling_out))
            .len();
        let interval = pacing::progress_interval(rolling_out);
        let last = state.status_writes.last(&uid);
        if let Some(wait) = last.and_then(|at| interval.checked_sub(at.elapsed())) {
            return Ok(Some(wait));
        }
    }
    publish_transitions(cp, &state.ctx, &old.fargate_profiles, &new.fargate_profiles).await;
    let api: Api<CAPTControlPlane> =
        Api::namespaced(state.ctx.client.clone(), &render::namespace(cp));
    let body = json!({ "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "status": new });
    let written = api
        .patch_status(
            &cp.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    state.control_planes.remember(written);
    state.status_writes.record(&uid);
    Ok(None)
}

/// Publishes the events `status::events` chooses for this status change.
pub(super) async fn publish_transitions(
    cp: &CAPTControlPlane,
    ctx: &Context,
    old: &[FargateProfileStatus],
    new: &[FargateProfileStatus],
) {
    for notice in events::notices(old, new) {
        let type_ = if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let apply = notice.apply.as_ref().map(|name| apply_reference(cp, name));
        ctx.event_about(cp, apply, type_, notice.reason, notice.note)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FargateProfilePhase;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid time"))
    }

    fn profile(name: &str, phase: FargateProfilePhase) -> FargateProfileStatus {
        FargateProfileStatus {
            name: name.into(),
            ready: phase == FargateProfilePhase::Ready,
            phase: Some(phase),
            ..Default::default()
        }
    }

    fn build(old: &CAPTControlPlaneStatus, state: &ChildState, now: i64) -> CAPTControlPlaneStatus {
        let statuses = vec![
            profile("a", FargateProfilePhase::Ready),
            profile("b", FargateProfilePhase::Creating),
        ];
        let ready = control_plane_condition("demo-eks", state, None);
        build_status(old, Some(4), None, state, ready, statuses, None, &at(now))
    }

    #[test]
    fn the_same_inputs_build_the_same_status_later() {
        let first = build(&CAPTControlPlaneStatus::default(), &ChildState::Ready, 100);
        assert!(first.ready);
        assert_eq!(first.initialized, Some(true));
        assert_eq!(first.phase, Some(ControlPlanePhase::Ready));
        assert_eq!(first.observed_generation, Some(4));
        assert_eq!(first.fargate_profiles_summary.as_deref(), Some("1/2"));
        let ready = first.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::READY)
        );
        // Recomputed later from its own result: nothing moves, so nothing is written.
        assert_eq!(build(&first, &ChildState::Ready, 200), first);
    }

    #[test]
    fn a_failed_cluster_is_reported_and_initialized_stays_true() {
        let ready = build(&CAPTControlPlaneStatus::default(), &ChildState::Ready, 100);
        let failed_state = ChildState::Failed {
            reason: "ApplyFailed".into(),
            message: "terraform apply failed".into(),
        };
        let failed = build(&ready, &failed_state, 200);
        assert!(!failed.ready);
        assert_eq!(failed.initialized, Some(true), "it was initialized once");
        assert_eq!(failed.phase, Some(ControlPlanePhase::Failed));
        assert_eq!(failed.failure_reason.as_deref(), Some("ApplyFailed"));
        assert_eq!(
            failed.failure_message.as_deref(),
            Some("terraform apply failed")
        );
        let condition = failed.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(condition.reason, reason::WORKSPACE_ERROR);
        assert_eq!(condition.last_transition_time, at(200));
    }

    #[test]
    fn fields_this_operator_does_not_set_are_kept() {
        let old = CAPTControlPlaneStatus {
            secrets_ready: Some(true),
            ..Default::default()
        };
        let creating = ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        };
        let new = build(&old, &creating, 100);
        assert_eq!(new.secrets_ready, Some(true));
        assert_eq!(new.initialized, Some(false));
        assert_eq!(new.phase, Some(ControlPlanePhase::Creating));
    }
}
