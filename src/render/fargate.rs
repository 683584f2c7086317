//! One WorkspaceTemplateApply per additional Fargate profile. Its inputs reach Terraform as
//! typed values (`terraformVariables` → the Workspace's varmap), never spliced into text.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use super::{child_labels, controller_owner_ref, eks, namespace, secret_requirement};
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
            terraform_variables: Some(terraform_variables),
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
mod tests {
    use super::*;
    use crate::render::fixtures::control_plane;

    const SPEC: &str = r#"
version: "1.31"
workspaceTemplateRef: { name: eks-controlplane }
additionalTags: { env: demo, team: platform }
additionalFargateProfiles:
  - name: monitoring
    workspaceTemplateRef: { name: eks-fargate-profile }
    selectors:
      - { namespace: monitoring }
      - { namespace: "obs-*", labels: { app: prometheus } }
    tags: { team: observability }
  - name: batch_jobs
    workspaceTemplateRef: { name: eks-fargate-profile, namespace: shared }
    subnetIDs: [subnet-0aa, subnet-0bb]
    selectors: [{ namespace: batch }]
"#;

    fn profiles() -> (CAPTControlPlane, Vec<FargateProfile>) {
        let cp = control_plane(SPEC);
        let profiles = cp.spec.additional_fargate_profiles.clone().unwrap();
        (cp, profiles)
    }

    #[test]
    fn typed_variables_and_merged_tags() {
        let (cp, p) = profiles();
        let wta = render(&cp, &p[0]);
        assert_eq!(
            wta.metadata.name,
            Some(names::profile_apply_name("demo", "monitoring"))
        );
        assert!(
            wta.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("demo-fargate-monitoring-"),
            "{:?}",
            wta.metadata.name
        );
        let tv = wta.spec.terraform_variables.unwrap();
        assert_eq!(tv["cluster_name"], json!("demo"));
        assert_eq!(tv["profile_name"], json!("monitoring"));
        assert_eq!(
            tv["selectors"],
            json!([
                { "namespace": "monitoring", "labels": {} },
                { "namespace": "obs-*", "labels": { "app": "prometheus" } },
            ])
        );
        assert_eq!(
            tv["tags"],
            json!({ "env": "demo", "team": "observability" })
        );
        assert!(
            !tv.contains_key("subnet_ids"),
            "no subnets given: the module uses the VPC's private subnets"
        );
        let labels = wta.metadata.labels.unwrap();
        assert_eq!(labels[names::LABEL_PROFILE], "monitoring");
        assert_eq!(labels[names::LABEL_CLUSTER_NAME], "demo");
    }

    #[test]
    fn waits_for_both_connection_secrets_with_their_keys_and_the_eks_workspace() {
        let (cp, p) = profiles();
        let spec = render(&cp, &p[0]).spec;
        let secrets = spec.wait_for_secrets.unwrap();
        assert_eq!(secrets[0].name, "demo-eks-connection");
        assert_eq!(
            secrets[0].keys.as_deref().unwrap(),
            ["cluster_name", "cluster_endpoint"]
        );
        assert_eq!(secrets[1].name, "demo-vpc-connection");
        assert_eq!(secrets[1].keys.as_deref().unwrap(), ["vpc_config"]);
        let ws = spec.wait_for_workspaces.unwrap();
        assert_eq!(
            ws[0].name,
            names::workspace_name("team-a", "demo-eks-controlplane-apply")
        );
        assert_eq!(
            spec.write_connection_secret_to_ref.unwrap().name,
            format!(
                "{}-connection",
                names::profile_apply_name("demo", "monitoring")
            )
        );
    }

    #[test]
    fn explicit_subnets_template_namespace_and_non_dns_profile_names() {
        let (cp, p) = profiles();
        let wta = render(&cp, &p[1]);
        let name = wta.metadata.name.unwrap();
        assert!(name.starts_with("demo-fargate-batch-jobs-"), "{name}");
        assert_eq!(
            wta.metadata.annotations.unwrap()[names::ANNOTATION_PROFILE_NAME],
            "batch_jobs"
        );
        assert_eq!(wta.spec.template_ref.namespace.as_deref(), Some("shared"));
        assert_eq!(
            wta.spec.terraform_variables.unwrap()["subnet_ids"],
            json!(["subnet-0aa", "subnet-0bb"])
        );
    }

