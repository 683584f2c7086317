use super::*;

fn d(name: &str) -> DesiredProfile {
    DesiredProfile {
        name: name.into(),
        apply_name: format!("cp-fargate-{name}"),
        hash: format!("h-{name}"),
    }
}
fn o(name: &str, state: ChildState) -> ObservedProfile {
    ObservedProfile {
        profile: name.into(),
        apply_name: format!("cp-fargate-{name}"),
        hash: format!("h-{name}"),
        state,
    }
}
fn creating() -> ChildState {
    ChildState::Creating {
        reason: "Creating".into(),
        message: String::new(),
    }
}
fn failed() -> ChildState {
    ChildState::Failed {
        reason: "ReconcileError".into(),
        message: "ResourceLimitExceededException".into(),
    }
}
fn phases(p: &Plan) -> Vec<FargateProfilePhase> {
    p.statuses.iter().map(|s| s.phase.unwrap()).collect()
}
use FargateProfilePhase::*;

#[test]
fn nothing_is_created_before_the_cluster_is_ready() {
    let p = plan(
        &[d("a"), d("b")],
        &[],
        &ClusterGate::Waiting("waiting for secret ns/cp-eks-connection".into()),
    );
    assert_eq!(p.create, None);
    assert_eq!(phases(&p), [Pending, Pending]);
    assert_eq!(
        p.statuses[0].failure_reason.as_deref(),
        Some(reason::WAITING_FOR_CLUSTER)
    );
    assert!(
        p.statuses[1]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("cp-eks-connection")
    );
}

#[test]
fn profiles_are_created_one_at_a_time_in_spec_order() {
    let desired = [d("a"), d("b"), d("c")];
    let p = plan(&desired, &[], &ClusterGate::Open);
    assert_eq!(p.create, Some(0));
    assert_eq!(phases(&p), [Creating, Pending, Pending]);
    let p = plan(&desired, &[o("a", creating())], &ClusterGate::Open);
    assert_eq!(p.create, None);
    assert_eq!(
        p.statuses[1].failure_reason.as_deref(),
        Some(reason::WAITING_FOR_PROFILE)
    );
    let p = plan(&desired, &[o("a", ChildState::Ready)], &ClusterGate::Open);
    assert_eq!(p.create, Some(1));
    assert_eq!(p.keep, [0]);
    let p = plan(
        &desired,
        &[
            o("a", ChildState::Ready),
            o("b", ChildState::Ready),
            o("c", ChildState::Ready),
        ],
        &ClusterGate::Open,
    );
    assert_eq!((p.create, p.delete.clone()), (None, None));
    assert_eq!(phases(&p), [Ready, Ready, Ready]);
}

#[test]
fn a_failure_stops_the_profiles_after_it() {
    let p = plan(
        &[d("a"), d("b"), d("c")],
        &[o("a", ChildState::Ready), o("b", failed())],
        &ClusterGate::Open,
    );
    assert_eq!(p.create, None);
    assert_eq!(phases(&p), [Ready, Failed, Pending]);
    assert_eq!(
        p.statuses[1].failure_message.as_deref(),
        Some("ResourceLimitExceededException")
    );
    assert_eq!(
        p.statuses[2].failure_reason.as_deref(),
        Some(reason::BLOCKED_BY_FAILURE)
    );
    assert!(
        p.statuses[2]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("profile b failed")
    );
}

#[test]
fn removing_the_failed_profile_lets_the_rest_continue() {
    // b was removed from the spec: it is deleted first, then c is created.
    let p = plan(
        &[d("a"), d("c")],
        &[o("a", ChildState::Ready), o("b", failed())],
        &ClusterGate::Open,
    );
    assert_eq!(p.delete.as_deref(), Some("cp-fargate-b"));
    assert_eq!(p.create, None, "one operation at a time");
    assert_eq!(
        phases(&p),
        [Ready, Pending, Deleting],
        "the removed profile is reported until it is gone"
    );
    assert_eq!(p.statuses[2].name, "b");
    let p = plan(
        &[d("a"), d("c")],
        &[
            o("a", ChildState::Ready),
            o("b", ChildState::Deleting(None)),
        ],
        &ClusterGate::Open,
    );
    assert_eq!((p.create, p.delete.clone()), (None, None));
    let p = plan(
        &[d("a"), d("c")],
        &[o("a", ChildState::Ready)],
        &ClusterGate::Open,
    );
    assert_eq!(p.create, Some(1));
}

