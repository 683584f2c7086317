//! The EKS cluster WorkspaceTemplateApply, with the default Fargate profiles as a typed
//! `fargate_profiles` variable in the shape terraform-aws-modules/eks expects.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use serde_json::{Value, json};

use super::{child_labels, controller_owner_ref, namespace, secret_requirement};
use crate::api::compact::compact_values;
use crate::api::{
    CAPTControlPlane, DefaultFargateProfile, TemplateReference, WorkspaceTemplateApply,
    WorkspaceTemplateApplySpec, XpSecretReference,
};
use crate::names;
use kube::ResourceExt;

/// Keys the EKS workspace needs from the VPC connection secret.
pub const VPC_SECRET_KEYS: &[&str] = &["vpc_config"];

/// The EKS workspace's output with the Kubernetes version EKS runs (major.minor), which the
/// control plane reports as `status.version` (read from its apply's `status.outputs`).
pub const VERSION_OUTPUT: &str = "cluster_version";

/// Name of the EKS cluster WorkspaceTemplateApply.
pub fn apply_name(cp: &CAPTControlPlane) -> String {
    cp.spec
        .workspace_template_apply_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::eks_apply_name(&cp.name_any()))
}

/// The VPC connection secret of a control plane as (namespace, name): by default the one its
/// Cluster's CAPTCluster writes, named after the Cluster API cluster as the CAPTCluster names
/// it ([`super::vpc::cluster_of`]), so a ClusterClass topology (whose CAPTCluster and
/// CAPTControlPlane get generated names of their own) finds it too.
pub fn vpc_secret(cp: &CAPTControlPlane) -> (String, String) {
    match &cp.spec.vpc_connection_secret_ref {
        Some(r) => (
            r.namespace.clone().unwrap_or_else(|| namespace(cp)),
            r.name.clone(),
        ),
        None => (
            namespace(cp),
            names::vpc_connection_secret(&super::vpc::cluster_of(&cp.metadata)),
        ),
    }
}

/// The `fargate_profiles` Terraform value for the chosen default profiles.
pub fn default_profiles_variable(defaults: &[DefaultFargateProfile]) -> Value {
    let mut profiles = serde_json::Map::new();
    let mut chosen = defaults.to_vec();
    chosen.sort();
    chosen.dedup();
    for profile in chosen {
        let name = profile.name();
        // Each default profile selects the namespace of the same name.
        profiles.insert(
            name.to_string(),
            json!({ "name": name, "selectors": [{ "namespace": name }] }),
        );
    }
    Value::Object(profiles)
}

/// The EKS cluster WorkspaceTemplateApply for a control plane, for an operator without an
/// IAM role to grant (see [`render_with`]).
pub fn render(cp: &CAPTControlPlane) -> WorkspaceTemplateApply {
    render_with(cp, "")
}

