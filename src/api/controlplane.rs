//! `CAPTControlPlane` (controlplane.cluster.x-k8s.io/v1beta1): the EKS control plane of a
//! Cluster API cluster, extended with Fargate profiles.
//!
//! Every field of CAPT's Go API keeps its JSON name and meaning, so existing manifests apply
//! unchanged. The Fargate fields are additions, all optional.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names of the Fargate profiles that live in the EKS cluster workspace itself.
pub const DEFAULT_PROFILE_KUBE_SYSTEM: &str = "kube-system";
/// See [`DEFAULT_PROFILE_KUBE_SYSTEM`].
pub const DEFAULT_PROFILE_KARPENTER: &str = "karpenter";
/// AWS's default quota of Fargate profiles per cluster.
pub const MAX_PROFILES_PER_CLUSTER: usize = 10;
/// Tags AWS allows on one resource ("Tag naming limits and requirements", AWS Tagging
/// Resources user guide; EKS and IAM both apply it).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
/// Tags the EKS module adds to the cluster besides `additionalTags`: terraform-aws-modules/eks
/// tags `aws_eks_cluster` with `terraform-aws-modules = "eks"`. The admission rule on
/// `additionalTags` allows [`MAX_TAGS_PER_RESOURCE`] minus this.
pub const EKS_MODULE_TAGS: usize = 1;
/// Tags the profile module (`config/workspacetemplates/fargate-profile.yaml`) adds to a
/// profile's pod execution role besides the profile's tags: `eks-cluster-name` and
/// `eks-fargate-profile-name`. The admission rule on the cluster's and each profile's tags
/// together allows [`MAX_TAGS_PER_RESOURCE`] minus this.
pub const PROFILE_MODULE_TAGS: usize = 2;

/// Desired state of an EKS control plane managed through Terraform workspaces.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "controlplane.cluster.x-k8s.io",
    version = "v1beta1",
    kind = "CAPTControlPlane",
    plural = "captcontrolplanes",
    singular = "captcontrolplane",
    namespaced,
    doc = "An EKS control plane with its Fargate profiles, managed through Terraform workspaces.",
    status = "CAPTControlPlaneStatus",
    category = "cluster-api",
    category = "capt",
    label("cluster.x-k8s.io/provider", "control-plane-capt"),
    label("cluster.x-k8s.io/v1beta2", "v1beta1"),
    label("cluster.x-k8s.io/v1beta1", "v1beta1"),
    label("clusterctl.cluster.x-k8s.io", ""),
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".status.ready"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Fargate",
        type_ = "string",
        json_path = ".status.fargateProfilesSummary",
        description = "Fargate profiles ready/total"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.controlPlaneEndpoint.host",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // The name is the EKS cluster name (the `cluster_name` Terraform input). Kubernetes already
    // allows only lower-case letters, digits, '-' and '.', starting with a letter or digit.
    // Checked at creation only (a name never changes): a control plane created before the rule
    // can still be updated, and deleted (its finalizer removed).
    validation = Rule::new("oldSelf.hasValue() || (size(self.metadata.name) <= 100 && !self.metadata.name.contains('.'))")
        .optional_old_self(true)
        .message("the name becomes the EKS cluster name, which AWS limits to 1-100 characters: letters, digits, '-' and '_', starting with a letter or digit (CreateCluster API); choose a name without '.' and of at most 100 characters")
)]
#[x_kube(validation = Rule::new(
    "(has(self.defaultFargateProfiles) ? size(self.defaultFargateProfiles) : 2) + (has(self.additionalFargateProfiles) ? size(self.additionalFargateProfiles) : 0) <= 10"
).message("a cluster can have at most 10 Fargate profiles (AWS quota), counting the default profiles; remove profiles or set defaultFargateProfiles to fewer entries"))]
#[x_kube(validation = Rule::new(
    "!has(self.additionalTags) || size(self.additionalTags) <= 49"
).message("additionalTags: at most 49 tags, since the EKS module adds 1 of its own (terraform-aws-modules) and AWS allows 50 per resource; remove tags"))]
#[x_kube(validation = Rule::new(
    "!has(self.additionalFargateProfiles) || self.additionalFargateProfiles.all(p, (has(p.tags) ? size(p.tags) : 0) + (has(self.additionalTags) ? size(self.additionalTags.filter(k, !has(p.tags) || !(k in p.tags))) : 0) <= 48)"
).message("a Fargate profile gets the cluster's additionalTags plus its own tags (a key in both counts once) plus 2 the profile module adds to its pod execution role, and AWS allows 50 per resource: keep additionalTags and each profile's tags together at 48 distinct keys or fewer"))]
#[serde(rename_all = "camelCase")]
pub struct CAPTControlPlaneSpec {
    /// Kubernetes version of the EKS cluster, for example "1.31".
    #[schemars(regex(pattern = r"^v?[0-9]+\.[0-9]+(\.[0-9]+)?$"))]
    pub version: String,

