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
//!   profile is deleted, then created again under the same name);
//! - the EKS cluster workspace counts as a Fargate operation too, since its Terraform apply
//!   creates and deletes the default profiles: a change to it waits while a profile operation
//!   is in flight ([`eks_change_held_by`]), and no profile is created or deleted while it
//!   applies ([`ClusterGate::Applying`]);
//! - teardown waits for every operation in flight, then deletes the profiles one at a time in
//!   reverse spec order, then the EKS cluster ([`teardown`]).

use std::collections::BTreeSet;

use super::apply::{ChildState, DeleteError};
use super::conditions::WantedCondition;
use super::failure;
use super::reason;
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
    /// The EKS cluster workspace is applying a change, which may create or delete default
    /// profiles: no profile is created or deleted until it is done.
    Applying(String),
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
    let obsolete = obsolete(desired, observed);
    let mut walk = Walk {
        busy: observed
            .iter()
            .find(|o| {
                matches!(
                    o.state,
                    ChildState::Creating { .. } | ChildState::Deleting(_)
                )
            })
            .map(|o| o.profile.clone()),
        blocked: None,
    };
    let mut plan = Plan::default();
    // While the EKS cluster workspace applies, it may be creating or deleting default
    // profiles: deletions wait like creations.
    let eks_applying = matches!(gate, ClusterGate::Applying(_));
    if walk.busy.is_none()
        && !eks_applying
        && let Some(victim) = obsolete
            .iter()
            .find(|o| !matches!(o.state, ChildState::Deleting(_)))
    {
        plan.delete = Some(victim.apply_name.clone());
        walk.busy = Some(victim.profile.clone());
    }
    let leaving: BTreeSet<&str> = obsolete.iter().map(|o| o.profile.as_str()).collect();
    for (index, d) in desired.iter().enumerate() {
        let current = observed.iter().find(|o| {
            o.profile == d.name && o.hash == d.hash && !matches!(o.state, ChildState::Deleting(_))
        });
        let entry = match current {
            Some(o) => {
                plan.keep.push(index);
                walk.existing(d, &o.state)
            }
            None if leaving.contains(d.name.as_str()) => walk.replacing(d),
            None => {
                let (entry, create) = walk.missing(d, gate);
                if create {
                    plan.create = Some(index);
                }
                entry
            }
        };
        plan.statuses.push(entry);
    }
    plan.statuses
        .extend(removed_statuses(desired, &obsolete, gate));
    plan
}

/// The profile applies that no desired profile matches (removed from the spec, or with changed
/// immutable settings).
fn obsolete<'a>(
    desired: &[DesiredProfile],
    observed: &'a [ObservedProfile],
) -> Vec<&'a ObservedProfile> {
    observed
        .iter()
        .filter(|o| {
            !desired
                .iter()
                .any(|d| d.name == o.profile && d.hash == o.hash)
        })
        .collect()
}

