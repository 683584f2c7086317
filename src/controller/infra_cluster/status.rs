//! A CAPTCluster's status: built by a pure function from what the reconcile observed, so that
//! the same observation gives the same status (no write at steady state).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::READY;
use crate::api::{CAPTClusterStatus, CAPTClusterWorkspaceStatus, FailureDomain, Initialization};
use crate::status::conditions::{WantedCondition, merge};
use crate::status::reason::{
    self, EXISTING_VPC_USED, NOT_DELETING, NOT_PAUSED, VPC_CREATED, VPC_CREATION_FAILED,
};

/// Condition type: the VPC is ready and its connection Secret holds what control planes read.
pub const VPC_READY: &str = "VPCReady";
/// Condition type: Cluster API's pause is in effect (nothing but status is written).
pub const PAUSED: &str = "Paused";
/// Condition type: the CAPTCluster is being deleted (the message says what it waits for).
pub const DELETING: &str = "Deleting";

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

/// The conditions `observed` calls for: `VPCReady`, `Ready` (the VPC's, unless the CAPTCluster
/// is being deleted), `Paused` and `Deleting`.
fn wanted_conditions(observed: &Observed) -> [WantedCondition; 4] {
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
        Some(message) => WantedCondition::new(READY, false, reason::DELETING, message.clone()),
        None => WantedCondition {
            type_: READY,
            ..vpc_condition.clone()
        },
    };
    let paused = match &observed.paused {
        Some(message) => WantedCondition::new(PAUSED, true, reason::PAUSED, message.clone()),
        None => WantedCondition::new(PAUSED, false, NOT_PAUSED, ""),
    };
    let deleting = match &observed.deleting {
        Some(message) => WantedCondition::new(DELETING, true, reason::DELETING, message.clone()),
        None => WantedCondition::new(DELETING, false, NOT_DELETING, ""),
    };
    [vpc_condition, ready_condition, paused, deleting]
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
    let desired = wanted_conditions(observed);
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
#[path = "status_tests.rs"]
mod tests;
