//! Tests of the control plane's plan (`plan.rs`), on plain values: no cluster.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::FargateProfilePhase;
use crate::render::fixtures::control_plane;
use crate::status::profiles::Teardown;
use crate::status::reason;

const SPEC: &str = "version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\n";

fn creating(why: &str) -> ChildState {
    ChildState::Creating {
        reason: why.into(),
        message: format!("{why} message"),
    }
}

fn observed_profile(name: &str, state: ChildState) -> ObservedProfile {
    ObservedProfile {
        profile: name.into(),
        apply_name: format!("demo-fargate-{name}"),
        hash: format!("hash-{name}"),
        state,
    }
}

fn desired_profile(name: &str) -> DesiredProfile {
    DesiredProfile {
        name: name.into(),
        apply_name: format!("demo-fargate-{name}"),
        hash: format!("hash-{name}"),
    }
}

fn eks_apply(deleting: bool) -> Arc<WorkspaceTemplateApply> {
    let mut apply = WorkspaceTemplateApply::new("demo-eks", Default::default());
    if deleting {
        apply.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
    }
    Arc::new(apply)
}

fn observed(eks: Option<Arc<WorkspaceTemplateApply>>, profiles: Vec<ObservedProfile>) -> Observed {
    Observed {
        eks_name: "demo-eks".into(),
        eks,
        profile_applies: Vec::new(),
        profiles,
        kubeconfig: Default::default(),
    }
}

fn gate_of<'a>(eks: &'a ChildState, missing: Option<&'a [String]>) -> Gate<'a> {
    Gate {
        eks_name: "demo-eks",
        eks,
        missing_secrets: missing,
    }
}

#[test]
fn pause_wins_over_deletion_and_deletion_over_life() {
    let mut cp = control_plane(SPEC);
    assert_eq!(mode(&cp, None), Mode::Live);
    cp.metadata.deletion_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
    assert_eq!(mode(&cp, None), Mode::Deleting);
    assert_eq!(
        mode(&cp, Some("Cluster c is paused".into())),
        Mode::Paused("Cluster c is paused".into())
    );
}

#[test]
fn the_eks_change_waits_for_a_profile_operation_in_flight() {
    assert_eq!(eks(&observed(None, vec![]), false, &[]), EksStep::Create);
    let idle = observed(
        Some(eks_apply(false)),
        vec![observed_profile("a", ChildState::Ready)],
    );
    assert_eq!(eks(&idle, false, &[]), EksStep::Keep, "unchanged: no write");
    assert_eq!(eks(&idle, true, &[]), EksStep::Update);
    let busy = observed(
        Some(eks_apply(false)),
        vec![
            observed_profile("a", ChildState::Ready),
            observed_profile("b", creating(reason::CREATING)),
        ],
    );
    assert_eq!(eks(&busy, true, &[]), EksStep::Hold("b".into()));
    assert_eq!(eks(&busy, false, &[]), EksStep::Keep, "nothing to hold");
    // A profile waiting for its secrets runs no Terraform: nothing holds the change.
    let waiting = observed(
        Some(eks_apply(false)),
        vec![observed_profile("b", creating(reason::WAITING_FOR_SECRETS))],
    );
    assert_eq!(eks(&waiting, true, &[]), EksStep::Update);
    // Being deleted: never written again.
    let going = observed(Some(eks_apply(true)), vec![]);
    assert_eq!(eks(&going, true, &[]), EksStep::Keep);
}

