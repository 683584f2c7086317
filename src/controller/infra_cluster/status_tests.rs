//! Tests of the status builder (`status.rs`), on plain values.

use super::*;
use crate::status::reason::VPC_CREATING;

fn at(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid time"))
}

fn observed(vpc: Vpc) -> Observed {
    Observed {
        vpc,
        existing: false,
        paused: None,
        deleting: None,
        workspace_name: Some("demo-vpc-1234abcd".into()),
        last_applied_time: None,
    }
}

fn ready_vpc() -> Vpc {
    Vpc::Ready {
        vpc_id: "vpc-0a1b2c3d".into(),
        zones: vec!["ap-northeast-1c".into(), "ap-northeast-1a".into()],
    }
}

fn condition<'a>(
    s: &'a CAPTClusterStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn a_ready_vpc_provisions_the_cluster_and_reports_its_zones() {
    let status = build_status(
        &CAPTClusterStatus::default(),
        Some(2),
        &observed(ready_vpc()),
        &at(10),
    );
    assert!(status.ready);
    assert_eq!(
        status.initialization.as_ref().unwrap().provisioned,
        Some(true)
    );
    assert_eq!(status.vpc_id.as_deref(), Some("vpc-0a1b2c3d"));
    let zones: Vec<&str> = status
        .failure_domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(zones, ["ap-northeast-1a", "ap-northeast-1c"]);
    for (type_, want, reason) in [
        (VPC_READY, "True", VPC_CREATED),
        (READY, "True", VPC_CREATED),
        (PAUSED, "False", "NotPaused"),
        (DELETING, "False", "NotDeleting"),
    ] {
        let c = condition(&status, type_);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (want, reason),
            "{type_}"
        );
        assert_eq!(c.observed_generation, Some(2), "{type_}");
    }
    // Built again from its own result later: nothing moves, so nothing is written.
    assert_eq!(
        build_status(&status, Some(2), &observed(ready_vpc()), &at(99)),
        status
    );
}

#[test]
fn provisioned_stays_true_and_the_last_vpc_id_stays_while_the_vpc_is_not_ready() {
    let ready = build_status(
        &CAPTClusterStatus::default(),
        Some(1),
        &observed(ready_vpc()),
        &at(10),
    );
    let failing = Vpc::NotReady {
        reason: VPC_CREATION_FAILED.into(),
        message: "update failed: quota".into(),
    };
    let status = build_status(&ready, Some(2), &observed(failing), &at(20));
    assert!(status.ready, "ready never goes back");
    assert_eq!(status.vpc_id.as_deref(), Some("vpc-0a1b2c3d"));
    assert_eq!(status.failure_domains.len(), 2);
    let vpc = condition(&status, VPC_READY);
    assert_eq!(
        (
            vpc.status.as_str(),
            vpc.reason.as_str(),
            vpc.message.as_str()
        ),
        ("False", VPC_CREATION_FAILED, "update failed: quota")
    );
    assert_eq!(vpc.last_transition_time, at(20));
    assert_eq!(
        status
            .workspace_template_status
            .unwrap()
            .last_failure_message
            .as_deref(),
        Some("update failed: quota")
    );
}

#[test]
fn paused_deleting_and_an_existing_vpc_are_reported() {
    let mut seen = observed(ready_vpc());
    seen.existing = true;
    seen.paused = Some("Cluster demo is paused (spec.paused)".into());
    seen.deleting = Some("waiting for CAPTControlPlane demo to be deleted".into());
    let status = build_status(&CAPTClusterStatus::default(), None, &seen, &at(5));
    assert_eq!(condition(&status, VPC_READY).reason, EXISTING_VPC_USED);
    let ready = condition(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", DELETING)
    );
    let paused = condition(&status, PAUSED);
    assert_eq!(
        (paused.status.as_str(), paused.message.as_str()),
        ("True", "Cluster demo is paused (spec.paused)")
    );
    let deleting = condition(&status, DELETING);
    assert_eq!(
        (deleting.status.as_str(), deleting.message.as_str()),
        ("True", "waiting for CAPTControlPlane demo to be deleted")
    );
}

#[test]
fn a_vpc_never_ready_is_not_provisioned() {
    let creating = Vpc::NotReady {
        reason: VPC_CREATING.into(),
        message: "waiting for provider-terraform".into(),
    };
    let status = build_status(
        &CAPTClusterStatus::default(),
        Some(1),
        &observed(creating),
        &at(1),
    );
    assert!(!status.ready);
    assert_eq!(
        status.initialization.as_ref().unwrap().provisioned,
        Some(false)
    );
    assert_eq!(status.vpc_id, None);
    assert!(status.failure_domains.is_empty());
    assert_eq!(condition(&status, READY).reason, VPC_CREATING);
}
