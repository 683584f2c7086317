//! Client type for the Cluster API `Cluster` (cluster.x-k8s.io/v1beta2), read only for what
//! this operator needs: whether it is paused. Cluster API installs the CRD; this project does
//! not ship it. The field is the same in v1beta1 and v1beta2.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The part of a Cluster's spec this operator reads.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Cluster",
    plural = "clusters",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Cluster API's pause: no controller may change the cluster's objects while it is true
    /// (`clusterctl move` sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}