#[test]
fn a_changed_profile_is_deleted_then_created_again() {
    let mut changed = d("a");
    changed.hash = "h-a-2".into();
    let p = plan(
        &[changed.clone(), d("b")],
        &[o("a", ChildState::Ready), o("b", ChildState::Ready)],
        &ClusterGate::Open,
    );
    assert_eq!(p.delete.as_deref(), Some("cp-fargate-a"));
    assert_eq!(phases(&p), [Deleting, Ready]);
    assert_eq!(
        p.statuses[0].failure_reason.as_deref(),
        Some(reason::REPLACING)
    );
    let p = plan(
        &[changed.clone(), d("b")],
        &[
            o("a", ChildState::Deleting(None)),
            o("b", ChildState::Ready),
        ],
        &ClusterGate::Open,
    );
    assert_eq!((p.create, p.delete.clone()), (None, None));
    let p = plan(
        &[changed, d("b")],
        &[o("b", ChildState::Ready)],
        &ClusterGate::Open,
    );
    assert_eq!(p.create, Some(0));
}

#[test]
fn deletions_wait_for_a_profile_in_progress() {
    let p = plan(
        &[d("a")],
        &[o("a", creating()), o("gone", ChildState::Ready)],
        &ClusterGate::Open,
    );
    assert_eq!(p.delete, None);
}

#[test]
fn a_failed_cluster_is_reported_on_every_waiting_profile() {
    let p = plan(
        &[d("a")],
        &[],
        &ClusterGate::Failed("EKS cluster failed: quota".into()),
    );
    assert_eq!(
        p.statuses[0].failure_reason.as_deref(),
        Some(reason::CLUSTER_FAILED)
    );
}

#[test]
fn aggregate_conditions() {
    let p = plan(
        &[d("a"), d("b"), d("c")],
        &[o("a", ChildState::Ready), o("b", failed())],
        &ClusterGate::Open,
    );
    let c = conditions(&p.statuses);
    assert_eq!(
        (c[0].type_, c[0].status, c[0].reason.as_str()),
        (condition::READY, false, "ProfilesNotReady")
    );
    assert!(c[0].message.starts_with("1 of 3"), "{}", c[0].message);
    assert_eq!(
        (c[1].status, c[1].reason.as_str()),
        (true, reason::BLOCKED_BY_FAILURE)
    );
    assert_eq!(
        (c[2].status, c[2].reason.as_str()),
        (true, "ReconcileError")
    );
    assert!(c[2].message.contains("ResourceLimitExceededException"));

    let all = plan(&[d("a")], &[o("a", ChildState::Ready)], &ClusterGate::Open);
    let c = conditions(&all.statuses);
    assert_eq!(
        (c[0].status, c[1].status, c[2].status),
        (true, false, false)
    );
    let none = conditions(&[]);
    assert_eq!(
        (none[0].status, none[0].reason.as_str()),
        (true, "NoProfiles")
    );
}

#[test]
fn default_profiles_follow_the_cluster() {
    let s = default_profile_status("kube-system", "cp-eks", &ChildState::Ready);
    assert!(s.ready);
    let s = default_profile_status("karpenter", "cp-eks", &failed());
    assert_eq!((s.ready, s.phase), (false, Some(Failed)));
}

fn step(spec: &[&str], observed: &[ObservedProfile], cluster: Option<&ChildState>) -> Teardown {
    let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
    teardown(&spec, observed, &["kube-system"], "cp-eks", cluster).step
}