    /// The WorkspaceTemplate that creates the EKS cluster.
    pub workspace_template_ref: WorkspaceTemplateReference,

    /// Region and endpoint settings of the EKS control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_config: Option<ControlPlaneConfig>,

    /// Tags added to the AWS resources; each becomes the variable `tags_<key>` of the EKS
    /// workspace and is merged into every Fargate profile's tags (AWS limits apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::aws_tags")]
    pub additional_tags: Option<BTreeMap<String, String>>,

    /// Endpoint of the API server; written by the controller once the cluster is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,

    /// Name of the EKS cluster WorkspaceTemplateApply; defaults to `<name>-eks-controlplane-apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_template_apply_name: Option<String>,

    /// Fargate profiles created together with the EKS cluster, inside its workspace.
    /// Both are created when the field is omitted; an empty list creates none.
    #[serde(default = "default_fargate_profiles")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 2))]
    pub default_fargate_profiles: Vec<DefaultFargateProfile>,

    /// Further Fargate profiles, each created by its own WorkspaceTemplateApply once the EKS
    /// cluster and its connection secrets exist. They are created one at a time, in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 10))]
    pub additional_fargate_profiles: Option<Vec<FargateProfile>>,

    /// Secret written by the VPC workspace (needs the key `vpc_config`); defaults to
    /// `<name>-vpc-connection` in this namespace, as CAPT's cluster template names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_connection_secret_ref: Option<SecretReference>,
}

/// A Fargate profile the EKS workspace can create by itself.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum DefaultFargateProfile {
    /// Runs CoreDNS and other kube-system pods on Fargate (needed by Fargate-only clusters).
    #[serde(rename = "kube-system")]
    KubeSystem,
    /// Runs the Karpenter controller on Fargate; drop it for clusters without Karpenter.
    #[serde(rename = "karpenter")]
    Karpenter,
}

impl DefaultFargateProfile {
    /// Every default profile, in the order they are rendered.
    pub const ALL: [DefaultFargateProfile; 2] = [
        DefaultFargateProfile::KubeSystem,
        DefaultFargateProfile::Karpenter,
    ];

    /// The profile name in AWS, which is also the namespace it selects.
    pub fn name(self) -> &'static str {
        match self {
            DefaultFargateProfile::KubeSystem => DEFAULT_PROFILE_KUBE_SYSTEM,
            DefaultFargateProfile::Karpenter => DEFAULT_PROFILE_KARPENTER,
        }
    }
}

fn default_fargate_profiles() -> Vec<DefaultFargateProfile> {
    DefaultFargateProfile::ALL.to_vec()
}

/// One additional Fargate profile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FargateProfile {
    /// Profile name in AWS: letters, digits, '-' and '_', at most 100 characters, not starting
    /// with "eks-" and not the name of a default profile.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9A-Za-z][0-9A-Za-z_-]*$')")
        .message("profile name may contain only letters, digits, '-' and '_', and must start with a letter or digit"))]
    #[x_kube(validation = Rule::new("!self.startsWith('eks-')")
        .message("profile names starting with 'eks-' are reserved by AWS"))]
    #[x_kube(validation = Rule::new("self != 'kube-system' && self != 'karpenter'")
        .message("'kube-system' and 'karpenter' are default profile names; choose another name"))]
    pub name: String,

    /// Pods matching any selector run on this profile (1 to 5 selectors).
    #[schemars(length(min = 1, max = 5))]
    pub selectors: Vec<FargateProfileSelector>,

    /// WorkspaceTemplate that creates the profile; the namespace defaults to this object's.
    pub workspace_template_ref: WorkspaceTemplateReference,

    /// Private subnets for the profile's pods; defaults to the VPC's private subnets.
    #[serde(default, rename = "subnetIDs", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::subnet_ids")]
    pub subnet_ids: Option<Vec<String>>,

    /// Tags for the profile and its pod execution role (the only settings AWS can change in
    /// place): at most 50, keys up to 127 characters and not starting with "aws:".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::aws_tags")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Which pods a Fargate profile runs: a namespace plus labels that must all match.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FargateProfileSelector {
    /// Namespace to match; '*' and '?' wildcards are allowed.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$')")
        .message("namespace must be a Kubernetes namespace name, optionally with '*' or '?' wildcards"))]
    pub namespace: String,

    /// Labels a pod must all carry (at most 5); '*' and '?' wildcards are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::selector_labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Reference to a WorkspaceTemplate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateReference {
    /// Name of the WorkspaceTemplate.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the WorkspaceTemplate; defaults to the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Reference to a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Namespace of the Secret; defaults to the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// EKS control plane settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneConfig {
    /// AWS region, for example "ap-northeast-1".
    #[schemars(regex(pattern = r"^[a-z]{2}-[a-z]+-[0-9]$"))]
    pub region: String,
    /// Access to the API server endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_access: Option<EndpointAccess>,
    /// EKS add-ons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addons: Option<Vec<Addon>>,
    /// How long to wait for the control plane and VPC, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutConfig>,
}

