//! `WorkspaceTemplate` and `WorkspaceTemplateApply` (infrastructure.cluster.x-k8s.io/v1beta1),
//! compatible with CAPT's: a template holds a provider-terraform Workspace spec, an apply
//! instantiates it with variables.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::compact::CompactValue;
use super::conditions::XpCondition;
use super::workspace::WorkspaceSpec;

/// A reusable provider-terraform Workspace definition.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "WorkspaceTemplate",
    doc = "A reusable provider-terraform Workspace definition with ${variable} placeholders.",
    plural = "workspacetemplates",
    namespaced,
    status = "TemplateStatus",
    category = "capt",
    category = "terraform",
    label("cluster.x-k8s.io/provider", "infrastructure-capt"),
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    // clusterctl move discovers kinds by this label, and moves every object of a kind with
    // the move label: templates are shared by the Clusters of a namespace and owned by none.
    label("clusterctl.cluster.x-k8s.io", ""),
    label("clusterctl.cluster.x-k8s.io/move", ""),
    printcolumn(
        name = "Workspace",
        type_ = "string",
        json_path = ".status.workspaceName"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateSpec {
    /// The Workspace to create; strings may contain `${variable}` placeholders.
    pub template: WorkspaceTemplateDefinition,
    /// Kept for compatibility with CAPT; the Workspace's own writeConnectionSecretToRef is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<XpSecretReference>,
}

/// The Workspace a template creates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateDefinition {
    /// Description of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<WorkspaceTemplateMetadata>,
    /// Spec of the provider-terraform Workspace.
    pub spec: WorkspaceSpec,
}

/// Descriptive metadata of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateMetadata {
    /// What the template creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Template version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Observed state of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// Kept for compatibility with CAPT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<XpCondition>,
}

/// One instance of a WorkspaceTemplate: becomes a provider-terraform Workspace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "WorkspaceTemplateApply",
    doc = "An instance of a WorkspaceTemplate; the controller keeps one provider-terraform Workspace for it.",
    plural = "workspacetemplateapplies",
    singular = "workspacetemplateapply",
    shortname = "wtapply",
    namespaced,
    status = "WorkspaceTemplateApplyStatus",
    category = "capt",
    category = "terraform",
    label("cluster.x-k8s.io/provider", "infrastructure-capt"),
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    // clusterctl move discovers kinds by this label; applies move with the CAPTControlPlane or
    // CAPTCluster that owns them.
    label("clusterctl.cluster.x-k8s.io", ""),
    printcolumn(
        name = "Workspace",
        type_ = "string",
        json_path = ".status.workspaceName"
    ),
    printcolumn(name = "Applied", type_ = "boolean", json_path = ".status.applied"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateApplySpec {
    /// The template to instantiate; the namespace defaults to this object's.
    pub template_ref: TemplateReference,
    /// Overrides the connection secret of the template's Workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<XpSecretReference>,
    /// String values for `${key}` placeholders in the template (`${WORKSPACE_NAME}` is built in).
    /// Placeholders are replaced inside string values only, so values cannot change the
    /// structure of the Workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, String>>,
    /// Typed Terraform input variables (strings, numbers, lists, maps), merged over the
    /// template's `forProvider.varmap`.
    // Each value is kept as compact JSON text: cached applies are many (`api::compact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::preserve_unknown_object")]
    pub terraform_variables: Option<BTreeMap<String, CompactValue>>,
    /// Secrets that must exist, with the listed keys, before the Workspace is created or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_secrets: Option<Vec<SecretRequirement>>,
    /// Workspaces that must be Ready before this one is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_workspaces: Option<Vec<WorkspaceReference>>,
    /// Keep the Workspace (and what Terraform created) when this object is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_workspace_on_delete: Option<bool>,
}

impl WorkspaceTemplateApplySpec {
    /// `terraformVariables` decoded (empty when unset): a `Value` tree per variable, for
    /// readers that walk them; the spec keeps them compact.
    pub fn terraform_values(&self) -> BTreeMap<String, serde_json::Value> {
        self.terraform_variables
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect()
    }
}

impl WorkspaceTemplateApply {
    /// The namespace of the WorkspaceTemplate it uses: its own unless the reference says.
    pub fn template_namespace(&self) -> String {
        use kube::ResourceExt;
        self.spec
            .template_ref
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace().unwrap_or_default())
    }
}

/// Reference to a WorkspaceTemplate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateReference {
    /// Template name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Template namespace; defaults to the WorkspaceTemplateApply's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A secret reference with both parts required, as crossplane defines it.
#[derive(
    KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct XpSecretReference {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Secret namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
}

/// A Secret that must exist before the Workspace is applied.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRequirement {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Secret namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// Keys the Secret must contain (checked for presence, never read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
}

/// Reference to a provider-terraform Workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceReference {
    /// Workspace name (Workspaces are cluster-scoped).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Ignored: Workspaces are cluster-scoped. Kept for compatibility with CAPT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Observed state of a WorkspaceTemplateApply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateApplyStatus {
    /// Name of the Workspace created for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_name: Option<String>,
    /// The Workspace has been created.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applied: bool,
    /// When the Workspace spec was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Hash of the Workspace spec last written; a change means the Workspace is updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_hash: Option<String>,
    /// Synced and Ready, mirrored from the Workspace, or Ready=False with the reason it waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<XpCondition>,
    /// The Workspace's non-sensitive Terraform outputs (`status.atProvider.outputs`), strings
    /// as they are and other values as JSON text; the control plane reads `cluster_version`
    /// from its EKS apply here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, String>>,
    /// The generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