#[test]
fn the_eks_apply_is_created_only_once_its_vpc_secret_is_complete() {
    let missing = ["secret team-a/demo-vpc-connection does not exist".to_string()];
    let none = observed(None, vec![]);
    let step = eks(&none, false, &missing);
    assert_eq!(
        step,
        EksStep::WaitForVpc(
            "waiting for the VPC connection secret before creating the EKS cluster workspace \
             demo-eks: secret team-a/demo-vpc-connection does not exist"
                .into()
        )
    );
    assert_eq!(
        eks_state(&step, None),
        ChildState::Creating {
            reason: reason::WAITING_FOR_SECRETS.into(),
            message: "waiting for the VPC connection secret before creating the EKS cluster \
                      workspace demo-eks: secret team-a/demo-vpc-connection does not exist"
                .into(),
        },
        "the status says what it waits for"
    );
    assert_eq!(eks(&none, false, &[]), EksStep::Create, "complete: created");
    // An existing apply is kept up to date whatever its secret lacks (its own wait says so).
    let existing = observed(Some(eks_apply(false)), vec![]);
    assert_eq!(eks(&existing, true, &missing), EksStep::Update);
    assert_eq!(eks(&existing, false, &missing), EksStep::Keep);
    assert_eq!(
        eks_state(&EksStep::Create, None),
        ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new()
        }
    );
}

#[test]
fn the_gate_follows_the_eks_apply_then_the_secrets() {
    let missing = ["secret team-a/demo-eks-connection does not exist".to_string()];
    assert_eq!(gate(&gate_of(&ChildState::Ready, None)), ClusterGate::Open);
    assert_eq!(
        gate(&gate_of(&ChildState::Ready, Some(&[]))),
        ClusterGate::Open
    );
    assert_eq!(
        gate(&gate_of(&ChildState::Ready, Some(&missing))),
        ClusterGate::Waiting("waiting for secret team-a/demo-eks-connection does not exist".into())
    );
    // Applying: it may create or delete default profiles, so nothing else starts.
    assert_eq!(
        gate(&gate_of(&creating(reason::CREATING), Some(&missing))),
        ClusterGate::Applying(
            "waiting for the EKS cluster workspace demo-eks to be ready (Creating message)".into()
        )
    );
    assert!(matches!(
        gate(&gate_of(&creating(reason::WAITING_FOR_SECRETS), None)),
        ClusterGate::Waiting(_)
    ));
    let failed = ChildState::Failed {
        reason: "ApplyFailed".into(),
        message: "quota exceeded".into(),
    };
    assert_eq!(
        gate(&gate_of(&failed, None)),
        ClusterGate::Failed("the EKS cluster workspace demo-eks failed: quota exceeded".into())
    );
    assert!(matches!(
        gate(&gate_of(&ChildState::Deleting(None), None)),
        ClusterGate::Applying(_)
    ));
}

#[test]
fn a_creation_asks_for_the_secrets_and_waits_for_missing_keys() {
    let desired = [desired_profile("a"), desired_profile("b")];
    let first = profiles(&desired, &[], &gate_of(&ChildState::Ready, None), false);
    assert!(
        first.needs_secrets,
        "a creation needs the connection secrets"
    );
    let missing = ["secret team-a/demo-vpc-connection lacks keys private_subnets".to_string()];
    let held = profiles(
        &desired,
        &[],
        &gate_of(&ChildState::Ready, Some(&missing)),
        false,
    );
    assert!(!held.needs_secrets);
    assert!(held.write.is_empty(), "nothing is created without the keys");
    let entry = &held.statuses[0];
    assert_eq!(entry.phase, Some(FargateProfilePhase::Pending));
    assert_eq!(
        entry.failure_reason.as_deref(),
        Some(reason::WAITING_FOR_CLUSTER)
    );
    assert!(
        entry
            .failure_message
            .as_deref()
            .is_some_and(|m| m.contains("lacks keys private_subnets")),
        "{entry:?}"
    );
    let open = profiles(
        &desired,
        &[],
        &gate_of(&ChildState::Ready, Some(&[])),
        false,
    );
    assert_eq!(
        (open.write.as_slice(), open.needs_secrets),
        (&[0][..], false)
    );
}

