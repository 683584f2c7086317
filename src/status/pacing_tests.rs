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
    // 1,000 rolling out at 4 writes a second: every 250 s, within the 5-minute limit.
    assert_eq!(progress_interval(1_000), Duration::from_secs(250));
    // The budget holds up to 1,200 at once; beyond, the 5-minute limit.
    assert_eq!(progress_interval(1_200), Duration::from_secs(300));
    assert_eq!(progress_interval(1_201), MAX_PROGRESS_INTERVAL);
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