/// Public and private access to the API server endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointAccess {
    /// Whether the endpoint is reachable from the internet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Whether the endpoint is reachable from inside the VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    /// CIDR blocks allowed to reach the public endpoint.
    #[serde(
        default,
        rename = "publicCIDRs",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_cidrs: Option<Vec<String>>,
}

/// An EKS add-on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Addon {
    /// Add-on name, for example "coredns".
    pub name: String,
    /// Add-on version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Add-on configuration values (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_values: Option<String>,
}

/// Timeouts in minutes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfig {
    /// Minutes to wait for the control plane (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub control_plane_timeout: Option<i32>,
    /// Minutes to wait for the VPC (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub vpc_ready_timeout: Option<i32>,
}

/// Host and port of an API server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// Host name or IP, without scheme.
    pub host: String,
    /// Port.
    pub port: i32,
}

/// Observed state of the control plane and its Fargate profiles.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CAPTControlPlaneStatus {
    /// The EKS control plane is ready.
    #[serde(default)]
    pub ready: bool,
    /// The EKS control plane has been created (Cluster API's v1beta1 contract); never goes
    /// back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialized: Option<bool>,
    /// Cluster API's v1beta2 contract: `controlPlaneInitialized` once the EKS control plane
    /// has been created; never goes back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<ControlPlaneInitialization>,
    /// Always true: EKS runs the control plane, there are no control plane Machines (Cluster
    /// API's contract for managed control planes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_managed_control_plane: Option<bool>,
    /// The Kubernetes version the EKS cluster runs, as its workspace reports it (the
    /// `cluster_version` output) once it is ready: `spec.version` once EKS runs its
    /// major.minor (EKS picks the patch), else the major.minor EKS runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The same version as Cluster API's v1beta2 contract lists it (a single entry; no
    /// replicas, EKS runs the control plane).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<StatusVersion>>,
    /// The connection secrets exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_ready: Option<bool>,
    /// State of the EKS cluster WorkspaceTemplateApply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_template_status: Option<WorkspaceTemplateStatus>,
    /// State of the EKS cluster Workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_status: Option<WorkspaceStatus>,
    /// Reason of a failure that needs attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Human-readable description of that failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// Creating, Ready or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ControlPlanePhase>,
    /// Standard conditions, including FargateProfileReady, FargateProfileCreating and FargateProfileFailed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// One entry per Fargate profile (defaults first, then additional ones in spec order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub fargate_profiles: Vec<FargateProfileStatus>,
    /// "ready/total" Fargate profiles, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fargate_profiles_summary: Option<String>,
    /// The generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// `status.initialization` of Cluster API's v1beta2 control-plane contract.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneInitialization {
    /// The EKS control plane has been created and can be reached; never goes back to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_initialized: Option<bool>,
}

/// One Kubernetes version the control plane runs (`status.versions[]` of the v1beta2
/// contract).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusVersion {
    /// The Kubernetes version.
    #[schemars(length(min = 1, max = 256))]
    pub version: String,
    /// Replicas at this version; unset, since EKS runs the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// Phase of the control plane.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlPlanePhase {
    /// Being created or waiting for a dependency.
    Creating,
    /// Ready for use.
    Ready,
    /// Failed; see the conditions and failureMessage.
    Failed,
}

