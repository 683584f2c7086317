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
use crate::api::conditions::{AVAILABLE, DELETING, PAUSED, READY};
use crate::api::{
    CAPTControlPlane, CAPTControlPlaneStatus, ControlPlaneInitialization, ControlPlanePhase,
    FargateProfileStatus, StatusVersion, WorkspaceStatus, WorkspaceTemplateApply,
    WorkspaceTemplateStatus,
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

/// A requirement of the `Available` condition that is not met, besides the EKS workspace's
/// readiness: why the control plane cannot be used yet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Unmet {
    /// CamelCase reason, which `Available` takes.
    pub reason: String,
    /// What is missing, for people.
    pub message: String,
}

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
    let mut desired = profiles::conditions(&statuses);
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
    let ready = *eks_state == ChildState::Ready;
    let initialized = ready || old.initialized == Some(true);
    // Read once the workspace is ready: the version is then that of a usable control plane,
    // and it is written with the readiness it comes with (the outputs appear while the first
    // apply still reports Creating, which would cost a status write of its own).
    let running = eks_apply
        .filter(|_| ready)
        .and_then(|a| a.status.as_ref())
        .and_then(|s| s.outputs.as_ref())
        .and_then(|o| o.get(render::eks::VERSION_OUTPUT))
        .filter(|v| !v.trim().is_empty());
    let version = running
        .map(|r| reported_version(contract.spec_version, r))
        .or(old.version.clone());
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
    let unmet = available_requirements(kubeconfig);
    let contract = Contract {
        spec_version: &cp.spec.version,
        deleting: cp.metadata.deletion_timestamp.is_some(),
        available_unmet: &unmet,
        kubeconfig,
    };
    let new = build_status(
        &old,
        cp.metadata.generation,
        eks_apply,
        eks_state,
        (ready_condition, phase),
        statuses,
        contract,
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
    patch_status(cp, state, &new).await?;
    state.status_writes.record(&uid);
    Ok(None)
}

/// Reports a paused control plane (`why` says what pauses it): only its `Paused` condition
/// changes, and nothing is written when it already says so.
pub(super) async fn write_paused(cp: &CAPTControlPlane, state: &State, why: &str) -> Result<()> {
    let old = cp.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = paused_status(&old, cp.metadata.generation, why, &now);
    if new != old {
        patch_status(cp, state, &new).await?;
    }
    Ok(())
}

