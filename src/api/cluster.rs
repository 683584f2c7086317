//! The few fields of a Cluster API `Cluster` (cluster.x-k8s.io) this operator reads: whether it
//! is paused, and which control plane it refers to. The CRD belongs to Cluster API, which
//! serves it as v1beta2 and v1beta1 (v1.14); both carry these fields under the same names.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Serialize};

/// API group of Cluster API's `Cluster`.
pub const CLUSTER_GROUP: &str = "cluster.x-k8s.io";

/// A Cluster API Cluster, reduced to its metadata and the spec fields read here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// The fields of `spec` read here.
    #[serde(default)]
    pub spec: ClusterSpec,
}

/// `spec` of a Cluster, as far as it is read here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// While true, providers leave the Cluster's objects alone (`clusterctl move` sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The control plane: `{apiGroup, kind, name}` in v1beta2, `{apiVersion, kind, name,
    /// namespace}` in v1beta1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_ref: Option<ControlPlaneRef>,
}

/// The parts of `spec.controlPlaneRef` shared by both API versions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ControlPlaneRef {
    /// Kind of the control plane, e.g. `CAPTControlPlane`.
    #[serde(default)]
    pub kind: String,
    /// Name of the control plane, in the Cluster's namespace.
    #[serde(default)]
    pub name: String,
}

impl kube::Resource for Cluster {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Cluster".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        CLUSTER_GROUP.into()
    }
    // The version the operator watches is discovered at run time; this one only names the type.
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1beta2".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "clusters".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<kube::api::DynamicObject> for Cluster {
    /// Keeps the metadata and the spec fields read here; a spec of an unexpected shape reads
    /// as empty (not paused).
    fn from(obj: kube::api::DynamicObject) -> Self {
        let spec = obj
            .data
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        Cluster {
            metadata: obj.metadata,
            spec,
        }
    }
}