#[test]
fn teardown_deletes_profiles_one_at_a_time_then_the_cluster() {
    let ready = ChildState::Ready;
    assert_eq!(
        step(
            &["a", "b"],
            &[o("a", ready.clone()), o("b", ready.clone())],
            Some(&ready)
        ),
        Teardown::DeleteProfile("cp-fargate-b".into())
    );
    assert_eq!(
        step(
            &["a", "b"],
            &[o("a", ready.clone()), o("b", ChildState::Deleting(None))],
            Some(&ready)
        ),
        Teardown::WaitForProfile("cp-fargate-b".into())
    );
    assert_eq!(step(&[], &[], Some(&ready)), Teardown::DeleteCluster);
    assert_eq!(
        step(&[], &[], Some(&ChildState::Deleting(None))),
        Teardown::WaitForCluster
    );
    assert_eq!(step(&[], &[], None), Teardown::Done);
}

fn names(statuses: &[FargateProfileStatus]) -> Vec<(&str, FargateProfilePhase, Option<&str>)> {
    statuses
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.phase.unwrap(),
                s.failure_reason.as_deref(),
            )
        })
        .collect()
}

#[test]
fn teardown_goes_in_reverse_spec_order_whatever_the_cache_order() {
    let ready = ChildState::Ready;
    let spec = ["a", "b", "c", "d"];
    let cache_order = [
        o("c", ready.clone()),
        o("d", ready.clone()),
        o("a", ready.clone()),
        o("b", ready.clone()),
    ];
    assert_eq!(
        step(&spec, &cache_order, Some(&ready)),
        Teardown::DeleteProfile("cp-fargate-d".into())
    );
    assert_eq!(
        step(&spec, &cache_order[..1], Some(&ready)),
        Teardown::DeleteProfile("cp-fargate-c".into())
    );
    assert_eq!(
        step(
            &spec,
            &[
                o("a", ready.clone()),
                o("b", ready.clone()),
                o("c", ready.clone())
            ],
            Some(&ready)
        ),
        Teardown::DeleteProfile("cp-fargate-c".into())
    );
    // A profile no longer in the spec goes first.
    assert_eq!(
        step(
            &spec,
            &[o("x", ready.clone()), o("d", ready.clone())],
            Some(&ready)
        ),
        Teardown::DeleteProfile("cp-fargate-x".into())
    );
}

#[test]
fn teardown_waits_for_every_operation_in_flight() {
    let ready = ChildState::Ready;
    let spec: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let observed = [o("a", creating()), o("b", ready.clone())];
    let t = teardown(&spec, &observed, &["kube-system"], "cp-eks", Some(&ready));
    assert_eq!(t.step, Teardown::WaitForProfile("cp-fargate-a".into()));
    assert_eq!(
        names(&t.statuses),
        [
            ("kube-system", Deleting, Some(reason::WAITING_FOR_PROFILE)),
            ("a", Creating, Some(reason::CREATING)),
            ("b", Deleting, Some(reason::WAITING_FOR_PROFILE)),
        ]
    );
    assert!(
        t.statuses[1]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("waiting for this profile's create to finish")
    );
    // The EKS workspace applying a change holds the profiles' deletion...
    let applying = ChildState::Creating {
        reason: "Creating".into(),
        message: String::new(),
    };
    assert_eq!(
        step(&["a"], &[o("a", ready.clone())], Some(&applying)),
        Teardown::WaitForCluster
    );
    // ... but not its own when no profile is left.
    assert_eq!(step(&[], &[], Some(&applying)), Teardown::DeleteCluster);
    // Waiting for secrets or failed is nothing in flight: deleted at once.
    let waiting = ChildState::Creating {
        reason: reason::WAITING_FOR_SECRETS.into(),
        message: String::new(),
    };
    assert_eq!(
        step(
            &["a", "b"],
            &[o("a", waiting), o("b", failed())],
            Some(&ready)
        ),
        Teardown::DeleteProfile("cp-fargate-b".into())
    );
}