/// The walk through the desired profiles in spec order.
struct Walk {
    /// The profile whose operation is in progress, if any (one at a time).
    busy: Option<String>,
    /// Set once something stops the profiles that follow: reason and message.
    blocked: Option<(&'static str, String)>,
}

impl Walk {
    /// The status of a profile whose apply exists with its current settings.
    fn existing(&mut self, d: &DesiredProfile, state: &ChildState) -> FargateProfileStatus {
        match state {
            ChildState::Ready => status(
                &d.name,
                &d.apply_name,
                FargateProfilePhase::Ready,
                None,
                None,
            ),
            ChildState::Creating { reason, message } => {
                self.blocked.get_or_insert((
                    reason::WAITING_FOR_PROFILE,
                    format!("waiting for profile {} to be created", d.name),
                ));
                let message = (!message.is_empty()).then(|| message.clone());
                // A retried transient error keeps its reason: not a failure, not silent.
                let reason = if reason == failure::TRANSIENT_ERROR {
                    failure::TRANSIENT_ERROR
                } else {
                    reason::CREATING
                };
                status(
                    &d.name,
                    &d.apply_name,
                    FargateProfilePhase::Creating,
                    Some(reason),
                    message,
                )
            }
            ChildState::Failed { reason, message } => {
                self.blocked.get_or_insert((
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
            ChildState::Deleting(_) => unreachable!("deleting applies are never current"),
        }
    }

    /// The status of a profile whose old apply is deleted before it is created again.
    fn replacing(&mut self, d: &DesiredProfile) -> FargateProfileStatus {
        let message = format!(
            "settings that AWS cannot change were changed; deleting the old profile {} before creating it again",
            d.name
        );
        self.blocked.get_or_insert((
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

    /// The status of a profile without an apply, and whether its apply is created now.
    fn missing(&mut self, d: &DesiredProfile, gate: &ClusterGate) -> (FargateProfileStatus, bool) {
        let mut create = false;
        let (phase, reason, message) = if let Some((reason, message)) = &self.blocked {
            (FargateProfilePhase::Pending, *reason, message.clone())
        } else {
            match gate {
                ClusterGate::Failed(message) => (
                    FargateProfilePhase::Pending,
                    reason::CLUSTER_FAILED,
                    message.clone(),
                ),
                ClusterGate::Waiting(message) | ClusterGate::Applying(message) => (
                    FargateProfilePhase::Pending,
                    reason::WAITING_FOR_CLUSTER,
                    message.clone(),
                ),
                ClusterGate::Open => match &self.busy {
                    Some(other) => (
                        FargateProfilePhase::Pending,
                        reason::WAITING_FOR_PROFILE,
                        format!(
                            "waiting for profile {other}: AWS allows one Fargate profile change at a time per cluster"
                        ),
                    ),
                    None => {
                        create = true;
                        self.busy = Some(d.name.clone());
                        (
                            FargateProfilePhase::Creating,
                            reason::CREATING,
                            format!("creating WorkspaceTemplateApply {}", d.apply_name),
                        )
                    }
                },
            }
        };
        self.blocked.get_or_insert((reason, message.clone()));
        let entry = status(&d.name, &d.apply_name, phase, Some(reason), Some(message));
        (entry, create)
    }
}

/// Profiles removed from the spec stay visible until they are gone.
fn removed_statuses(
    desired: &[DesiredProfile],
    obsolete: &[&ObservedProfile],
    gate: &ClusterGate,
) -> Vec<FargateProfileStatus> {
    let mut statuses = Vec::new();
    for o in obsolete
        .iter()
        .filter(|o| !desired.iter().any(|d| d.name == o.profile))
    {
        let message = match (&o.state, gate) {
            (ChildState::Deleting(_), _) => format!(
                "removed from the spec; deleting WorkspaceTemplateApply {}",
                o.apply_name
            ),
            (_, ClusterGate::Applying(why)) => format!(
                "removed from the spec; its deletion waits until the EKS cluster workspace has applied its change ({why})"
            ),
            _ => format!(
                "removed from the spec; deleting WorkspaceTemplateApply {}",
                o.apply_name
            ),
        };
        statuses.push(deleting_status(
            &o.profile,
            &o.apply_name,
            &o.state,
            message,
        ));
    }
    statuses
}

/// A profile being deleted, with the error of its destroy if there is one: an error that needs
/// a person gives the reason [`reason::DELETE_FAILED`] (which counts as a failure in the
/// conditions), a transient one is shown while it is retried.
fn deleting_status(
    name: &str,
    apply: &str,
    state: &ChildState,
    message: String,
) -> FargateProfileStatus {
    match state {
        ChildState::Deleting(Some(DeleteError {
            message: error,
            terminal: true,
            ..
        })) => status(
            name,
            apply,
            FargateProfilePhase::Deleting,
            Some(reason::DELETE_FAILED),
            Some(format!(
                "deleting WorkspaceTemplateApply {apply} failed: {error}"
            )),
        ),
        ChildState::Deleting(Some(DeleteError { message: error, .. })) => status(
            name,
            apply,
            FargateProfilePhase::Deleting,
            Some(reason::DELETING),
            Some(format!(
                "deleting WorkspaceTemplateApply {apply}; provider-terraform retries a transient error: {error}"
            )),
        ),
        _ => status(
            name,
            apply,
            FargateProfilePhase::Deleting,
            Some(reason::DELETING),
            Some(message),
        ),
    }
}

/// The profile whose operation holds a change of the EKS cluster workspace, if any: the EKS
/// module's Terraform apply creates and deletes the default profiles, and AWS allows one
/// Fargate profile create or delete per cluster at a time. Every change of the EKS apply
/// waits, not only one of its default profiles: from the outside a change's effect on the
/// profiles cannot be told for sure (the module's tags and settings reach its profiles too),
/// and the wait lasts at most one profile operation.
pub fn eks_change_held_by(observed: &[ObservedProfile]) -> Option<&str> {
    observed
        .iter()
        .find(|o| o.state.in_flight())
        .map(|o| o.profile.as_str())
}

/// What the status of the default profiles is made from.
#[derive(Clone, Copy, Debug)]
pub struct Defaults<'a> {
    /// The default profiles of the spec, in its order.
    pub spec: &'a [&'a str],
    /// The default profiles in the EKS apply's Terraform input (`fargate_profiles`) as it is
    /// now, after this reconcile's write if there was one.
    pub in_apply: &'a [String],
    /// Name of the EKS cluster apply.
    pub eks_apply: &'a str,
    /// Its state.
    pub eks: &'a ChildState,
    /// The profile whose operation holds a change of the EKS apply ([`eks_change_held_by`]).
    pub held_by: Option<&'a str>,
    /// The status as last written: a removed default profile stays listed as `Deleting` in it
    /// until the EKS workspace has applied the removal.
    pub old: &'a [FargateProfileStatus],
}

/// Status of the default profiles, which the EKS cluster workspace creates and deletes: those
/// of the spec, then those removed from it that the EKS workspace has not deleted yet.
/// - An added profile is `Pending` while the EKS change waits for another profile, then
///   `Creating` while the EKS workspace applies, then `Ready`.
/// - A removed one is `Deleting` (waiting, or being deleted) until the EKS workspace reports
///   the change applied, then it disappears.
/// - A profile that was ready stays ready while the EKS workspace applies another change.
pub fn default_statuses(d: &Defaults) -> Vec<FargateProfileStatus> {
    let in_apply = |name: &str| d.in_apply.iter().any(|n| n == name);
    let was = |name: &str| {
        d.old.iter().find(|s| {
            s.name == name && s.workspace_template_apply_name.as_deref() == Some(d.eks_apply)
        })
    };
    let wait = |p: &str| {
        format!(
            "the change of the EKS cluster workspace {} waits for profile {p}: AWS allows one Fargate profile change at a time per cluster",
            d.eks_apply
        )
    };
    let mut out = Vec::new();
    for &name in d.spec {
        let entry = match d.held_by {
            Some(p) if !in_apply(name) => status(
                name,
                d.eks_apply,
                FargateProfilePhase::Pending,
                Some(reason::WAITING_FOR_PROFILE),
                Some(wait(p)),
            ),
            _ if matches!(d.eks, ChildState::Creating { .. })
                && in_apply(name)
                && was(name).is_some_and(|s| s.ready) =>
            {
                status(name, d.eks_apply, FargateProfilePhase::Ready, None, None)
            }
            _ => default_profile_status(name, d.eks_apply, d.eks),
        };
        out.push(entry);
    }
    let mut removed: Vec<&str> = d.in_apply.iter().map(String::as_str).collect();
    removed.extend(
        d.old
            .iter()
            .filter(|s| s.workspace_template_apply_name.as_deref() == Some(d.eks_apply))
            .map(|s| s.name.as_str()),
    );
    let mut seen = BTreeSet::new();
    removed.retain(|n| !d.spec.contains(n) && seen.insert(*n));
    for name in removed {
        let entry = match (d.held_by, d.eks) {
            (Some(p), _) if in_apply(name) => status(
                name,
                d.eks_apply,
                FargateProfilePhase::Deleting,
                Some(reason::WAITING_FOR_PROFILE),
                Some(format!("removed from defaultFargateProfiles; {}", wait(p))),
            ),
            // Applied: the EKS workspace deleted it.
            (_, ChildState::Ready) if !in_apply(name) => continue,
            (_, ChildState::Failed { reason, message }) => status(
                name,
                d.eks_apply,
                FargateProfilePhase::Failed,
                Some(reason),
                Some(message.clone()),
            ),
            _ => status(
                name,
                d.eks_apply,
                FargateProfilePhase::Deleting,
                Some(reason::DELETING),
                Some(format!(
                    "removed from defaultFargateProfiles; deleted by the EKS cluster workspace {}",
                    d.eks_apply
                )),
            ),
        };
        out.push(entry);
    }
    out
}

/// Status of a default profile, which lives and dies with the EKS cluster workspace.
pub fn default_profile_status(
    name: &str,
    eks_apply: &str,
    eks: &ChildState,
) -> FargateProfileStatus {
    match eks {
        ChildState::Ready => status(name, eks_apply, FargateProfilePhase::Ready, None, None),
        ChildState::Creating { reason, message } if reason == failure::TRANSIENT_ERROR => status(
            name,
            eks_apply,
            FargateProfilePhase::Creating,
            Some(failure::TRANSIENT_ERROR),
            Some(message.clone()),
        ),
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
        ChildState::Deleting(_) => deleting_status(
            name,
            eks_apply,
            eks,
            format!("deleted with the EKS cluster by WorkspaceTemplateApply {eks_apply}"),
        ),
    }
}

/// Whether two status lists name the same profiles in the same order.
pub fn same_profiles(a: &[FargateProfileStatus], b: &[FargateProfileStatus]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name)
}

/// The three aggregate conditions for a list of profile statuses.
pub fn conditions(statuses: &[FargateProfileStatus]) -> Vec<WantedCondition> {
    vec![
        ready_condition(statuses),
        creating_condition(statuses),
        failed_condition(statuses),
    ]
}

/// A profile and its phase, with its message if it has one, for condition messages.
fn describe(s: &FargateProfileStatus) -> String {
    let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
    match &s.failure_message {
        Some(m) => format!("{} ({phase}: {m})", s.name),
        None => format!("{} ({phase})", s.name),
    }
}

/// `FargateProfileReady`: whether every profile is ready, naming those that are not.
fn ready_condition(statuses: &[FargateProfileStatus]) -> WantedCondition {
    let total = statuses.len();
    let ready = statuses.iter().filter(|s| s.ready).count();
    if ready == total {
        let reason = if total == 0 {
            "NoProfiles"
        } else {
            "AllProfilesReady"
        };
        return WantedCondition::new(
            condition::READY,
            true,
            reason,
            format!("{ready} of {total} Fargate profiles are ready"),
        );
    }
    let waiting: Vec<String> = statuses.iter().filter(|s| !s.ready).map(describe).collect();
    WantedCondition::new(
        condition::READY,
        false,
        "ProfilesNotReady",
        format!(
            "{ready} of {total} Fargate profiles are ready; not ready: {}",
            waiting.join("; ")
        ),
    )
}

/// `FargateProfileCreating`: the first profile being created, deleted or waiting to be.
fn creating_condition(statuses: &[FargateProfileStatus]) -> WantedCondition {
    let in_progress = statuses
        .iter()
        .find(|s| s.phase.is_some_and(FargateProfilePhase::in_progress));
    match in_progress {
        Some(s) => {
            let reason = match s.phase {
                Some(FargateProfilePhase::Deleting) => reason::DELETING,
                Some(FargateProfilePhase::Pending) => s
                    .failure_reason
                    .as_deref()
                    .unwrap_or(reason::WAITING_FOR_PROFILE),
                _ => reason::CREATING,
            };
            WantedCondition::new(condition::CREATING, true, reason, describe(s))
        }
        None => WantedCondition::new(
            condition::CREATING,
            false,
            "Idle",
            "no Fargate profile is being created or deleted",
        ),
    }
}

/// `FargateProfileFailed`: the first profile that failed. A destroy that needs a person is a
/// failure too, though the profile is still Deleting.
fn failed_condition(statuses: &[FargateProfileStatus]) -> WantedCondition {
    match statuses.iter().find(|s| {
        s.phase == Some(FargateProfilePhase::Failed)
            || (s.phase == Some(FargateProfilePhase::Deleting)
                && s.failure_reason.as_deref() == Some(reason::DELETE_FAILED))
    }) {
        Some(s) => WantedCondition::new(
            condition::FAILED,
            true,
            s.failure_reason
                .clone()
                .unwrap_or_else(|| "ProfileFailed".into()),
            describe(s),
        ),
        None => WantedCondition::new(
            condition::FAILED,
            false,
            "NoFailures",
            "no Fargate profile has failed",
        ),
    }
}

/// A profile apply's state during teardown of the whole control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum Teardown {
    /// Delete this profile apply now.
    DeleteProfile(String),
    /// This profile apply's create or delete is in flight; wait for it.
    WaitForProfile(String),
    /// All profiles are gone: delete the EKS cluster apply.
    DeleteCluster,
    /// The EKS cluster apply is applying a change or being deleted; wait for it.
    WaitForCluster,
    /// Nothing is left.
    Done,
}

/// The next teardown step and the status to show meanwhile.
#[derive(Clone, Debug, PartialEq)]
pub struct TeardownPlan {
    /// What to do now.
    pub step: Teardown,
    /// Every profile that is left: the default ones, then the additional ones in spec order.
    pub statuses: Vec<FargateProfileStatus>,
}

/// Puts the profile applies in the order they are deleted from the back: spec order, with
/// applies of profiles no longer in the spec after them (so they go first), ties by apply name.
fn spec_order<'a>(spec: &[String], observed: &'a [ObservedProfile]) -> Vec<&'a ObservedProfile> {
    let mut ordered: Vec<&ObservedProfile> = observed.iter().collect();
    ordered.sort_by_key(|o| {
        let at = spec
            .iter()
            .position(|n| *n == o.profile)
            .unwrap_or(usize::MAX);
        (at, o.apply_name.clone())
    });
    ordered
}

/// The next teardown step. Nothing is deleted while a profile's create or delete, or (when
/// profiles are left) the EKS workspace's apply, is in flight: AWS allows one Fargate profile
/// operation per cluster at a time. Then the profiles are deleted one at a time in reverse spec
/// order (`spec`: the additional profiles' names), then the cluster, since AWS refuses to delete
/// a cluster that still has profiles. `defaults` are the default profiles' names, `eks_apply`
/// the EKS cluster apply's name, shown in the status until the cluster is gone.
pub fn teardown(
    spec: &[String],
    observed: &[ObservedProfile],
    defaults: &[&str],
    eks_apply: &str,
    cluster: Option<&ChildState>,
) -> TeardownPlan {
    let ordered = spec_order(spec, observed);
    let step = teardown_step(&ordered, cluster);
    let mut statuses = Vec::new();
    if let Some(cluster) = cluster {
        for &name in defaults {
            statuses.push(teardown_default_status(name, eks_apply, cluster, &step));
        }
    }
    let current = match &step {
        Teardown::DeleteProfile(name) | Teardown::WaitForProfile(name) => Some(name.as_str()),
        _ => None,
    };
    for o in &ordered {
        statuses.push(teardown_profile_status(o, current, eks_apply));
    }
    TeardownPlan { step, statuses }
}

/// The next teardown step, for the profile applies in spec order (see [`teardown`]).
fn teardown_step(ordered: &[&ObservedProfile], cluster: Option<&ChildState>) -> Teardown {
    let in_flight = ordered
        .iter()
        .find(|o| matches!(o.state, ChildState::Deleting(_)))
        .or_else(|| ordered.iter().find(|o| o.state.in_flight()));
    if let Some(o) = in_flight {
        Teardown::WaitForProfile(o.apply_name.clone())
    } else if !ordered.is_empty() && cluster.is_some_and(ChildState::in_flight) {
        Teardown::WaitForCluster
    } else if let Some(o) = ordered.last() {
        Teardown::DeleteProfile(o.apply_name.clone())
    } else {
        match cluster {
            Some(ChildState::Deleting(_)) => Teardown::WaitForCluster,
            Some(_) => Teardown::DeleteCluster,
            None => Teardown::Done,
        }
    }
}

/// The status of a default profile during teardown: it goes with the EKS cluster, last.
fn teardown_default_status(
    name: &str,
    eks_apply: &str,
    cluster: &ChildState,
    step: &Teardown,
) -> FargateProfileStatus {
    match cluster {
        ChildState::Deleting(_) => default_profile_status(name, eks_apply, cluster),
        _ if *step == Teardown::DeleteCluster => deleting_status(
            name,
            eks_apply,
            cluster,
            format!("deleted with the EKS cluster by WorkspaceTemplateApply {eks_apply}"),
        ),
        _ => status(
            name,
            eks_apply,
            FargateProfilePhase::Deleting,
            Some(reason::WAITING_FOR_PROFILE),
            Some(format!(
                "the control plane is being deleted; deleted with the EKS cluster by WorkspaceTemplateApply {eks_apply} after the additional profiles"
            )),
        ),
    }
}

/// The status of an additional profile during teardown; `current` is the apply the teardown
/// deletes or waits for now.
fn teardown_profile_status(
    o: &ObservedProfile,
    current: Option<&str>,
    eks_apply: &str,
) -> FargateProfileStatus {
    match &o.state {
        ChildState::Deleting(_) => deleting_status(
            &o.profile,
            &o.apply_name,
            &o.state,
            format!("deleting WorkspaceTemplateApply {}", o.apply_name),
        ),
        _ if current == Some(o.apply_name.as_str()) && o.state.in_flight() => status(
            &o.profile,
            &o.apply_name,
            FargateProfilePhase::Creating,
            Some(reason::CREATING),
            Some(
                "the control plane is being deleted; waiting for this profile's create to finish before deleting anything (one Fargate profile operation per cluster at a time)"
                    .to_string(),
            ),
        ),
        _ if current == Some(o.apply_name.as_str()) => deleting_status(
            &o.profile,
            &o.apply_name,
            &o.state,
            format!("deleting WorkspaceTemplateApply {}", o.apply_name),
        ),
        _ => status(
            &o.profile,
            &o.apply_name,
            FargateProfilePhase::Deleting,
            Some(reason::WAITING_FOR_PROFILE),
            Some(match current {
                Some(other) => format!(
                    "the control plane is being deleted; waiting for WorkspaceTemplateApply {other} (profiles are deleted one at a time, last first)"
                ),
                None => format!(
                    "the control plane is being deleted; waiting for the EKS cluster workspace {eks_apply} to finish applying"
                ),
            }),
        ),
    }
}

#[cfg(test)]
#[path = "profiles_tests.rs"]
mod tests;
