//! One WorkspaceTemplateApply per additional Fargate profile. Its inputs reach Terraform as
//! typed values (`terraformVariables` → the Workspace's varmap), never spliced into text.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use super::{child_labels, controller_owner_ref, eks, namespace, secret_requirement};
use crate::api::compact::compact_values;
use crate::api::{
    CAPTControlPlane, FargateProfile, TemplateReference, WorkspaceReference,
    WorkspaceTemplateApply, WorkspaceTemplateApplySpec, XpSecretReference,
};
use crate::names;

/// Keys a profile workspace needs from the EKS connection secret.
pub const EKS_SECRET_KEYS: &[&str] = &["cluster_name", "cluster_endpoint"];

/// The settings AWS cannot change on an existing profile; when they change, the profile is
/// replaced. Tags are left out: they are updated in place. Selectors and subnets are sets for
/// AWS, so they are hashed in their canonical order: reordering them replaces nothing.
pub fn immutable_hash(cp: &CAPTControlPlane, profile: &FargateProfile) -> String {
    let identity = json!({
        "cluster": cp.name_any(),
        "name": profile.name,
        "selectors": selectors_value(profile),
        "subnetIDs": subnet_ids(profile),
        "template": template_ref(cp, profile),
    });
    names::short_hash(&identity.to_string(), 16)
}

/// The profile's subnet IDs as a set (sorted, without repeats): AWS keeps a profile's
/// subnets as a set, so their order in the spec means nothing.
fn subnet_ids(profile: &FargateProfile) -> Option<Vec<String>> {
    let mut ids = profile.subnet_ids.clone()?;
    ids.sort();
    ids.dedup();
    Some(ids)
}

fn template_ref(cp: &CAPTControlPlane, profile: &FargateProfile) -> TemplateReference {
    TemplateReference {
        name: profile.workspace_template_ref.name.clone(),
        namespace: Some(
            profile
                .workspace_template_ref
                .namespace
                .clone()
                .unwrap_or_else(|| namespace(cp)),
        ),
    }
}

/// The profile's selectors as a set: AWS keeps them (and each one's labels, a map) as sets,
/// so they are sorted by namespace, then labels, and repeats dropped.
fn selectors_value(profile: &FargateProfile) -> Value {
    let mut selectors: Vec<(&str, BTreeMap<String, String>)> = profile
        .selectors
        .iter()
        .map(|s| (s.namespace.as_str(), s.labels.clone().unwrap_or_default()))
        .collect();
    selectors.sort();
    selectors.dedup();
    Value::Array(
        selectors
            .into_iter()
            .map(|(namespace, labels)| json!({ "namespace": namespace, "labels": labels }))
            .collect(),
    )
}

/// Cluster tags overlaid with the profile's own.
fn tags(cp: &CAPTControlPlane, profile: &FargateProfile) -> BTreeMap<String, String> {
    let mut tags = cp.spec.additional_tags.clone().unwrap_or_default();
    tags.extend(profile.tags.clone().unwrap_or_default());
    tags
}

/// The WorkspaceTemplateApply that creates `profile`, under the derived names.
pub fn render(cp: &CAPTControlPlane, profile: &FargateProfile) -> WorkspaceTemplateApply {
    let name = names::profile_apply_name(&cp.name_any(), &profile.name);
    let eks_workspace = names::workspace_name(&namespace(cp), &eks::apply_name(cp));
    render_as(cp, profile, &name, &eks_workspace)
}

/// The WorkspaceTemplateApply that creates `profile`, named `name` (the apply the control plane
/// already has for it, see [`names::profile_apply_name_in_use`]), waiting for the EKS
/// cluster's Workspace `eks_workspace` (the one its apply reports, which an earlier naming
/// rule may have named differently).
pub fn render_as(
    cp: &CAPTControlPlane,
    profile: &FargateProfile,
    name: &str,
    eks_workspace: &str,
) -> WorkspaceTemplateApply {
    let ns = namespace(cp);
    let cp_name = cp.name_any();
    let name = name.to_string();
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    let eks_secret = names::eks_connection_secret(&cp_name);

    let variables = BTreeMap::from([
        ("cluster_name".to_string(), cp_name.clone()),
        ("profile_name".to_string(), profile.name.clone()),
        ("eks_connection_secret_name".to_string(), eks_secret.clone()),
        ("vpc_connection_secret_name".to_string(), vpc_name.clone()),
        (
            "vpc_connection_secret_namespace".to_string(),
            vpc_ns.clone(),
        ),
    ]);
    let mut terraform_variables = BTreeMap::from([
        ("cluster_name".to_string(), json!(cp_name)),
        ("profile_name".to_string(), json!(profile.name)),
        ("selectors".to_string(), selectors_value(profile)),
        ("tags".to_string(), json!(tags(cp, profile))),
    ]);
    if let Some(subnets) = subnet_ids(profile) {
        terraform_variables.insert("subnet_ids".into(), json!(subnets));
    }
    let mut labels = child_labels(cp, names::COMPONENT_FARGATE_PROFILE);
    labels.insert(
        names::LABEL_PROFILE.to_string(),
        names::label_value(&profile.name),
    );

    WorkspaceTemplateApply {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([
                (
                    names::ANNOTATION_PROFILE_NAME.to_string(),
                    profile.name.clone(),
                ),
                (
                    names::ANNOTATION_PROFILE_HASH.to_string(),
                    immutable_hash(cp, profile),
                ),
                super::move_blocked(),
            ])),
            owner_references: controller_owner_ref(cp).map(|o| vec![o]),
            // Set at creation, saving the apply controller a write to add it.
            finalizers: Some(vec![names::APPLY_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: WorkspaceTemplateApplySpec {
            template_ref: template_ref(cp, profile),
            write_connection_secret_to_ref: Some(XpSecretReference {
                name: names::profile_connection_secret(&name),
                namespace: ns.clone(),
            }),
            variables: Some(variables),
            terraform_variables: Some(compact_values(terraform_variables)),
            wait_for_secrets: Some(vec![
                secret_requirement(ns.clone(), eks_secret, EKS_SECRET_KEYS),
                secret_requirement(vpc_ns, vpc_name, eks::VPC_SECRET_KEYS),
            ]),
            wait_for_workspaces: Some(vec![WorkspaceReference {
                name: eks_workspace.to_string(),
                namespace: None,
            }]),
            retain_workspace_on_delete: None,
        },
        status: None,
    }
}

#[cfg(test)]
#[path = "fargate_tests.rs"]
mod tests;