    #[test]
    fn an_existing_apply_name_and_eks_workspace_are_kept() {
        let (cp, p) = profiles();
        let wta = render_as(&cp, &p[0], "demo-fargate-monitoring", "demo-eks-old-ws");
        assert_eq!(
            wta.metadata.name.as_deref(),
            Some("demo-fargate-monitoring")
        );
        assert_eq!(
            wta.spec.write_connection_secret_to_ref.unwrap().name,
            "demo-fargate-monitoring-connection",
            "the secret of an existing apply keeps its name"
        );
        assert_eq!(
            wta.spec.wait_for_workspaces.unwrap()[0].name,
            "demo-eks-old-ws"
        );
    }

    #[test]
    fn tags_do_not_change_the_immutable_hash_but_selectors_do() {
        let (cp, p) = profiles();
        let base = immutable_hash(&cp, &p[0]);
        let mut retagged = p[0].clone();
        retagged.tags = Some(BTreeMap::from([("x".into(), "y".into())]));
        assert_eq!(immutable_hash(&cp, &retagged), base);
        let mut reselected = p[0].clone();
        reselected.selectors[0].namespace = "metrics".into();
        assert_ne!(immutable_hash(&cp, &reselected), base);
        let mut moved = p[0].clone();
        moved.subnet_ids = Some(vec!["subnet-0cc".into()]);
        assert_ne!(immutable_hash(&cp, &moved), base);
    }

    #[test]
    fn selectors_and_subnets_are_sets_so_their_order_changes_nothing() {
        let (cp, p) = profiles();
        // Both profiles reordered: selectors swapped, subnets swapped, one of each repeated.
        let mut swapped = p[0].clone();
        swapped.selectors.reverse();
        swapped.selectors.push(swapped.selectors[0].clone());
        let mut reversed = p[1].clone();
        reversed.subnet_ids = Some(vec![
            "subnet-0bb".into(),
            "subnet-0aa".into(),
            "subnet-0bb".into(),
        ]);
        for (original, reordered) in [(&p[0], &swapped), (&p[1], &reversed)] {
            assert_eq!(
                immutable_hash(&cp, reordered),
                immutable_hash(&cp, original)
            );
            let rendered = |p| serde_json::to_value(render(&cp, p)).unwrap();
            assert_eq!(rendered(reordered), rendered(original));
        }
        // The canonical order: by namespace, then labels; subnets sorted.
        let selectors = &render(&cp, &swapped).spec.terraform_variables.unwrap()["selectors"];
        assert_eq!(
            selectors,
            &json!([
                { "namespace": "monitoring", "labels": {} },
                { "namespace": "obs-*", "labels": { "app": "prometheus" } },
            ])
        );
        let mut by_labels = p[0].clone();
        by_labels.selectors[0].namespace = "obs-*".into();
        by_labels.selectors[0].labels = Some(BTreeMap::from([("app".into(), "grafana".into())]));
        by_labels.selectors.reverse();
        assert_eq!(
            render(&cp, &by_labels).spec.terraform_variables.unwrap()["selectors"],
            json!([
                { "namespace": "obs-*", "labels": { "app": "grafana" } },
                { "namespace": "obs-*", "labels": { "app": "prometheus" } },
            ])
        );
        // A real change still replaces: another selector, or another subnet set.
        let mut other = p[0].clone();
        other.selectors[1].labels = None;
        assert_ne!(immutable_hash(&cp, &other), immutable_hash(&cp, &p[0]));
        let mut fewer = p[1].clone();
        fewer.subnet_ids = Some(vec!["subnet-0aa".into()]);
        assert_ne!(immutable_hash(&cp, &fewer), immutable_hash(&cp, &p[1]));
    }
}