#[test]
fn one_profile_operation_at_a_time_in_spec_order_and_a_failure_stops_the_rest() {
    let desired = [
        desired_profile("a"),
        desired_profile("b"),
        desired_profile("c"),
    ];
    let ready = gate_of(&ChildState::Ready, Some(&[]));
    // a is being created: b and c wait; a is kept in sync.
    let busy = [observed_profile("a", creating(reason::CREATING))];
    let steps = profiles(&desired, &busy, &ready, false);
    assert_eq!((steps.write, steps.delete), (vec![0], None));
    let phases: Vec<_> = steps.statuses.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [
            Some(FargateProfilePhase::Creating),
            Some(FargateProfilePhase::Pending),
            Some(FargateProfilePhase::Pending)
        ]
    );
    // a failed: b and c are blocked, with a reason that says so.
    let failed = [observed_profile(
        "a",
        ChildState::Failed {
            reason: "ApplyFailed".into(),
            message: "access denied".into(),
        },
    )];
    let steps = profiles(&desired, &failed, &ready, false);
    assert_eq!(steps.write, vec![0], "only the failed one is kept");
    assert_eq!(
        steps.statuses[1].failure_reason.as_deref(),
        Some(reason::BLOCKED_BY_FAILURE)
    );
    // A profile removed from the spec is deleted first, and nothing is created meanwhile.
    let obsolete = [
        observed_profile("a", ChildState::Ready),
        observed_profile("old", ChildState::Ready),
    ];
    let steps = profiles(&desired, &obsolete, &ready, false);
    assert_eq!(steps.delete.as_deref(), Some("demo-fargate-old"));
    assert_eq!(steps.write, vec![0], "b waits for the deletion");
    // While the EKS apply applies (e.g. just written), nothing is created or deleted.
    let applying = creating(reason::CREATING);
    let steps = profiles(&desired, &obsolete, &gate_of(&applying, None), false);
    assert_eq!((steps.write, steps.delete), (vec![0], None));
}

#[test]
fn the_test_only_misbehaviour_writes_every_missing_profile_at_once() {
    let desired = [
        desired_profile("a"),
        desired_profile("b"),
        desired_profile("c"),
    ];
    let ready = gate_of(&ChildState::Ready, Some(&[]));
    let kept = [observed_profile("a", ChildState::Ready)];
    assert_eq!(profiles(&desired, &kept, &ready, false).write, vec![0, 1]);
    assert_eq!(profiles(&desired, &kept, &ready, true).write, vec![0, 2, 1]);
}

#[test]
fn teardown_deletes_the_last_profile_first_then_the_cluster() {
    let cp = control_plane(
        "version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\nadditionalFargateProfiles:\n- { name: a, selectors: [{ namespace: a }], workspaceTemplateRef: { name: fp } }\n- { name: b, selectors: [{ namespace: b }], workspaceTemplateRef: { name: fp } }\n",
    );
    let both = observed(
        Some(eks_apply(false)),
        vec![
            observed_profile("a", ChildState::Ready),
            observed_profile("b", ChildState::Ready),
        ],
    );
    let plan = teardown(&cp, &both, Some(&ChildState::Ready));
    assert_eq!(plan.step, Teardown::DeleteProfile("demo-fargate-b".into()));
    let none = observed(Some(eks_apply(false)), vec![]);
    assert_eq!(
        teardown(&cp, &none, Some(&ChildState::Ready)).step,
        Teardown::DeleteCluster
    );
    let gone = observed(None, vec![]);
    assert_eq!(teardown(&cp, &gone, None).step, Teardown::Done);
}

#[test]
fn the_next_reconcile_is_the_soonest_moment_asked_for() {
    let resync = Duration::from_secs(600);
    assert_eq!(requeue(&[None, None], resync), resync);
    let asked = [
        Some(Duration::from_secs(30)),
        None,
        Some(Duration::from_secs(5)),
    ];
    assert_eq!(requeue(&asked, resync), Duration::from_secs(5));
    // No apply with a transient error: no check.
    let apply = eks_apply(false);
    assert_eq!(
        transient_check([apply.as_ref()].into_iter(), Timestamp::now()),
        None
    );
}
