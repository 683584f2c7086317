//! The Fargate profile plan: which profile apply to create or delete next, and the status of
//! every profile.
//!
//! Rules (AWS allows one Fargate profile create or delete at a time per cluster, and each
//! profile is its own Terraform workspace):
//! - nothing is created until the EKS cluster (with the default profiles) is ready and its
//!   connection secrets hold the keys the profile workspaces read;
//! - at most one additional profile is in progress (creating or deleting) at any time;
//! - profiles are created in spec order, and a failed profile stops the ones after it;
//! - a profile removed from the spec, or whose immutable settings changed, is deleted first
//!   (AWS cannot change a profile in place and names are unique per cluster, so a changed
//!   profile is deleted, then created again under the same name).

use std::collections::BTreeSet;

use super::apply::ChildState;
use super::conditions::Desired;
use crate::api::{FargateProfilePhase, FargateProfileStatus};

/// Condition types on the control plane.
pub mod condition {
    /// All Fargate profiles are ready.
    pub const READY: &str = "FargateProfileReady";
    /// A Fargate profile is being created, deleted or is waiting to be.
    pub const CREATING: &str = "FargateProfileCreating";
    /// A Fargate profile failed.
    pub const FAILED: &str = "FargateProfileFailed";
}

/// Reasons on profile statuses and conditions.
pub mod reason {
    /// Waiting for the EKS cluster or its secrets.
    pub const WAITING_FOR_CLUSTER: &str = "WaitingForCluster";
    /// Waiting for another profile (one operation at a time per cluster).
    pub const WAITING_FOR_PROFILE: &str = "WaitingForProfile";
    /// An earlier profile failed.
    pub const BLOCKED_BY_FAILURE: &str = "BlockedByFailedProfile";
    /// The EKS cluster failed.
    pub const CLUSTER_FAILED: &str = "ClusterFailed";
    /// The old profile is deleted before the changed one is created.
    pub const REPLACING: &str = "Replacing";
    /// Being created.
    pub const CREATING: &str = "Creating";
    /// Being deleted.
    pub const DELETING: &str = "Deleting";
}

/// One profile of the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredProfile {
    /// Profile name.
    pub name: String,
    /// Name of its apply.
    pub apply_name: String,
    /// Hash of its immutable settings.
    pub hash: String,
}

/// One existing profile apply.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedProfile {
    /// Profile name (from its annotation).
    pub profile: String,
    /// Apply name.
    pub apply_name: String,
    /// Hash of the immutable settings it was created with.
    pub hash: String,
    /// What it is doing.
    pub state: ChildState,
}

/// Whether additional profiles may be created.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterGate {
    /// The EKS cluster is ready and its secrets are complete.
    Open,
    /// Not yet; the message says what is missing.
    Waiting(String),
    /// The EKS cluster failed.
    Failed(String),
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Index into the desired profiles of the profile whose apply is created now.
    pub create: Option<usize>,
    /// Indices of desired profiles whose applies exist and are kept in sync (tags).
    pub keep: Vec<usize>,
    /// Apply to delete now.
    pub delete: Option<String>,
    /// Status of each desired profile, in spec order.
    pub statuses: Vec<FargateProfileStatus>,
}

fn status(
    name: &str,
    apply: &str,
    phase: FargateProfilePhase,
    reason: Option<&str>,
    message: Option<String>,
) -> FargateProfileStatus {
    FargateProfileStatus {
        name: name.to_string(),
        ready: phase == FargateProfilePhase::Ready,
        workspace_template_apply_name: Some(apply.to_string()),
        phase: Some(phase),
        failure_reason: reason.map(str::to_string),
        failure_message: message,
    }
}

