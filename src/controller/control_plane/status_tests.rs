//! Tests of the status builder (`status.rs`), on plain values.

use super::super::readiness::control_plane_condition;
use super::*;
use crate::api::FargateProfilePhase;
use crate::api::conditions::AVAILABLE;
use crate::render::fixtures::control_plane;

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

fn entry(name: &str, phase: FargateProfilePhase) -> FargateProfileStatus {
    FargateProfileStatus {
        name: name.into(),
        phase: Some(phase),
        ..Default::default()
    }
}

#[test]
fn defaults_come_first_and_a_failed_write_replaces_its_planned_entry() {
    let cp = control_plane(
        "version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\ndefaultFargateProfiles: [karpenter]\n",
    );
    let eks = EksView {
        name: "demo-eks",
        apply: None,
        state: &ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        },
        held_by: None,
    };
    let planned = vec![
        entry("a", FargateProfilePhase::Creating),
        entry("b", FargateProfilePhase::Pending),
    ];
    let failed = entry("a", FargateProfilePhase::Failed);
    let statuses = profile_statuses(&cp, &eks, planned, vec![failed]);
    let got: Vec<(&str, Option<FargateProfilePhase>)> = statuses
        .iter()
        .map(|s| (s.name.as_str(), s.phase))
        .collect();
    assert_eq!(got[0].0, "karpenter", "the default profile first");
    assert_eq!(
        &got[1..],
        [
            ("a", Some(FargateProfilePhase::Failed)),
            ("b", Some(FargateProfilePhase::Pending))
        ]
    );
}

#[test]
fn the_new_status_comes_from_the_control_plane_and_the_report() {
    let mut cp = control_plane("version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\n");
    let waiting = KubeconfigState::not_ready(
        reason::WAITING_FOR_CONNECTION,
        "waiting for the EKS cluster's connection secret",
    );
    let report = |kubeconfig| Report {
        eks_apply: None,
        eks_state: &ChildState::Ready,
        ready: control_plane_condition("demo-eks", &ChildState::Ready, None),
        statuses: vec![profile("a", FargateProfilePhase::Ready)],
        kubeconfig,
    };
    let first = new_status(&cp, report(Some(&waiting)), &at(100));
    assert_eq!(
        first.observed_generation,
        Some(3),
        "the control plane's generation"
    );
    let available = condition(&first, AVAILABLE);
    assert_eq!(
        (available.status.as_str(), available.reason.as_str()),
        ("False", reason::WAITING_FOR_CONNECTION),
        "a ready workspace without a current kubeconfig is not available"
    );
    assert_eq!(condition(&first, "KubeconfigReady").status, "False");
    // The old status is the control plane's: the same report changes nothing later.
    cp.status = Some(first.clone());
    assert_eq!(new_status(&cp, report(Some(&waiting)), &at(200)), first);
    // The teardown's report (no kubeconfig step) leaves KubeconfigReady as it was.
    cp.metadata.deletion_timestamp = Some(at(300));
    let going = new_status(&cp, report(None), &at(300));
    assert_eq!(condition(&going, DELETING).status, "True");
    assert_eq!(
        condition(&going, "KubeconfigReady"),
        condition(&first, "KubeconfigReady")
    );
}
