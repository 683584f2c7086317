//! A CAPTCluster's status: built by a pure function from what the reconcile observed, so that
//! the same observation gives the same status (no write at steady state).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::READY;
use crate::api::{CAPTClusterStatus, CAPTClusterWorkspaceStatus, FailureDomain, Initialization};
use crate::status::conditions::{WantedCondition, merge};

/// Condition type: the VPC is ready and its connection Secret holds what control planes read.
pub const VPC_READY: &str = "VPCReady";
/// Condition type: Cluster API's pause is in effect (nothing but status is written).
pub const PAUSED: &str = "Paused";
/// Condition type: the CAPTCluster is being deleted (the message says what it waits for).
pub const DELETING: &str = "Deleting";

/// Reason: a VPC created from the template is ready.
pub const VPC_CREATED: &str = "VPCCreated";
/// Reason: the existing VPC has been described and is ready to use.
pub const EXISTING_VPC_USED: &str = "ExistingVPCUsed";
/// Reason: the VPC workspace is being created or updated.
pub const VPC_CREATING: &str = "VPCCreating";
/// Reason: the VPC workspace failed with an error that needs a person.
pub const VPC_CREATION_FAILED: &str = "VPCCreationFailed";
/// Reason: the VPC workspace is applied but its connection Secret lacks keys.
pub const WAITING_FOR_CONNECTION_SECRET: &str = "WaitingForConnectionSecret";

/// The VPC as the reconcile found it.
#[derive(Clone, Debug, PartialEq)]
pub enum Vpc {
    /// Ready: its ID and the availability zones of its private subnets.
    Ready {
        /// The VPC's ID.
        vpc_id: String,
        /// Availability zones, sorted.
        zones: Vec<String>,
    },
    /// Not ready yet, or failed (reason [`VPC_CREATION_FAILED`]: the error needs a person).
    NotReady {
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
}

/// What a status is built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The VPC's state.
    pub vpc: Vpc,
    /// Whether it is an existing VPC (`spec.existingVpcId`).
    pub existing: bool,
    /// Why the CAPTCluster is paused, if it is.
    pub paused: Option<String>,
    /// What the deletion waits for, while the CAPTCluster is being deleted.
    pub deleting: Option<String>,
    /// The VPC's Workspace.
    pub workspace_name: Option<String>,
    /// When its spec was last written.
    pub last_applied_time: Option<Time>,
}

/// The status of a CAPTCluster whose status is `old`, at `generation`, from `observed`; `now`
/// stamps conditions that change. `ready` and `initialization.provisioned` never go back to
/// false once the VPC was ready (Cluster API reads them as "was provisioned"); `vpcId` and
/// `failureDomains` keep their last known values while the VPC is not ready.
pub fn build_status(
    old: &CAPTClusterStatus,
    generation: Option<i64>,
    observed: &Observed,
    now: &Time,
) -> CAPTClusterStatus {
    let was_provisioned = old.ready
        || old
            .initialization
            .as_ref()
            .is_some_and(|i| i.provisioned == Some(true));
    let (vpc_ready, vpc_id, failure_domains) = match &observed.vpc {
        Vpc::Ready { vpc_id, zones } => {
            let mut zones = zones.clone();
            zones.sort();
            zones.dedup();
            let domains = zones
                .into_iter()
                .map(|name| FailureDomain {
                    name,
                    control_plane: None,
                })
                .collect();
            (true, Some(vpc_id.clone()), domains)
        }
        Vpc::NotReady { .. } => (false, old.vpc_id.clone(), old.failure_domains.clone()),
    };
    let vpc_condition = match &observed.vpc {
        Vpc::Ready { vpc_id, .. } => {
            let (reason, message) = if observed.existing {
                (
                    EXISTING_VPC_USED,
                    format!("using the existing VPC {vpc_id}"),
                )
            } else {
                (VPC_CREATED, format!("VPC {vpc_id} is ready"))
            };
            WantedCondition::new(VPC_READY, true, reason, message)
        }
        Vpc::NotReady { reason, message } => {
            WantedCondition::new(VPC_READY, false, reason, message.clone())
        }
    };
    let ready_condition = match &observed.deleting {
        Some(message) => WantedCondition::new(READY, false, DELETING, message.clone()),
        None => WantedCondition {
            type_: READY,
            ..vpc_condition.clone()
        },
    };
    let paused = match &observed.paused {
        Some(message) => WantedCondition::new(PAUSED, true, PAUSED, message.clone()),
        None => WantedCondition::new(PAUSED, false, "NotPaused", ""),
    };
    let deleting = match &observed.deleting {
        Some(message) => WantedCondition::new(DELETING, true, DELETING, message.clone()),
        None => WantedCondition::new(DELETING, false, "NotDeleting", ""),
    };
    let desired = [vpc_condition.clone(), ready_condition, paused, deleting];
    let provisioned = was_provisioned || vpc_ready;
    let failure_message = match &observed.vpc {
        Vpc::NotReady { reason, message } if reason == VPC_CREATION_FAILED => Some(message.clone()),
        _ => None,
    };
    CAPTClusterStatus {
        ready: provisioned,
        initialization: Some(Initialization {
            provisioned: Some(provisioned),
        }),
        vpc_id,
        vpc_workspace_name: observed
            .workspace_name
            .clone()
            .or(old.vpc_workspace_name.clone()),
        failure_domains,
        conditions: merge(&old.conditions, &desired, generation, now),
        workspace_template_status: Some(CAPTClusterWorkspaceStatus {
            ready: vpc_ready,
            last_failure_message: failure_message,
            workspace_name: observed.workspace_name.clone(),
            last_applied_time: observed.last_applied_time.clone(),
        }),
        observed_generation: generation,
        ..old.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
