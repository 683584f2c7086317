//! `CAPTCluster` and `CAPTClusterTemplate` (infrastructure.cluster.x-k8s.io/v1beta1): the
//! Cluster API infrastructure cluster of an EKS-on-Fargate cluster, i.e. its VPC.
//!
//! The spec keeps every field of CAPT's Go API (`api/v1beta1/captcluster_types.go`) with its JSON
//! name, so CAPT's manifests apply unchanged. The status carries CAPT's fields plus the
//! Cluster API v1beta2 contract's `initialization.provisioned`; `failureDomains` has the v1beta2
//! shape (a list), which is what Cluster API reads from a CRD labelled for the v1beta2 contract.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::controlplane::WorkspaceTemplateReference;
use super::controlplane_template::TemplateMetadata;

/// Desired state of a cluster's infrastructure: where its VPC comes from.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "CAPTCluster",
    plural = "captclusters",
    singular = "captcluster",
    namespaced,
    doc = "The VPC of an EKS-on-Fargate cluster: the Cluster API infrastructure cluster, created from a WorkspaceTemplate or looked up by ID.",
    status = "CAPTClusterStatus",
    category = "cluster-api",
    category = "capt",
    label("cluster.x-k8s.io/provider", "infrastructure-capt"),
    label("cluster.x-k8s.io/v1beta2", "v1beta1"),
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("clusterctl.cluster.x-k8s.io", ""),
    printcolumn(name = "VPC-ID", type_ = "string", json_path = ".status.vpcId"),
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".status.ready"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='VPCReady')].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "has(self.vpcTemplateRef) != (has(self.existingVpcId) && self.existingVpcId != '')"
).message("set exactly one of vpcTemplateRef (a new VPC from a WorkspaceTemplate) and existingVpcId (an existing VPC)"))]
#[x_kube(validation = Rule::new(
    "!has(self.retainVpcOnDelete) || !self.retainVpcOnDelete || has(self.vpcTemplateRef)"
).message("retainVpcOnDelete only applies to a VPC created from vpcTemplateRef (an existing VPC is never deleted); remove it"))]
#[serde(rename_all = "camelCase")]
pub struct CAPTClusterSpec {
    /// AWS region of the VPC, for example "ap-northeast-1".
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$')")
        .message("region must be an AWS region code such as ap-northeast-1 or us-gov-west-1"))]
    #[schemars(length(max = 32))]
    pub region: String,

    /// The WorkspaceTemplate that creates the VPC (for example `vpc` from
    /// `config/workspacetemplates/vpc.yaml`); the namespace defaults to this object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_template_ref: Option<WorkspaceTemplateReference>,

    /// ID of an existing VPC to use instead; its private subnets are looked up by the
    /// `existing-vpc` WorkspaceTemplate of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^vpc-[0-9a-f]{8}([0-9a-f]{9})?$')")
        .message("existingVpcId must be a VPC ID such as vpc-0a1b2c3d4e5f60718"))]
    #[schemars(length(max = 21))]
    pub existing_vpc_id: Option<String>,

    /// Keep the VPC (its Workspace and Terraform state) when this object is deleted; only with
    /// vpcTemplateRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_vpc_on_delete: Option<bool>,

    /// VPC settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,

    /// Name of the VPC WorkspaceTemplateApply; defaults to `<name>-vpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("workspaceTemplateApplyName must be a lower-case DNS label (letters, digits, '-')"))]
    #[schemars(length(max = 63))]
    pub workspace_template_apply_name: Option<String>,
}

/// VPC settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VpcConfig {
    /// Name of the VPC (its Name tag); defaults to `<cluster>-vpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub name: Option<String>,
}

/// Observed state of a CAPTCluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTClusterStatus {
    /// The VPC is ready (Cluster API v1beta1 contract); never goes back to false once the VPC
    /// was provisioned, like `initialization.provisioned`.
    #[serde(default)]
    pub ready: bool,
    /// Cluster API v1beta2 contract: `provisioned` becomes true once the VPC is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// ID of the VPC, created or existing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The WorkspaceTemplateApply of the VPC (or of the existing VPC's lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_workspace_name: Option<String>,
    /// The availability zones of the VPC's private subnets (Cluster API v1beta2 shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub failure_domains: Vec<FailureDomain>,
    /// Conditions: Ready, VPCReady, Paused, Deleting (each with observedGeneration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The VPC apply's state, as CAPT reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_template_status: Option<CAPTClusterWorkspaceStatus>,
    /// Terminal failures only (Cluster API v1beta1); never set by this operator, whose
    /// failures are retried and reported in the conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// See `failureReason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// The generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Cluster API v1beta2 initialization of an infrastructure cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Initialization {
    /// The infrastructure is ready for the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,
}

/// A failure domain: an availability zone of the VPC's private subnets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailureDomain {
    /// Availability zone name, for example "ap-northeast-1a".
    pub name: String,
    /// Whether control plane machines may be placed there (EKS manages its own: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<bool>,
}

/// The VPC apply's state, as CAPT's `workspaceTemplateStatus`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTClusterWorkspaceStatus {
    /// The VPC workspace is ready.
    #[serde(default)]
    pub ready: bool,
    /// The provider's last error, while there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_message: Option<String>,
    /// The VPC's Workspace (cluster-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// When the Workspace spec was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<Time>,
}

/// A CAPTCluster for ClusterClass: `spec.template.spec` is a CAPTCluster spec.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "CAPTClusterTemplate",
    plural = "captclustertemplates",
    singular = "captclustertemplate",
    shortname = "captct",
    namespaced,
    doc = "A CAPTCluster template for Cluster API ClusterClass.",
    category = "cluster-api",
    category = "capt",
    label("cluster.x-k8s.io/provider", "infrastructure-capt"),
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
pub struct CAPTClusterTemplateSpec {
    /// The CAPTCluster to create.
    pub template: CAPTClusterTemplateResource,
}

/// What a CAPTClusterTemplate creates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTClusterTemplateResource {
    /// Labels and annotations of the created CAPTCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Spec of the created CAPTCluster, every field optional so that ClusterClass patches can
    /// fill them (as in CAPT); the CAPTCluster created from it is checked by its own rules.
    #[serde(default)]
    pub spec: CAPTClusterTemplateResourceSpec,
}

/// A CAPTCluster spec with every field optional.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTClusterTemplateResourceSpec {
    /// See `CAPTCluster.spec.region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub region: Option<String>,
    /// See `CAPTCluster.spec.vpcTemplateRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_template_ref: Option<TemplateWorkspaceTemplateReference>,
    /// See `CAPTCluster.spec.existingVpcId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 21))]
    pub existing_vpc_id: Option<String>,
    /// See `CAPTCluster.spec.retainVpcOnDelete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_vpc_on_delete: Option<bool>,
    /// See `CAPTCluster.spec.vpcConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<VpcConfig>,
    /// See `CAPTCluster.spec.workspaceTemplateApplyName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub workspace_template_apply_name: Option<String>,
}

/// A WorkspaceTemplate reference whose fields may be left for ClusterClass patches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateWorkspaceTemplateReference {
    /// Name of the WorkspaceTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the WorkspaceTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