/// Decides the next step for the additional profiles.
pub fn plan(desired: &[DesiredProfile], observed: &[ObservedProfile], gate: &ClusterGate) -> Plan {
    let current = |d: &DesiredProfile| {
        observed
            .iter()
            .find(|o| o.profile == d.name && o.hash == d.hash && o.state != ChildState::Deleting)
    };
    let obsolete: Vec<&ObservedProfile> = observed
        .iter()
        .filter(|o| {
            !desired
                .iter()
                .any(|d| d.name == o.profile && d.hash == o.hash)
        })
        .collect();
    let mut busy: Option<String> = observed
        .iter()
        .find(|o| matches!(o.state, ChildState::Creating { .. } | ChildState::Deleting))
        .map(|o| o.profile.clone());

    let mut plan = Plan::default();
    if busy.is_none()
        && let Some(victim) = obsolete.iter().find(|o| o.state != ChildState::Deleting)
    {
        plan.delete = Some(victim.apply_name.clone());
        busy = Some(victim.profile.clone());
    }
    let leaving: BTreeSet<&str> = obsolete.iter().map(|o| o.profile.as_str()).collect();

    // Set once something stops the profiles that follow.
    let mut blocked: Option<(&'static str, String)> = None;
    for (index, d) in desired.iter().enumerate() {
        let entry = match current(d) {
            Some(o) => {
                plan.keep.push(index);
                match &o.state {
                    ChildState::Ready => status(
                        &d.name,
                        &d.apply_name,
                        FargateProfilePhase::Ready,
                        None,
                        None,
                    ),
                    ChildState::Creating { message, .. } => {
                        blocked.get_or_insert((
                            reason::WAITING_FOR_PROFILE,
                            format!("waiting for profile {} to be created", d.name),
                        ));
                        let message = (!message.is_empty()).then(|| message.clone());
                        status(
                            &d.name,
                            &d.apply_name,
                            FargateProfilePhase::Creating,
                            Some(reason::CREATING),
                            message,
                        )
                    }
                    ChildState::Failed { reason, message } => {
                        blocked.get_or_insert((
                            reason::BLOCKED_BY_FAILURE,
                            format!("profile {} failed; fix or remove it to continue", d.name),
                        ));
                        status(
                            &d.name,
                            &d.apply_name,
                            FargateProfilePhase::Failed,
                            Some(reason),
                            Some(message.clone()),
                        )
                    }
                    ChildState::Deleting => unreachable!("deleting applies are never current"),
                }
            }
            None if leaving.contains(d.name.as_str()) => {
                let message = format!(
                    "settings that AWS cannot change were changed; deleting the old profile {} before creating it again",
                    d.name
                );
                blocked.get_or_insert((
                    reason::WAITING_FOR_PROFILE,
                    format!("waiting for profile {} to be replaced", d.name),
                ));
                status(
                    &d.name,
                    &d.apply_name,
                    FargateProfilePhase::Deleting,
                    Some(reason::REPLACING),
                    Some(message),
                )
            }
            None => {
                let (phase, reason, message) = if let Some((reason, message)) = &blocked {
                    (FargateProfilePhase::Pending, *reason, message.clone())
                } else {
                    match gate {
                        ClusterGate::Failed(message) => (
                            FargateProfilePhase::Pending,
                            reason::CLUSTER_FAILED,
                            message.clone(),
                        ),
                        ClusterGate::Waiting(message) => (
                            FargateProfilePhase::Pending,
                            reason::WAITING_FOR_CLUSTER,
                            message.clone(),
                        ),
                        ClusterGate::Open => match &busy {
                            Some(other) => (
                                FargateProfilePhase::Pending,
                                reason::WAITING_FOR_PROFILE,
                                format!(
                                    "waiting for profile {other}: AWS allows one Fargate profile change at a time per cluster"
                                ),
                            ),
                            None => {
                                plan.create = Some(index);
                                busy = Some(d.name.clone());
                                (
                                    FargateProfilePhase::Creating,
                                    reason::CREATING,
                                    format!("creating WorkspaceTemplateApply {}", d.apply_name),
                                )
                            }
                        },
                    }
                };
                blocked.get_or_insert((reason, message.clone()));
                status(&d.name, &d.apply_name, phase, Some(reason), Some(message))
            }
        };
        plan.statuses.push(entry);
    }
    // Profiles removed from the spec stay visible until they are gone.
    for o in obsolete
        .iter()
        .filter(|o| !desired.iter().any(|d| d.name == o.profile))
    {
        let message = format!(
            "removed from the spec; deleting WorkspaceTemplateApply {}",
            o.apply_name
        );
        plan.statuses.push(status(
            &o.profile,
            &o.apply_name,
            FargateProfilePhase::Deleting,
            Some(reason::DELETING),
            Some(message),
        ));
    }
    plan
}

/// Status of a default profile, which lives and dies with the EKS cluster workspace.
pub fn default_profile_status(
    name: &str,
    eks_apply: &str,
    eks: &ChildState,
) -> FargateProfileStatus {
    match eks {
        ChildState::Ready => status(name, eks_apply, FargateProfilePhase::Ready, None, None),
        ChildState::Creating { .. } => status(
            name,
            eks_apply,
            FargateProfilePhase::Creating,
            Some(reason::CREATING),
            Some(format!(
                "created with the EKS cluster by WorkspaceTemplateApply {eks_apply}"
            )),
        ),
        ChildState::Failed { reason, message } => status(
            name,
            eks_apply,
            FargateProfilePhase::Failed,
            Some(reason),
            Some(message.clone()),
        ),
        ChildState::Deleting => status(
            name,
            eks_apply,
            FargateProfilePhase::Deleting,
            Some(reason::DELETING),
            None,
        ),
    }
}

/// Whether two status lists name the same profiles in the same order.
pub fn same_profiles(a: &[FargateProfileStatus], b: &[FargateProfileStatus]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name)
}

