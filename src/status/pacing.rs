//! Which control-plane status changes may wait.
//!
//! A control-plane status write is the most expensive request this operator makes (about twice
//! the cost of creating a child, measured by `examples/request_costs.rs`), and while profiles
//! are created one after another every step changes the status. Steps that only move profiles
//! forward (Pending → Creating → Ready) are folded into one write per interval; anything a user
//! or Cluster API acts on (a failure, a deletion, a condition turning, the last profile
//! becoming ready, a new generation) is written at once.

use std::time::Duration;

use super::profiles::same_profiles;
use crate::api::{CAPTControlPlaneStatus, FargateProfilePhase, FargateProfileStatus};

/// The shortest interval between progress-only status writes of one control plane.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(20);

/// Progress-only writes of all control planes together stay within this rate: in a large
/// rollout each control plane's interval grows instead of the API server's load.
pub const PROGRESS_WRITES_PER_SECOND: u32 = 4;

/// The longest any progress-only change waits, however many control planes are rolling out:
/// 5 minutes, about one Fargate profile operation (a few minutes each, EKS User Guide), so
/// the budget above holds up to 1,200 control planes rolling out at once. With 1 minute, the
/// budget stopped at 240: at 1,000 × 8 (`tests/bench`, growth) the control plane's status
/// writes beyond the floor's one were about 45 % of the API server CPU the operator spent
/// above its floor (7,760 writes at 12.3 ms each, `examples/request_costs.rs`: 95 of 208 s).
pub const MAX_PROGRESS_INTERVAL: Duration = Duration::from_secs(300);

/// How long a control plane's progress-only change may wait after its last status write, while
/// `in_progress` control planes (this one included) have profiles on their way.
pub fn progress_interval(in_progress: usize) -> Duration {
    let shared = Duration::from_secs(1) * u32::try_from(in_progress).unwrap_or(u32::MAX)
        / PROGRESS_WRITES_PER_SECOND;
    shared.clamp(PROGRESS_INTERVAL, MAX_PROGRESS_INTERVAL)
}

/// How long a status that has nothing to report yet may wait for the first report of the
/// workspace it follows, so that a quick report and the first status go out in one write. Past
/// this the status reports that the workspace is being created, report or not.
pub const FIRST_REPORT_GRACE: Duration = Duration::from_secs(10);

/// How much of the first-report grace is left for an object `age` old; None once the awaited
/// report is in (`reported`) or the grace is over.
pub fn first_report_wait(reported: bool, age: Duration) -> Option<Duration> {
    if reported {
        return None;
    }
    FIRST_REPORT_GRACE
        .checked_sub(age)
        .filter(|wait| !wait.is_zero())
}

/// How long a control plane `age` old, whose status was never written, still waits for the
/// EKS cluster workspace's first report (`eks_reported`); None when its status is due now.
pub fn first_status_wait(
    old: &CAPTControlPlaneStatus,
    eks_reported: bool,
    age: Duration,
) -> Option<Duration> {
    let never_written = *old == CAPTControlPlaneStatus::default();
    first_report_wait(!never_written || eks_reported, age)
}

/// Whether a status has profiles on their way (waiting, being created or deleted); failed and
/// ready ones are not.
pub fn rolling_out(status: &CAPTControlPlaneStatus) -> bool {
    status
        .fargate_profiles
        .iter()
        .any(|p| p.phase.is_some_and(FargateProfilePhase::in_progress))
}

/// Whether going from `old` to `new` only moves profiles forward.
pub fn progress_only(old: &CAPTControlPlaneStatus, new: &CAPTControlPlaneStatus) -> bool {
    let advancing = |p: &FargateProfileStatus| {
        matches!(
            p.phase,
            Some(
                FargateProfilePhase::Pending
                    | FargateProfilePhase::Creating
                    | FargateProfilePhase::Ready
            )
        )
    };
    let same_profiles = same_profiles(&old.fargate_profiles, &new.fargate_profiles);
    let all_ready = new.fargate_profiles.iter().all(|p| p.ready);
    let same_conditions = old.conditions.len() == new.conditions.len()
        && old.conditions.iter().zip(&new.conditions).all(|(o, n)| {
            (&o.type_, &o.status, &o.reason, o.observed_generation)
                == (&n.type_, &n.status, &n.reason, n.observed_generation)
        });
    let rest_equal = CAPTControlPlaneStatus {
        conditions: vec![],
        fargate_profiles: vec![],
        fargate_profiles_summary: None,
        ..old.clone()
    } == CAPTControlPlaneStatus {
        conditions: vec![],
        fargate_profiles: vec![],
        fargate_profiles_summary: None,
        ..new.clone()
    };
    same_profiles
        && !all_ready
        && old.fargate_profiles.iter().all(advancing)
        && new.fargate_profiles.iter().all(advancing)
        && same_conditions
        && rest_equal
}

#[cfg(test)]
#[path = "pacing_tests.rs"]
mod tests;
