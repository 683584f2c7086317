//! Step 3 of a control plane's reconcile, pure: what to write, delete or wait for, and why,
//! from the observed and desired children. The Fargate rules themselves (one operation per
//! cluster, EKS first, then the additional profiles in spec order, a failure stopping what
//! comes after, teardown in reverse) are `status::profiles`; this module applies them to one
//! control plane.
//!
//! The EKS apply is planned and written before the profiles: its write gives it a generation
//! the apply controller has not seen, which makes it in flight, and no profile operation may
//! start beside it. So the profiles are planned from the EKS apply as written ([`profiles`]).

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observe::Observed;
use crate::api::{CAPTControlPlane, FargateProfileStatus, WorkspaceTemplateApply};
use crate::status::apply::{ChildState, transient_until};
use crate::status::profiles::{self, ClusterGate, DesiredProfile, ObservedProfile, TeardownPlan};
use crate::status::reason;

/// What a reconcile does with the control plane as a whole.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Mode {
    /// Paused (the reason): no child is written, only `Paused=True` is reported.
    Paused(String),
    /// Being deleted: the teardown runs.
    Deleting,
    /// Live: its children are kept as the spec says.
    Live,
}

/// The mode of `cp`, whose pause is `paused` (`pause::is_paused`). Pause wins over deletion:
/// a paused control plane's teardown waits too.
pub(super) fn mode(cp: &CAPTControlPlane, paused: Option<String>) -> Mode {
    match paused {
        Some(why) => Mode::Paused(why),
        None if cp.metadata.deletion_timestamp.is_some() => Mode::Deleting,
        None => Mode::Live,
    }
}

/// What to do with the EKS cluster apply.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum EksStep {
    /// Create it (it does not exist).
    Create,
    /// Write the change (it exists and differs from its render).
    Update,
    /// Leave it: unchanged, or being deleted.
    Keep,
    /// Its change waits for this profile's Fargate operation (one per cluster at a time).
    Hold(String),
    /// It does not exist and is not created yet: the VPC connection secret it reads lacks
    /// what it needs (the message says what).
    WaitForVpc(String),
}

/// The EKS step, from the observed profiles, whether the render changes the apply and what
/// the VPC connection secret lacks (`vpc_missing`, one message per problem; only looked at
/// while the apply does not exist). Like the profiles behind the EKS connection secret, the
/// EKS apply is created only once its VPC secret is complete: created earlier it would only
/// report `WaitingForSecrets` and its interim statuses, each a write of the apply's and the
/// control plane's status.
pub(super) fn eks(observed: &Observed, changed: bool, vpc_missing: &[String]) -> EksStep {
    match observed.eks.as_deref() {
        None if !vpc_missing.is_empty() => EksStep::WaitForVpc(format!(
            "waiting for the VPC connection secret before creating the EKS cluster workspace {}: {}",
            observed.eks_name,
            vpc_missing.join("; ")
        )),
        None => EksStep::Create,
        Some(e) if e.metadata.deletion_timestamp.is_some() || !changed => EksStep::Keep,
        Some(_) => match profiles::eks_change_held_by(&observed.profiles) {
            Some(profile) => EksStep::Hold(profile.to_string()),
            None => EksStep::Update,
        },
    }
}

/// The profiles' step.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ProfileSteps {
    /// The profile apply to delete now.
    pub delete: Option<String>,
    /// Indices of the desired profiles whose applies are written (each unless unchanged):
    /// those kept in sync, then the one created now.
    pub write: Vec<usize>,
    /// The additional profiles' status entries, in spec order.
    pub statuses: Vec<FargateProfileStatus>,
    /// A profile would be created but the connection secrets were not looked at: observe
    /// them (`observe::missing_secrets`) and plan again with what they lack.
    pub needs_secrets: bool,
}

/// What gates the profiles: the EKS apply (its name and state after the EKS step) and what the
/// connection secrets lack (None: not looked at yet).
pub(super) struct Gate<'a> {
    /// The EKS cluster apply's name.
    pub eks_name: &'a str,
    /// Its state.
    pub eks: &'a ChildState,
    /// Messages of what the connection secrets lack; None when not looked at.
    pub missing_secrets: Option<&'a [String]>,
}