/// State of the EKS cluster WorkspaceTemplateApply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTemplateStatus {
    /// The workspace is applied and ready.
    #[serde(default)]
    pub ready: bool,
    /// Reason of the workspace's Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the workspace was last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Non-sensitive outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<BTreeMap<String, String>>,
    /// Revision that last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_revision: Option<String>,
    /// Message of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_message: Option<String>,
}

/// State of the EKS cluster Workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// The Workspace is ready.
    #[serde(default)]
    pub ready: bool,
    /// Reason of the Workspace's Ready condition, such as Creating or Available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Observed state of one Fargate profile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FargateProfileStatus {
    /// Profile name.
    pub name: String,
    /// The profile exists in AWS and is active.
    #[serde(default)]
    pub ready: bool,
    /// WorkspaceTemplateApply that creates the profile (the EKS one for default profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_template_apply_name: Option<String>,
    /// Pending, Creating, Ready, Deleting or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<FargateProfilePhase>,
    /// Machine-readable reason for the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// What went wrong or what the profile is waiting for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}

/// Lifecycle phase of one Fargate profile.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FargateProfilePhase {
    /// Waiting for the cluster, its secrets or an earlier profile.
    Pending,
    /// Being created (or replaced).
    Creating,
    /// Active.
    Ready,
    /// Being deleted.
    Deleting,
    /// Creation failed; see failureReason and failureMessage.
    Failed,
}

impl FargateProfilePhase {
    /// Whether a profile in this phase is on its way: waiting, being created or being deleted
    /// (Ready and Failed are where it rests).
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            FargateProfilePhase::Pending
                | FargateProfilePhase::Creating
                | FargateProfilePhase::Deleting
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn waiting_creating_and_deleting_profiles_are_in_progress() {
        use FargateProfilePhase::*;
        let moving: Vec<_> = [Pending, Creating, Ready, Deleting, Failed]
            .into_iter()
            .filter(|p| p.in_progress())
            .collect();
        assert_eq!(moving, [Pending, Creating, Deleting]);
    }

    /// The CAPTControlPlane CRD as JSON text.
    fn crd() -> String {
        serde_json::to_string(&CAPTControlPlane::crd()).unwrap()
    }

    #[test]
    fn tag_rules_leave_room_for_the_tags_the_modules_add() {
        let crd = crd();
        let cluster = MAX_TAGS_PER_RESOURCE - EKS_MODULE_TAGS;
        assert!(
            crd.contains(&format!("size(self.additionalTags) <= {cluster}\"")),
            "additionalTags rule must allow {cluster}"
        );
        let profile = MAX_TAGS_PER_RESOURCE - PROFILE_MODULE_TAGS;
        assert!(
            crd.contains(&format!(": 0) <= {profile})")),
            "profile tag rule must allow {profile}"
        );
    }

    /// Keys of every `merge(var.tags, { ... })` in a module: the tags it adds.
    fn merged_tag_keys(module: &str) -> Vec<Vec<String>> {
        module
            .split("merge(var.tags, {")
            .skip(1)
            .map(|rest| {
                let block = &rest[..rest.find('}').expect("merge block closes")];
                block
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, _)| k.trim().trim_matches('"').to_string())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_module_tag_counts_match_the_shipped_modules() {
        let profile = include_str!("../../config/workspacetemplates/fargate-profile.yaml");
        let added = merged_tag_keys(profile);
        assert_eq!(
            added.iter().map(Vec::len).max().unwrap_or(0),
            PROFILE_MODULE_TAGS,
            "{added:?}"
        );
        assert!(
            !profile.contains("default_tags"),
            "provider default_tags would add more"
        );
        let eks = include_str!("../../config/workspacetemplates/eks-controlplane.yaml");
        assert!(eks.contains("terraform-aws-modules/eks/aws"));
        assert!(merged_tag_keys(eks).is_empty() && !eks.contains("default_tags"));
    }

    #[test]
    fn the_name_rule_is_at_the_root() {
        let crd = CAPTControlPlane::crd();
        let schema = serde_json::to_value(
            &crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema,
        )
        .unwrap();
        let rules = schema["x-kubernetes-validations"].to_string();
        assert!(rules.contains("size(self.metadata.name) <= 100"), "{rules}");
        assert!(rules.contains("\"optionalOldSelf\":true"), "{rules}");
        assert!(rules.contains("CreateCluster"), "{rules}");
    }
}
