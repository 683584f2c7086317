//! Crossplane-style conditions, as provider-terraform writes them on Workspaces and as CAPT's
//! WorkspaceTemplateApply status carries them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the resource is usable.
pub const READY: &str = "Ready";
/// Condition type: the last reconcile of the resource succeeded.
pub const SYNCED: &str = "Synced";
/// Condition type (Cluster API contract): the control plane can be used; Cluster API mirrors
/// it into the Cluster's `ControlPlaneAvailable`.
pub const AVAILABLE: &str = "Available";
/// Condition type (Cluster API contract): the operator leaves the object alone (its Cluster's
/// `spec.paused` or the annotation `cluster.x-k8s.io/paused`).
pub const PAUSED: &str = "Paused";
/// Condition type (Cluster API contract): the object is being deleted.
pub const DELETING: &str = "Deleting";

/// A crossplane condition (message optional, unlike metav1.Condition).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct XpCondition {
    /// Condition type, such as Ready or Synced.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    pub last_transition_time: Time,
    /// Generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl XpCondition {
    /// Whether this condition has status True.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [XpCondition], type_: &str) -> Option<&'a XpCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}