#[test]
fn a_failing_destroy_shows_in_the_teardown_status_and_conditions() {
    let ready = ChildState::Ready;
    let spec: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let denied = ChildState::Deleting(Some(DeleteError {
        reason: "ReconcileError".into(),
        message: "delete failed: AccessDeniedException: not authorized".into(),
        terminal: true,
    }));
    let observed = [o("a", ready.clone()), o("b", ready.clone()), o("c", denied)];
    let t = teardown(&spec, &observed, &["kube-system"], "cp-eks", Some(&ready));
    assert_eq!(t.step, Teardown::WaitForProfile("cp-fargate-c".into()));
    assert_eq!(
        names(&t.statuses),
        [
            ("kube-system", Deleting, Some(reason::WAITING_FOR_PROFILE)),
            ("a", Deleting, Some(reason::WAITING_FOR_PROFILE)),
            ("b", Deleting, Some(reason::WAITING_FOR_PROFILE)),
            ("c", Deleting, Some(reason::DELETE_FAILED)),
        ]
    );
    assert!(
        t.statuses[3]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("AccessDeniedException")
    );
    let c = conditions(&t.statuses);
    assert_eq!((c[0].status, c[1].status), (false, true));
    assert_eq!(
        (c[2].status, c[2].reason.as_str()),
        (true, reason::DELETE_FAILED)
    );
    assert!(
        c[2].message.contains("AccessDeniedException"),
        "{}",
        c[2].message
    );
    // A retried transient error is shown, and is no failure.
    let busy = ChildState::Deleting(Some(DeleteError {
        reason: "ReconcileError".into(),
        message: "ResourceInUseException".into(),
        terminal: false,
    }));
    let t = teardown(&spec, &[o("c", busy)], &[], "cp-eks", Some(&ready));
    assert_eq!(
        names(&t.statuses),
        [("c", Deleting, Some(reason::DELETING))]
    );
    assert!(
        t.statuses[0]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("ResourceInUseException")
    );
    assert!(!conditions(&t.statuses)[2].status);
    // The cluster's turn: the default profiles are deleted with it.
    let t = teardown(&spec, &[], &["kube-system"], "cp-eks", Some(&ready));
    assert_eq!(t.step, Teardown::DeleteCluster);
    assert_eq!(
        names(&t.statuses),
        [("kube-system", Deleting, Some(reason::DELETING))]
    );
}

#[test]
fn an_eks_change_waits_for_a_profile_operation() {
    assert_eq!(
        eks_change_held_by(&[o("a", ChildState::Ready), o("monitoring", creating())]),
        Some("monitoring")
    );
    assert_eq!(
        eks_change_held_by(&[o("gone", ChildState::Deleting(None))]),
        Some("gone")
    );
    assert_eq!(
        eks_change_held_by(&[o("a", ChildState::Ready), o("b", failed())]),
        None
    );
    let waiting = ChildState::Creating {
        reason: reason::WAITING_FOR_SECRETS.into(),
        message: String::new(),
    };
    assert_eq!(eks_change_held_by(&[o("a", waiting)]), None);
}

#[test]
fn no_profile_operation_starts_while_the_eks_workspace_applies() {
    let applying = ClusterGate::Applying("the EKS cluster workspace cp-eks is applying".into());
    let p = plan(
        &[d("a"), d("b")],
        &[o("a", ChildState::Ready), o("gone", ChildState::Ready)],
        &applying,
    );
    assert_eq!((p.create, p.delete.clone()), (None, None));
    assert_eq!(
        names(&p.statuses),
        [
            ("a", Ready, None),
            ("b", Pending, Some(reason::WAITING_FOR_CLUSTER)),
            ("gone", Deleting, Some(reason::DELETING)),
        ]
    );
    assert!(
        p.statuses[2]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("EKS cluster workspace")
    );
    let p = plan(
        &[d("a"), d("b")],
        &[o("a", ChildState::Ready), o("gone", ChildState::Ready)],
        &ClusterGate::Open,
    );
    assert_eq!(p.delete.as_deref(), Some("cp-fargate-gone"));
}

