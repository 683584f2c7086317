//! Client-side types for the provider-terraform `Workspace` (tf.upbound.io/v1beta1,
//! cluster-scoped). Its CRD belongs to provider-terraform; only the fields this operator reads
//! or writes are typed, everything else is carried through untouched.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditions::XpCondition;
use super::workspace_template::XpSecretReference;

/// Spec of a provider-terraform Workspace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "tf.upbound.io",
    version = "v1beta1",
    kind = "Workspace",
    status = "WorkspaceObservation"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// The Terraform module and its inputs.
    pub for_provider: WorkspaceParameters,
    /// ProviderConfig with the AWS credentials and backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_config_ref: Option<ProviderConfigReference>,
    /// Secret that receives the module's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_connection_secret_to_ref: Option<XpSecretReference>,
    /// Delete or Orphan the external resources on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<String>,
    /// Any other crossplane field (managementPolicies, publishConnectionDetailsTo, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `spec.forProvider` of a Workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceParameters {
    /// Inline (module holds HCL or JSON) or Remote (module is a go-getter URL).
    #[x_kube(validation = Rule::new("self in ['Inline', 'Remote', 'Flux']").message("source must be Inline, Remote or Flux"))]
    pub source: String,
    /// The module: inline HCL, or a URL for Remote.
    pub module: String,
    /// Subdirectory of a Remote module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// HCL or JSON, for Inline modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_format: Option<String>,
    /// String variables, passed as `-var key=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Vec<Var>>,
    /// Typed variables, written to a JSON var file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::preserve_unknown_object")]
    pub varmap: Option<BTreeMap<String, Value>>,
    /// Var files read from Secrets or ConfigMaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub var_files: Option<Vec<VarFile>>,
    /// Any other field (env, initArgs, planArgs, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A string variable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Var {
    /// Variable name.
    pub key: String,
    /// Value as Terraform parses it from the command line.
    pub value: String,
}

/// A var file taken from a Secret or ConfigMap key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VarFile {
    /// SecretKey or ConfigMapKey.
    pub source: String,
    /// HCL (default) or JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyReference>,
    /// Key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyReference>,
}

/// A key in a namespaced Secret or ConfigMap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct KeyReference {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Key.
    pub key: String,
}

/// Reference to a ProviderConfig.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProviderConfigReference {
    /// ProviderConfig name.
    pub name: String,
}

/// Observed state written by provider-terraform.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceObservation {
    /// Outputs and checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_provider: Option<WorkspaceAtProvider>,
    /// Synced and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<XpCondition>,
}

/// `status.atProvider` of a Workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceAtProvider {
    /// Non-sensitive outputs, as JSON values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, Value>>,
    /// Checksum of the module directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}
