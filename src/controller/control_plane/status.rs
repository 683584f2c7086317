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

pub(super) async fn write_status(
    cp: &CAPTControlPlane,
    state: &State,
    eks_apply: Option<&WorkspaceTemplateApply>,
    eks_state: &ChildState,
    (ready_condition, phase): (WantedCondition, ControlPlanePhase),
    statuses: Vec<FargateProfileStatus>,
) -> Result<Option<Duration>> {
    let old = cp.status.clone().unwrap_or_default();
    let mut desired = profiles::conditions(&statuses);
    desired.push(ready_condition);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let ready = *eks_state == ChildState::Ready;
    let (failure_reason, failure_message) = match eks_state {
        ChildState::Failed { reason, message } => (Some(reason.clone()), Some(message.clone())),
        _ => (None, None),
    };
    let ready_count = statuses.iter().filter(|s| s.ready).count();
    let eks_ready_reason = eks_apply
        .and_then(|a| a.status.as_ref())
        .and_then(|s| crate::api::conditions::find(&s.conditions, READY).map(|c| c.reason.clone()));
    let new = CAPTControlPlaneStatus {
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
        conditions: merge(&old.conditions, &desired, cp.metadata.generation, &now),
        fargate_profiles_summary: Some(format!("{ready_count}/{}", statuses.len())),
        fargate_profiles: statuses,
        observed_generation: cp.metadata.generation,
        ..old.clone()
    };
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
