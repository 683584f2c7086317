//! A control plane's status, built by pure functions: old status, what the reconcile observed
//! and did, generation and now in, new status out ([`new_status`]). `report` writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::readiness::{Unmet, available_condition, available_requirements, reported_version};
use crate::api::conditions::{DELETING, PAUSED, READY};
use crate::api::{
    CAPTControlPlane, CAPTControlPlaneStatus, ControlPlaneInitialization, ControlPlanePhase,
    FargateProfileStatus, StatusVersion, WorkspaceStatus, WorkspaceTemplateApply,
    WorkspaceTemplateStatus,
};
use crate::render;
use crate::status::apply::ChildState;
use crate::status::conditions::{WantedCondition, merge};
use crate::status::kubeconfig::KubeconfigState;
use crate::status::profiles::{self, Defaults};
use crate::status::{reason, write_failure};

/// What the Cluster API contract fields and conditions depend on besides the EKS workspace.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Contract<'a> {
    /// The control plane's `spec.version`.
    pub spec_version: &'a str,
    /// The control plane is being deleted (its deletionTimestamp is set).
    pub deleting: bool,
    /// Further requirements of `Available`, ANDed with the EKS workspace being applied and
    /// ready; each entry is one that is not met (see [`available_requirements`]).
    pub available_unmet: &'a [Unmet],
    /// The kubeconfig step's state (`KubeconfigReady`); None leaves that condition as it is.
    pub kubeconfig: Option<&'a KubeconfigState>,
}

/// The status of a paused control plane whose status is `old`: everything as it was, with
/// `Paused=True` saying why (`why`). Nothing else is recomputed while paused.
pub(super) fn paused_status(
    old: &CAPTControlPlaneStatus,
    generation: Option<i64>,
    why: &str,
    now: &Time,
) -> CAPTControlPlaneStatus {
    let paused = WantedCondition::new(PAUSED, true, reason::PAUSED, why);
    CAPTControlPlaneStatus {
        conditions: merge(&old.conditions, &[paused], generation, now),
        ..old.clone()
    }
}

/// The status of a control plane whose status is `old` and whose generation is `generation`,
/// from its EKS apply (`eks_apply`, in state `eks_state`), its Ready condition and phase, its
/// profiles' entries and the contract inputs (with the kubeconfig step's state:
/// `KubeconfigReady`, None leaving that condition as it is); `now` stamps conditions that
/// change. Pure: the same inputs give the same status, so an unchanged control plane needs no
/// write. Fields this operator does not set keep their old values.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_status(
    old: &CAPTControlPlaneStatus,
    generation: Option<i64>,
    eks_apply: Option<&WorkspaceTemplateApply>,
    eks_state: &ChildState,
    (ready_condition, phase): (WantedCondition, ControlPlanePhase),
    statuses: Vec<FargateProfileStatus>,
    contract: Contract<'_>,
    now: &Time,
) -> CAPTControlPlaneStatus {
    let desired = wanted_conditions(&statuses, ready_condition, &contract);
    let ready = *eks_state == ChildState::Ready;
    let initialized = ready || old.initialized == Some(true);
    let version = status_version(old, eks_apply.filter(|_| ready), contract.spec_version);
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
        initialized: Some(initialized),
        initialization: Some(ControlPlaneInitialization {
            control_plane_initialized: Some(
                initialized
                    || old
                        .initialization
                        .as_ref()
                        .and_then(|i| i.control_plane_initialized)
                        == Some(true),
            ),
        }),
        external_managed_control_plane: Some(true),
        versions: version.clone().map(|version| {
            vec![StatusVersion {
                version,
                replicas: None,
            }]
        }),
        version,
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

/// The conditions a live or deleting control plane wants: the profiles', `Available`, `Ready`
/// (`ready_condition`), `Paused` False, `Deleting` and, when the kubeconfig step ran, its own.
fn wanted_conditions(
    statuses: &[FargateProfileStatus],
    ready_condition: WantedCondition,
    contract: &Contract<'_>,
) -> Vec<WantedCondition> {
    let mut desired = profiles::conditions(statuses);
    desired.push(available_condition(
        &ready_condition,
        contract.available_unmet,
    ));
    desired.push(ready_condition);
    desired.push(WantedCondition::new(
        PAUSED,
        false,
        reason::NOT_PAUSED,
        "reconciling",
    ));
    desired.push(if contract.deleting {
        WantedCondition::new(
            DELETING,
            true,
            reason::DELETING,
            "deleting the Fargate profiles, then the EKS cluster",
        )
    } else {
        WantedCondition::new(DELETING, false, reason::NOT_DELETING, "")
    });
    desired.extend(contract.kubeconfig.map(|k| k.condition.clone()));
    desired
}

/// `status.version`: read from the EKS apply's outputs once the workspace is ready (`ready`,
/// None before), so that it is that of a usable control plane and is written with the
/// readiness it comes with (the outputs appear while the first apply still reports Creating,
/// which would cost a status write of its own); else the old one.
fn status_version(
    old: &CAPTControlPlaneStatus,
    ready: Option<&WorkspaceTemplateApply>,
    spec_version: &str,
) -> Option<String> {
    ready
        .and_then(|a| a.status.as_ref())
        .and_then(|s| s.outputs.as_ref())
        .and_then(|o| o.get(render::eks::VERSION_OUTPUT))
        .filter(|v| !v.trim().is_empty())
        .map(|r| reported_version(spec_version, r))
        .or(old.version.clone())
}

/// What a reconcile hands the status builder besides the control plane itself.
pub(super) struct Report<'a> {
    /// The EKS cluster apply as known after the reconcile's writes.
    pub eks_apply: Option<&'a WorkspaceTemplateApply>,
    /// Its state (as the reconcile shows it).
    pub eks_state: &'a ChildState,
    /// The control plane's Ready condition and phase ([`control_plane_condition`]).
    pub ready: (WantedCondition, ControlPlanePhase),
    /// Every profile's status entry.
    pub statuses: Vec<FargateProfileStatus>,
    /// The kubeconfig step's state (None: it did not run, `KubeconfigReady` stays as it is).
    pub kubeconfig: Option<&'a KubeconfigState>,
}

