//! `CAPTControlPlaneTemplate` (controlplane.cluster.x-k8s.io/v1beta1): what a ClusterClass
//! names as its control plane; Cluster API's topology controller creates a CAPTControlPlane
//! from `spec.template`. CAPT-compatible: `spec.template.spec` is a CAPTControlPlane spec,
//! the Fargate fields and their admission rules included.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::controlplane::CAPTControlPlaneSpec;

/// A template for CAPTControlPlanes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "CAPTControlPlaneTemplate",
    plural = "captcontrolplanetemplates",
    singular = "captcontrolplanetemplate",
    namespaced,
    doc = "A template for CAPTControlPlanes, for Cluster API's ClusterClass.",
    category = "cluster-api",
    category = "capt",
    label("cluster.x-k8s.io/provider", "control-plane-capt"),
    label("cluster.x-k8s.io/v1beta2", "v1beta1"),
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("clusterctl.cluster.x-k8s.io", ""),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CAPTControlPlaneTemplateSpec {
    /// What each CAPTControlPlane made from this template gets.
    pub template: CAPTControlPlaneTemplateResource,
}

/// The metadata and spec of the CAPTControlPlanes made from a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTControlPlaneTemplateResource {
    /// Labels and annotations of the CAPTControlPlane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// The CAPTControlPlane's spec, with every field and rule of CAPTControlPlane.
    pub spec: CAPTControlPlaneSpec,
}

/// Labels and annotations a template gives the objects made from it (CAPTControlPlaneTemplate
/// and CAPTClusterTemplate).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}