/// The EKS cluster WorkspaceTemplateApply for a control plane. `operator_role_arn` (the
/// operator's IAM role, `--operator-role-arn`; empty for none) becomes the template variable
/// of that name, for which the EKS module creates an access entry with cluster admin: the
/// kubeconfig token the operator mints with that role is then accepted.
pub fn render_with(cp: &CAPTControlPlane, operator_role_arn: &str) -> WorkspaceTemplateApply {
    let ns = namespace(cp);
    let cp_name = cp.name_any();
    let (vpc_ns, vpc_name) = vpc_secret(cp);

    let mut variables = BTreeMap::from([
        ("cluster_name".to_string(), cp_name.clone()),
        (
            "kubernetes_version".to_string(),
            cp.spec.version.trim_start_matches('v').to_string(),
        ),
        ("vpc_connection_secret_name".to_string(), vpc_name.clone()),
        (
            "vpc_connection_secret_namespace".to_string(),
            vpc_ns.clone(),
        ),
    ]);
    // Always set, with EKS's own defaults, so that templates can reference them unconditionally.
    let config = cp.spec.control_plane_config.as_ref();
    let access = config.and_then(|c| c.endpoint_access.as_ref());
    let region = config.map(|c| c.region.clone()).unwrap_or_default();
    let public = access.and_then(|a| a.public).unwrap_or(true);
    let private = access.and_then(|a| a.private).unwrap_or(false);
    variables.insert("region".into(), region);
    variables.insert("endpoint_public_access".into(), public.to_string());
    variables.insert("endpoint_private_access".into(), private.to_string());
    variables.insert("operator_role_arn".into(), operator_role_arn.to_string());
    let tags = cp.spec.additional_tags.clone().unwrap_or_default();
    for (key, value) in &tags {
        variables.insert(format!("tags_{key}"), value.clone());
    }

    let terraform_variables = BTreeMap::from([
        (
            "fargate_profiles".to_string(),
            default_profiles_variable(&cp.spec.default_fargate_profiles),
        ),
        ("tags".to_string(), json!(tags)),
    ]);

    WorkspaceTemplateApply {
        metadata: ObjectMeta {
            name: Some(apply_name(cp)),
            namespace: Some(ns.clone()),
            labels: Some(child_labels(cp, names::COMPONENT_EKS)),
            annotations: Some(BTreeMap::from([super::move_blocked()])),
            owner_references: controller_owner_ref(cp).map(|o| vec![o]),
            // Set at creation, saving the apply controller a write to add it.
            finalizers: Some(vec![names::APPLY_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: WorkspaceTemplateApplySpec {
            template_ref: TemplateReference {
                name: cp.spec.workspace_template_ref.name.clone(),
                namespace: Some(
                    cp.spec
                        .workspace_template_ref
                        .namespace
                        .clone()
                        .unwrap_or_else(|| ns.clone()),
                ),
            },
            write_connection_secret_to_ref: Some(XpSecretReference {
                name: names::eks_connection_secret(&cp_name),
                namespace: ns,
            }),
            variables: Some(variables),
            terraform_variables: Some(compact_values(terraform_variables)),
            wait_for_secrets: Some(vec![secret_requirement(vpc_ns, vpc_name, VPC_SECRET_KEYS)]),
            wait_for_workspaces: None,
            retain_workspace_on_delete: None,
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures::control_plane;

    const SPEC: &str = r#"
version: "1.31"
workspaceTemplateRef: { name: eks-controlplane }
controlPlaneConfig:
  region: ap-northeast-1
  endpointAccess: { public: true, private: false }
additionalTags: { env: demo }
"#;

    #[test]
    fn both_default_profiles_when_the_manifest_says_nothing() {
        let wta = render(&control_plane(SPEC));
        let tv = wta.spec.terraform_values();
        assert_eq!(
            tv["fargate_profiles"],
            json!({
                "karpenter": { "name": "karpenter", "selectors": [{ "namespace": "karpenter" }] },
                "kube-system": { "name": "kube-system", "selectors": [{ "namespace": "kube-system" }] },
            })
        );
        assert_eq!(tv["tags"], json!({ "env": "demo" }));
    }

    #[test]
    fn karpenter_can_be_dropped_and_an_empty_list_renders_no_profile() {
        let cp = control_plane(&format!("{SPEC}defaultFargateProfiles: [kube-system]\n"));
        let tv = render(&cp).spec.terraform_values();
        assert_eq!(
            tv["fargate_profiles"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["kube-system"]
        );
        let cp = control_plane(&format!("{SPEC}defaultFargateProfiles: []\n"));
        assert_eq!(
            render(&cp).spec.terraform_values()["fargate_profiles"],
            json!({})
        );
    }

    #[test]
    fn a_topology_control_plane_reads_its_clusters_vpc_secret() {
        // Cluster API's topology controller names the control plane `<cluster>-<random>` and
        // labels it with the cluster's name; the CAPTCluster (`<cluster>-<other random>`)
        // writes `<cluster>-vpc-connection`.
        let mut cp = control_plane(SPEC);
        cp.metadata.name = Some("demo-ggg4l".into());
        cp.metadata.labels = Some(
            [(names::LABEL_CLUSTER_NAME.to_string(), "demo".to_string())]
                .into_iter()
                .collect(),
        );
        assert_eq!(vpc_secret(&cp).1, "demo-vpc-connection");
        let wta = render(&cp);
        assert_eq!(
            wta.spec.wait_for_secrets.unwrap()[0].name,
            "demo-vpc-connection"
        );
    }

    #[test]
    fn capt_variables_names_and_secrets() {
        let wta = render(&control_plane(SPEC));
        assert_eq!(
            wta.metadata.name.as_deref(),
            Some("demo-eks-controlplane-apply")
        );
        assert_eq!(wta.metadata.namespace.as_deref(), Some("team-a"));
        let vars = wta.spec.variables.unwrap();
        assert_eq!(vars["cluster_name"], "demo");
        assert_eq!(vars["kubernetes_version"], "1.31");
        assert_eq!(vars["region"], "ap-northeast-1");
        assert_eq!(vars["endpoint_public_access"], "true");
        assert_eq!(vars["endpoint_private_access"], "false");
        assert_eq!(vars["tags_env"], "demo");
        assert_eq!(vars["vpc_connection_secret_name"], "demo-vpc-connection");
        // The template namespace is always set: the apply controller must not guess it.
        assert_eq!(wta.spec.template_ref.namespace.as_deref(), Some("team-a"));
        let out = wta.spec.write_connection_secret_to_ref.unwrap();
        assert_eq!(
            (out.name.as_str(), out.namespace.as_str()),
            ("demo-eks-connection", "team-a")
        );
        let wait = wta.spec.wait_for_secrets.unwrap();
        assert_eq!(wait[0].name, "demo-vpc-connection");
        assert_eq!(
            wait[0].keys.as_deref(),
            Some(&["vpc_config".to_string()][..])
        );
        let owner = &wta.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CAPTControlPlane", Some(true))
        );
    }

    #[test]
    fn endpoint_and_region_variables_are_always_set() {
        let cp = control_plane("version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\n");
        let vars = render(&cp).spec.variables.unwrap();
        assert_eq!(vars["region"], "");
        assert_eq!(vars["endpoint_public_access"], "true");
        assert_eq!(vars["endpoint_private_access"], "false");
        assert_eq!(vars["operator_role_arn"], "");
        let role = "arn:aws:iam::123456789012:role/capt-fargate";
        let vars = render_with(&cp, role).spec.variables.unwrap();
        assert_eq!(vars["operator_role_arn"], role);
    }

    #[test]
    fn explicit_apply_name_and_vpc_secret_are_honoured() {
        let cp = control_plane(&format!(
            "{SPEC}workspaceTemplateApplyName: custom-apply\nvpcConnectionSecretRef: {{ name: net, namespace: infra }}\n"
        ));
        let wta = render(&cp);
        assert_eq!(wta.metadata.name.as_deref(), Some("custom-apply"));
        assert_eq!(vpc_secret(&cp), ("infra".to_string(), "net".to_string()));
    }
}