/// The three aggregate conditions for a list of profile statuses.
pub fn conditions(statuses: &[FargateProfileStatus]) -> Vec<Desired> {
    let total = statuses.len();
    let ready = statuses.iter().filter(|s| s.ready).count();
    let describe = |s: &FargateProfileStatus| {
        let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        match &s.failure_message {
            Some(m) => format!("{} ({phase}: {m})", s.name),
            None => format!("{} ({phase})", s.name),
        }
    };

    let ready_condition = if ready == total {
        let reason = if total == 0 {
            "NoProfiles"
        } else {
            "AllProfilesReady"
        };
        Desired::new(
            condition::READY,
            true,
            reason,
            format!("{ready} of {total} Fargate profiles are ready"),
        )
    } else {
        let waiting: Vec<String> = statuses.iter().filter(|s| !s.ready).map(describe).collect();
        Desired::new(
            condition::READY,
            false,
            "ProfilesNotReady",
            format!(
                "{ready} of {total} Fargate profiles are ready; not ready: {}",
                waiting.join("; ")
            ),
        )
    };

    let in_progress = statuses.iter().find(|s| {
        matches!(
            s.phase,
            Some(
                FargateProfilePhase::Creating
                    | FargateProfilePhase::Deleting
                    | FargateProfilePhase::Pending
            )
        )
    });
    let creating_condition = match in_progress {
        Some(s) => {
            let reason = match s.phase {
                Some(FargateProfilePhase::Deleting) => reason::DELETING,
                Some(FargateProfilePhase::Pending) => s
                    .failure_reason
                    .as_deref()
                    .unwrap_or(reason::WAITING_FOR_PROFILE),
                _ => reason::CREATING,
            };
            Desired::new(condition::CREATING, true, reason, describe(s))
        }
        None => Desired::new(
            condition::CREATING,
            false,
            "Idle",
            "no Fargate profile is being created or deleted",
        ),
    };

    let failed_condition = match statuses
        .iter()
        .find(|s| s.phase == Some(FargateProfilePhase::Failed))
    {
        Some(s) => Desired::new(
            condition::FAILED,
            true,
            s.failure_reason
                .clone()
                .unwrap_or_else(|| "ProfileFailed".into()),
            describe(s),
        ),
        None => Desired::new(
            condition::FAILED,
            false,
            "NoFailures",
            "no Fargate profile has failed",
        ),
    };
    vec![ready_condition, creating_condition, failed_condition]
}

/// A profile apply's state during teardown of the whole control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum Teardown {
    /// Delete this profile apply now.
    DeleteProfile(String),
    /// A profile apply is being deleted; wait for it.
    WaitForProfile(String),
    /// All profiles are gone: delete the EKS cluster apply.
    DeleteCluster,
    /// The EKS cluster apply is being deleted; wait for it.
    WaitForCluster,
    /// Nothing is left.
    Done,
}

/// The next teardown step: profiles one at a time (last created first), then the cluster,
/// since AWS refuses to delete a cluster that still has profiles.
pub fn teardown(observed: &[ObservedProfile], cluster: Option<&ChildState>) -> Teardown {
    if let Some(o) = observed.iter().find(|o| o.state == ChildState::Deleting) {
        return Teardown::WaitForProfile(o.apply_name.clone());
    }
    if let Some(o) = observed.last() {
        return Teardown::DeleteProfile(o.apply_name.clone());
    }
    match cluster {
        Some(ChildState::Deleting) => Teardown::WaitForCluster,
        Some(_) => Teardown::DeleteCluster,
        None => Teardown::Done,
    }
}

#[cfg(test)]
mod tests {
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
            &[o("a", ChildState::Ready), o("b", ChildState::Deleting)],
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
            &[o("a", ChildState::Deleting), o("b", ChildState::Ready)],
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

    #[test]
    fn teardown_deletes_profiles_one_at_a_time_then_the_cluster() {
        let ready = ChildState::Ready;
        assert_eq!(
            teardown(
                &[o("a", ready.clone()), o("b", ready.clone())],
                Some(&ready)
            ),
            Teardown::DeleteProfile("cp-fargate-b".into())
        );
        assert_eq!(
            teardown(
                &[o("a", ready.clone()), o("b", ChildState::Deleting)],
                Some(&ready)
            ),
            Teardown::WaitForProfile("cp-fargate-b".into())
        );
        assert_eq!(teardown(&[], Some(&ready)), Teardown::DeleteCluster);
        assert_eq!(
            teardown(&[], Some(&ChildState::Deleting)),
            Teardown::WaitForCluster
        );
        assert_eq!(teardown(&[], None), Teardown::Done);
    }
}
