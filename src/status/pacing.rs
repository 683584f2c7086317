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

/// The longest any progress-only change waits, however many control planes are rolling out.
pub const MAX_PROGRESS_INTERVAL: Duration = Duration::from_secs(60);

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
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn profile(name: &str, phase: FargateProfilePhase) -> FargateProfileStatus {
        FargateProfileStatus {
            name: name.into(),
            ready: phase == FargateProfilePhase::Ready,
            workspace_template_apply_name: Some(format!("apply-{name}")),
            phase: Some(phase),
            failure_reason: None,
            failure_message: None,
        }
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: Some(1),
        }
    }

    fn status(phases: &[FargateProfilePhase], creating_message: &str) -> CAPTControlPlaneStatus {
        use FargateProfilePhase::Ready;
        CAPTControlPlaneStatus {
            ready: true,
            fargate_profiles: phases
                .iter()
                .enumerate()
                .map(|(i, p)| profile(&format!("p{i}"), *p))
                .collect(),
            fargate_profiles_summary: Some(format!(
                "{}/{}",
                phases.iter().filter(|p| **p == Ready).count(),
                phases.len()
            )),
            conditions: vec![condition(
                "FargateProfileCreating",
                "True",
                "Creating",
                creating_message,
            )],
            observed_generation: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn the_interval_grows_with_the_rollout() {
        assert_eq!(progress_interval(0), PROGRESS_INTERVAL);
        assert_eq!(progress_interval(1), PROGRESS_INTERVAL);
        assert_eq!(progress_interval(80), PROGRESS_INTERVAL);
        assert_eq!(progress_interval(200), Duration::from_secs(50));
        assert_eq!(progress_interval(10_000), MAX_PROGRESS_INTERVAL);
    }

    #[test]
    fn the_grace_ends_with_the_report_or_after_ten_seconds() {
        let second = Duration::from_secs(1);
        assert_eq!(first_report_wait(false, 3 * second), Some(7 * second));
        assert_eq!(first_report_wait(true, 3 * second), None);
        assert_eq!(first_report_wait(false, 10 * second), None);
        assert_eq!(first_report_wait(false, 11 * second), None);
    }

    #[test]
    fn a_new_control_plane_waits_briefly_for_its_cluster_report() {
        let empty = CAPTControlPlaneStatus::default();
        let second = Duration::from_secs(1);
        assert_eq!(first_status_wait(&empty, false, second), Some(9 * second));
        assert_eq!(first_status_wait(&empty, true, second), None, "reported");
        assert_eq!(
            first_status_wait(&empty, false, 10 * second),
            None,
            "grace over"
        );
        let written = status(&[FargateProfilePhase::Pending], "");
        assert_eq!(
            first_status_wait(&written, false, second),
            None,
            "not the first"
        );
    }

    #[test]
    fn rolling_out_means_profiles_on_their_way() {
        use FargateProfilePhase::*;
        assert!(rolling_out(&status(&[Ready, Creating], "")));
        assert!(rolling_out(&status(&[Ready, Pending], "")));
        assert!(rolling_out(&status(&[Ready, Deleting], "")));
        assert!(!rolling_out(&status(&[Ready, Ready], "")));
        assert!(
            !rolling_out(&status(&[Ready, Failed], "")),
            "a failure waits for the user"
        );
    }

    #[test]
    fn a_profile_step_is_progress() {
        use FargateProfilePhase::*;
        let old = status(&[Ready, Creating, Pending], "creating p1");
        let new = status(&[Ready, Ready, Creating], "creating p2");
        assert!(progress_only(&old, &new));
    }

    #[test]
    fn completion_failure_deletion_and_turning_conditions_are_not() {
        use FargateProfilePhase::*;
        let old = status(&[Ready, Creating], "creating p1");
        assert!(
            !progress_only(&old, &status(&[Ready, Ready], "")),
            "the last profile ready"
        );
        assert!(
            !progress_only(&old, &status(&[Ready, Failed], "")),
            "a failure"
        );
        assert!(
            !progress_only(&old, &status(&[Ready, Deleting], "")),
            "a deletion"
        );
        let mut turned = status(&[Ready, Creating, Pending], "x");
        turned.conditions[0].status = "False".into();
        assert!(
            !progress_only(&status(&[Ready, Creating, Pending], "x"), &turned),
            "a condition turned"
        );
        let mut regenerated = status(&[Ready, Creating, Pending], "x");
        regenerated.observed_generation = Some(2);
        assert!(
            !progress_only(&status(&[Ready, Creating, Pending], "x"), &regenerated),
            "a new generation"
        );
        let mut unready = status(&[Ready, Creating, Pending], "x");
        unready.ready = false;
        assert!(
            !progress_only(&status(&[Ready, Creating, Pending], "x"), &unready),
            "the cluster"
        );
    }

    #[test]
    fn a_profile_added_or_removed_is_not() {
        use FargateProfilePhase::*;
        assert!(!progress_only(
            &status(&[Ready, Creating], ""),
            &status(&[Ready, Creating, Pending], "")
        ));
    }
}