#[test]
fn a_retried_transient_error_is_creating_with_its_reason() {
    let retrying = ChildState::Creating {
        reason: failure::TRANSIENT_ERROR.into(),
        message: "ThrottlingException: Rate exceeded (a transient error ...)".into(),
    };
    let p = plan(
        &[d("a"), d("b")],
        &[o("a", retrying.clone())],
        &ClusterGate::Open,
    );
    assert_eq!(
        names(&p.statuses),
        [
            ("a", Creating, Some(failure::TRANSIENT_ERROR)),
            ("b", Pending, Some(reason::WAITING_FOR_PROFILE)),
        ]
    );
    assert!(!conditions(&p.statuses)[2].status, "not a failure");
    let s = default_profile_status("kube-system", "cp-eks", &retrying);
    assert_eq!(
        (s.phase, s.failure_reason.as_deref()),
        (Some(Creating), Some(failure::TRANSIENT_ERROR))
    );
}

fn defaults<'a>(
    spec: &'a [&'a str],
    in_apply: &'a [String],
    eks: &'a ChildState,
    held_by: Option<&'a str>,
    old: &'a [FargateProfileStatus],
) -> Vec<FargateProfileStatus> {
    default_statuses(&Defaults {
        spec,
        in_apply,
        eks_apply: "cp-eks",
        eks,
        held_by,
        old,
    })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_added_default_profile_waits_then_is_created_by_the_eks_workspace() {
    let ready = ChildState::Ready;
    let applying = creating();
    let old = defaults(
        &["kube-system"],
        &strings(&["kube-system"]),
        &ready,
        None,
        &[],
    );
    assert_eq!(names(&old), [("kube-system", Ready, None)]);
    // Held while monitoring is created.
    let held = defaults(
        &["kube-system", "karpenter"],
        &strings(&["kube-system"]),
        &ready,
        Some("monitoring"),
        &old,
    );
    assert_eq!(
        names(&held),
        [
            ("kube-system", Ready, None),
            ("karpenter", Pending, Some(reason::WAITING_FOR_PROFILE)),
        ]
    );
    assert!(
        held[1]
            .failure_message
            .as_deref()
            .unwrap()
            .contains("waits for profile monitoring")
    );
    let c = conditions(&held);
    assert_eq!(
        (c[1].status, c[1].reason.as_str()),
        (true, reason::WAITING_FOR_PROFILE)
    );
    assert!(c[1].message.contains("monitoring"), "{}", c[1].message);
    // Written: the EKS workspace applies; kube-system stays ready meanwhile.
    let both = strings(&["karpenter", "kube-system"]);
    let applying_now = defaults(&["kube-system", "karpenter"], &both, &applying, None, &held);
    assert_eq!(
        names(&applying_now),
        [
            ("kube-system", Ready, None),
            ("karpenter", Creating, Some(reason::CREATING)),
        ]
    );
    let done = defaults(
        &["kube-system", "karpenter"],
        &both,
        &ready,
        None,
        &applying_now,
    );
    assert_eq!(
        names(&done),
        [("kube-system", Ready, None), ("karpenter", Ready, None)]
    );
}

#[test]
fn a_removed_default_profile_is_deleting_until_the_eks_workspace_applied_it() {
    let ready = ChildState::Ready;
    let both = strings(&["karpenter", "kube-system"]);
    let old = defaults(&["kube-system", "karpenter"], &both, &ready, None, &[]);
    // Held by a profile operation: still in the EKS input.
    let held = defaults(&["kube-system"], &both, &ready, Some("monitoring"), &old);
    assert_eq!(
        names(&held),
        [
            ("kube-system", Ready, None),
            ("karpenter", Deleting, Some(reason::WAITING_FOR_PROFILE)),
        ]
    );
    // Not held, not yet applied (the EKS input still has it, or the workspace applies).
    let pending = defaults(&["kube-system"], &both, &ready, None, &old);
    assert_eq!(
        names(&pending)[1],
        ("karpenter", Deleting, Some(reason::DELETING))
    );
    let only = strings(&["kube-system"]);
    let applying = defaults(&["kube-system"], &only, &creating(), None, &pending);
    assert_eq!(
        names(&applying),
        [
            ("kube-system", Ready, None),
            ("karpenter", Deleting, Some(reason::DELETING)),
        ]
    );
    // Applied: it disappears.
    let applied = defaults(&["kube-system"], &only, &ready, None, &applying);
    assert_eq!(names(&applied), [("kube-system", Ready, None)]);
}