/// The state the status reports for the EKS apply after `step`: the waiting one while it is
/// not created for want of its VPC secret, otherwise that of `eks`, the apply as known now.
pub(super) fn eks_state(step: &EksStep, eks: Option<&WorkspaceTemplateApply>) -> ChildState {
    match (step, eks) {
        (EksStep::WaitForVpc(message), None) => ChildState::Creating {
            reason: reason::WAITING_FOR_SECRETS.into(),
            message: message.clone(),
        },
        (_, eks) => super::observe::eks_state(eks),
    }
}

/// Whether additional profiles may be created or deleted now. The secrets matter only once
/// the EKS cluster is ready; not looked at, they count as complete.
pub(super) fn gate(g: &Gate<'_>) -> ClusterGate {
    let eks_apply = g.eks_name;
    match g.eks {
        ChildState::Ready => match g.missing_secrets {
            Some(missing) if !missing.is_empty() => {
                ClusterGate::Waiting(format!("waiting for {}", missing.join("; ")))
            }
            _ => ClusterGate::Open,
        },
        ChildState::Failed { message, .. } => ClusterGate::Failed(format!(
            "the EKS cluster workspace {eks_apply} failed: {message}"
        )),
        ChildState::Creating { message, .. } => {
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            let message =
                format!("waiting for the EKS cluster workspace {eks_apply} to be ready{detail}");
            // While it applies it may create or delete default profiles: nothing else starts.
            if g.eks.in_flight() {
                ClusterGate::Applying(message)
            } else {
                ClusterGate::Waiting(message)
            }
        }
        ChildState::Deleting(_) => ClusterGate::Applying(format!(
            "the EKS cluster workspace {eks_apply} is being deleted"
        )),
    }
}

/// The profiles' step behind `gate` (`status::profiles::plan`). A creation behind a ready EKS
/// cluster needs the connection secrets: without them looked at, the plan asks for them.
/// `at_once` is the test-only misbehaviour of `Context::test_only_create_profiles_at_once`:
/// every missing profile is written with the first.
pub(super) fn profiles(
    desired: &[DesiredProfile],
    observed: &[ObservedProfile],
    g: &Gate<'_>,
    at_once: bool,
) -> ProfileSteps {
    let gate = gate(g);
    let plan = profiles::plan(desired, observed, &gate);
    let needs_secrets =
        plan.create.is_some() && gate == ClusterGate::Open && g.missing_secrets.is_none();
    let mut write = plan.keep.clone();
    if let Some(first) = plan.create.filter(|_| at_once) {
        write.extend((first + 1..desired.len()).filter(|i| !plan.keep.contains(i)));
    }
    write.extend(plan.create);
    ProfileSteps {
        delete: plan.delete,
        write,
        statuses: plan.statuses,
        needs_secrets,
    }
}

/// The teardown step of a control plane being deleted, and the status meanwhile.
/// `eks_state` is the EKS apply's state (None: it is gone).
pub(super) fn teardown(
    cp: &CAPTControlPlane,
    observed: &Observed,
    eks_state: Option<&ChildState>,
) -> TeardownPlan {
    let spec: Vec<String> = cp
        .spec
        .additional_fargate_profiles
        .iter()
        .flatten()
        .map(|p| p.name.clone())
        .collect();
    let defaults: Vec<&str> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| d.name())
        .collect();
    profiles::teardown(
        &spec,
        &observed.profiles,
        &defaults,
        &observed.eks_name,
        eks_state,
    )
}

/// When to look again at `applies` whose transient error could become a failure at `now` (a
/// second after the earliest such moment), if any: no watch event marks that moment.
pub(super) fn transient_check<'a>(
    applies: impl Iterator<Item = &'a WorkspaceTemplateApply>,
    now: Timestamp,
) -> Option<Duration> {
    applies
        .filter_map(transient_until)
        .filter_map(|until| now.duration_until(until).try_into().ok())
        .map(|wait: Duration| wait + Duration::from_secs(1))
        .min()
}

/// When the next reconcile runs: the soonest of the moments asked for, else `resync`.
pub(super) fn requeue(asked: &[Option<Duration>], resync: Duration) -> Duration {
    asked.iter().flatten().min().copied().unwrap_or(resync)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
