//! The control plane's own conditions besides the profiles': `Ready` (the EKS cluster
//! workspace), `Available` (Ready and every further requirement met) and the version it
//! reports. Pure.

use crate::api::ControlPlanePhase;
use crate::api::conditions::{AVAILABLE, READY};
use crate::status::apply::ChildState;
use crate::status::conditions::WantedCondition;
use crate::status::kubeconfig::KubeconfigState;
use crate::status::reason;

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

/// A requirement of the `Available` condition that is not met, besides the EKS workspace's
/// readiness: why the control plane cannot be used yet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Unmet {
    /// CamelCase reason, which `Available` takes.
    pub reason: String,
    /// What is missing, for people.
    pub message: String,
}

/// Requirements of `Available` beyond a ready EKS workspace that are not met yet: the
/// `<cluster>-kubeconfig` Secret Cluster API connects with is written and current (`kubeconfig`,
/// the kubeconfig step's state; None when the step did not run, e.g. before the EKS cluster
/// exists, which the EKS workspace's readiness already covers).
pub(super) fn available_requirements(kubeconfig: Option<&KubeconfigState>) -> Vec<Unmet> {
    kubeconfig
        .filter(|k| !k.current)
        .map(|k| Unmet {
            reason: k.condition.reason.to_string(),
            message: format!("kubeconfig: {}", k.condition.message),
        })
        .into_iter()
        .collect()
}

/// `Available`: the EKS workspace is applied and ready and nothing in `unmet` is missing;
/// otherwise False with the reason and message of what is missing (the EKS workspace's first).
pub(super) fn available_condition(
    ready_condition: &WantedCondition,
    unmet: &[Unmet],
) -> WantedCondition {
    if !ready_condition.status {
        return WantedCondition::new(
            AVAILABLE,
            false,
            ready_condition.reason.clone(),
            ready_condition.message.clone(),
        );
    }
    match unmet.first() {
        None => WantedCondition::new(
            AVAILABLE,
            true,
            reason::AVAILABLE,
            "the EKS cluster workspace is applied and ready",
        ),
        Some(first) => {
            let message: Vec<&str> = unmet.iter().map(|u| u.message.as_str()).collect();
            WantedCondition::new(AVAILABLE, false, first.reason.clone(), message.join("; "))
        }
    }
}

/// The version to report in `status.version`, from `spec` (the control plane's
/// `spec.version`, e.g. "v1.31.2") and `running` (the major.minor EKS reports, e.g. "1.31"):
/// `spec` once EKS runs its major.minor (EKS chooses the patch itself, and Cluster API takes a
/// `status.version` below `spec.version` for an upgrade in progress), else what EKS runs.
pub(super) fn reported_version(spec: &str, running: &str) -> String {
    let major_minor = |v: &str| -> Vec<String> {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .take(2)
            .map(str::to_string)
            .collect()
    };
    if major_minor(spec) == major_minor(running) {
        spec.to_string()
    } else {
        running.trim().to_string()
    }
}