/// Server-side applies `new` as the control plane's status and keeps the result in the cache.
async fn patch_status(
    cp: &CAPTControlPlane,
    state: &State,
    new: &CAPTControlPlaneStatus,
) -> Result<()> {
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
    Ok(())
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
        let contract = Contract {
            spec_version: "1.31",
            ..Default::default()
        };
        build_status(
            old,
            Some(4),
            None,
            state,
            ready,
            statuses,
            contract,
            &at(now),
        )
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

    fn condition<'a>(
        status: &'a CAPTControlPlaneStatus,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    fn eks_apply_reporting(version: &str) -> WorkspaceTemplateApply {
        let mut apply = WorkspaceTemplateApply::new("demo-eks", Default::default());
        apply.status = Some(crate::api::WorkspaceTemplateApplyStatus {
            outputs: Some([(render::eks::VERSION_OUTPUT.to_string(), version.to_string())].into()),
            ..Default::default()
        });
        apply
    }

    #[test]
    fn both_contracts_are_reported_and_initialization_never_goes_back() {
        let ready = build(&CAPTControlPlaneStatus::default(), &ChildState::Ready, 100);
        assert_eq!(ready.external_managed_control_plane, Some(true));
        let init = |s: &CAPTControlPlaneStatus| {
            s.initialization
                .as_ref()
                .and_then(|i| i.control_plane_initialized)
        };
        assert_eq!(init(&ready), Some(true));
        assert_eq!(ready.initialized, Some(true));
        let creating = ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        };
        let later = build(&ready, &creating, 200);
        assert_eq!(init(&later), Some(true), "v1beta2 initialization stays");
        assert_eq!(later.initialized, Some(true), "v1beta1 initialized stays");
        assert!(!later.ready);
        let fresh = build(&CAPTControlPlaneStatus::default(), &creating, 100);
        assert_eq!(init(&fresh), Some(false));
    }

    #[test]
    fn available_follows_the_eks_workspace_and_the_further_requirements() {
        let ready = build(&CAPTControlPlaneStatus::default(), &ChildState::Ready, 100);
        let available = condition(&ready, AVAILABLE);
        assert_eq!(
            (available.status.as_str(), available.reason.as_str()),
            ("True", reason::AVAILABLE)
        );
        assert_eq!(available.observed_generation, Some(4));
        let failed = ChildState::Failed {
            reason: "ApplyFailed".into(),
            message: "terraform apply failed".into(),
        };
        let down = build(&ready, &failed, 200);
        let available = condition(&down, AVAILABLE);
        assert_eq!(
            (
                available.status.as_str(),
                available.reason.as_str(),
                available.message.as_str()
            ),
            ("False", reason::WORKSPACE_ERROR, "terraform apply failed")
        );
        assert_eq!(available.last_transition_time, at(200));
        // A further requirement that is not met keeps it False though the workspace is ready.
        let ready_condition = control_plane_condition("demo-eks", &ChildState::Ready, None).0;
        let unmet = [Unmet {
            reason: "KubeconfigNotReady".into(),
            message: "the kubeconfig does not connect yet".into(),
        }];
        let gated = available_condition(&ready_condition, &unmet);
        assert!(!gated.status);
        assert_eq!(gated.reason, "KubeconfigNotReady");
        assert!(available_condition(&ready_condition, &[]).status);
    }

    #[test]
    fn paused_and_deleting_are_reported() {
        let live = build(&CAPTControlPlaneStatus::default(), &ChildState::Ready, 100);
        let paused = condition(&live, PAUSED);
        assert_eq!(
            (paused.status.as_str(), paused.reason.as_str()),
            ("False", reason::NOT_PAUSED)
        );
        let deleting = condition(&live, DELETING);
        assert_eq!(
            (deleting.status.as_str(), deleting.reason.as_str()),
            ("False", reason::NOT_DELETING)
        );
        let contract = Contract {
            spec_version: "1.31",
            deleting: true,
            ..Default::default()
        };
        let ready = control_plane_condition("demo-eks", &ChildState::Ready, None);
        let going = build_status(
            &live,
            Some(5),
            None,
            &ChildState::Ready,
            ready,
            vec![],
            contract,
            &at(200),
        );
        let deleting = condition(&going, DELETING);
        assert_eq!(
            (deleting.status.as_str(), deleting.observed_generation),
            ("True", Some(5))
        );

        // Paused: only Paused changes, and again it is a fixed point.
        let held = paused_status(&live, Some(6), "Cluster demo is paused", &at(300));
        let paused = condition(&held, PAUSED);
        assert_eq!(
            (paused.status.as_str(), paused.reason.as_str()),
            ("True", reason::PAUSED)
        );
        assert_eq!(paused.observed_generation, Some(6));
        assert_eq!(condition(&held, READY), condition(&live, READY));
        assert_eq!(held.fargate_profiles, live.fargate_profiles);
        assert_eq!(
            paused_status(&held, Some(6), "Cluster demo is paused", &at(400)),
            held
        );
    }

    #[test]
    fn the_version_is_what_eks_runs_in_the_spelling_of_the_spec() {
        assert_eq!(reported_version("v1.31.2", "1.31"), "v1.31.2");
        assert_eq!(reported_version("1.31", "1.31"), "1.31");
        // An upgrade in progress: EKS still runs the old version.
        assert_eq!(reported_version("1.32", "1.31"), "1.31");
        let apply = eks_apply_reporting("1.31");
        let ready = control_plane_condition("demo-eks", &ChildState::Ready, None);
        let contract = Contract {
            spec_version: "v1.31.2",
            ..Default::default()
        };
        let status = build_status(
            &CAPTControlPlaneStatus::default(),
            Some(1),
            Some(&apply),
            &ChildState::Ready,
            ready.clone(),
            vec![],
            contract,
            &at(1),
        );
        assert_eq!(status.version.as_deref(), Some("v1.31.2"));
        assert_eq!(
            status.versions,
            Some(vec![StatusVersion {
                version: "v1.31.2".into(),
                replicas: None
            }])
        );
        // Nothing reported (yet): nothing claimed; once reported, an apply without outputs
        // keeps the last version.
        let none = build_status(
            &CAPTControlPlaneStatus::default(),
            Some(1),
            None,
            &ChildState::Ready,
            ready.clone(),
            vec![],
            contract,
            &at(1),
        );
        assert_eq!((none.version, none.versions), (None, None));
        let kept = build_status(
            &status,
            Some(1),
            None,
            &ChildState::Ready,
            ready,
            vec![],
            contract,
            &at(2),
        );
        assert_eq!(kept.version.as_deref(), Some("v1.31.2"));
        // Outputs of a workspace that is not ready yet are not read.
        let creating = ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        };
        let early = build_status(
            &CAPTControlPlaneStatus::default(),
            Some(1),
            Some(&apply),
            &creating,
            control_plane_condition("demo-eks", &creating, None),
            vec![],
            contract,
            &at(1),
        );
        assert_eq!(early.version, None);
    }
}