/// The new status of `cp` (its old status, generation, spec version and deletion) after a
/// reconcile that reports `report`; `now` stamps conditions that change. Pure.
pub(super) fn new_status(
    cp: &CAPTControlPlane,
    report: Report<'_>,
    now: &Time,
) -> CAPTControlPlaneStatus {
    let old = cp.status.clone().unwrap_or_default();
    let unmet = available_requirements(report.kubeconfig);
    let contract = Contract {
        spec_version: &cp.spec.version,
        deleting: cp.metadata.deletion_timestamp.is_some(),
        available_unmet: &unmet,
        kubeconfig: report.kubeconfig,
    };
    build_status(
        &old,
        cp.metadata.generation,
        report.eks_apply,
        report.eks_state,
        report.ready,
        report.statuses,
        contract,
        now,
    )
}

/// The EKS cluster apply as the status sees it.
pub(super) struct EksView<'a> {
    /// The EKS cluster apply's name.
    pub name: &'a str,
    /// The apply, if there is one.
    pub apply: Option<&'a WorkspaceTemplateApply>,
    /// Its state.
    pub state: &'a ChildState,
    /// The profile holding a change of the EKS workspace, if one does.
    pub held_by: Option<&'a str>,
}

/// Every profile's status entry: the default profiles (from the EKS apply), then the
/// additional ones as the plan reports them, with those that could not be written marked so.
pub(super) fn profile_statuses(
    cp: &CAPTControlPlane,
    eks: &EksView<'_>,
    mut planned: Vec<FargateProfileStatus>,
    write_failures: Vec<FargateProfileStatus>,
) -> Vec<FargateProfileStatus> {
    let spec_defaults: Vec<&str> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| d.name())
        .collect();
    let in_apply = eks.apply.map(default_profiles_in).unwrap_or_default();
    let old = cp.status.clone().unwrap_or_default();
    let mut statuses = profiles::default_statuses(&Defaults {
        spec: &spec_defaults,
        in_apply: &in_apply,
        eks_apply: eks.name,
        eks: eks.state,
        held_by: eks.held_by,
        old: &old.fargate_profiles,
    });
    write_failure::apply_overrides(&mut planned, write_failures);
    statuses.extend(planned);
    statuses
}

/// The default profile names in an EKS apply's Terraform input (`fargate_profiles`).
fn default_profiles_in(apply: &WorkspaceTemplateApply) -> Vec<String> {
    apply
        .spec
        .terraform_variables
        .as_ref()
        .and_then(|v| v.get("fargate_profiles"))
        .map(|v| v.to_value())
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
