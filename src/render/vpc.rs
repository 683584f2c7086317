//! The VPC WorkspaceTemplateApply of a CAPTCluster: from `spec.vpcTemplateRef` (a new VPC), or
//! from the [`EXISTING_VPC_TEMPLATE`] template of the CAPTCluster's namespace (a data-only
//! module that describes `spec.existingVpcId`). Either way its connection Secret is
//! `<cluster>-vpc-connection` in the CAPTCluster's namespace with the keys the EKS and Fargate
//! profile modules read ([`super::eks::VPC_SECRET_KEYS`]), so control planes find it by the
//! name they wait for.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::{
    CAPTCluster, TemplateReference, WorkspaceTemplateApply, WorkspaceTemplateApplySpec,
    XpSecretReference,
};
use crate::names;

/// The WorkspaceTemplate that describes an existing VPC (`config/workspacetemplates/existing-vpc.yaml`),
/// looked up in the CAPTCluster's namespace.
pub const EXISTING_VPC_TEMPLATE: &str = "existing-vpc";

/// Keys the VPC connection Secret must hold before the CAPTCluster is provisioned: the var file
/// the EKS and profile workspaces read, and the ID it reports as `vpcId`. The key
/// `availability_zones` (a JSON list; `failureDomains`) is read when present.
pub const CONNECTION_KEYS: &[&str] = &["vpc_config", "vpc_id"];

/// The Cluster API cluster of an object: its `cluster.x-k8s.io/cluster-name` label, else its
/// owning Cluster, else its own name (CAPT names the Cluster, its CAPTCluster and its
/// CAPTControlPlane alike).
pub fn cluster_of(meta: &ObjectMeta) -> String {
    if let Some(name) = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(names::LABEL_CLUSTER_NAME))
    {
        return name.clone();
    }
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Cluster" && o.api_version.starts_with("cluster.x-k8s.io/"))
        .map(|o| o.name.clone())
        .unwrap_or_else(|| meta.name.clone().unwrap_or_default())
}

/// Namespace of a CAPTCluster (an object read from the API server always has one).
pub fn namespace(c: &CAPTCluster) -> String {
    c.namespace().unwrap_or_else(|| "default".to_string())
}

/// Name of the VPC WorkspaceTemplateApply: `spec.workspaceTemplateApplyName`, else `<name>-vpc`.
pub fn apply_name(c: &CAPTCluster) -> String {
    c.spec
        .workspace_template_apply_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::vpc_apply_name(&c.name_any()))
}

/// The VPC connection Secret: `<cluster>-vpc-connection`, the name a control plane of the
/// same cluster waits for.
pub fn connection_secret(c: &CAPTCluster) -> String {
    names::vpc_connection_secret(&cluster_of(&c.metadata))
}

/// The existing VPC's ID, if the CAPTCluster uses one.
pub fn existing_vpc_id(c: &CAPTCluster) -> Option<&str> {
    c.spec
        .existing_vpc_id
        .as_deref()
        .filter(|id| !id.is_empty())
}

/// Whether the VPC survives the CAPTCluster's deletion: `retainVpcOnDelete` with a template
/// (an existing VPC is never destroyed, and its lookup workspace owns nothing in AWS).
pub fn retained(c: &CAPTCluster) -> bool {
    c.spec.retain_vpc_on_delete == Some(true) && c.spec.vpc_template_ref.is_some()
}

/// The VPC apply of a CAPTCluster: controlled by it, labelled with its cluster, carrying the
/// apply controller's finalizer and [`names::IN_USE_FINALIZER`] from creation, so that no
/// deletion path destroys the VPC before the control planes that read its Secret are gone.
pub fn render(c: &CAPTCluster) -> WorkspaceTemplateApply {
    let ns = namespace(c);
    let cluster = cluster_of(&c.metadata);
    let template_ref = match (&c.spec.vpc_template_ref, existing_vpc_id(c)) {
        (Some(r), _) => TemplateReference {
            name: r.name.clone(),
            namespace: Some(r.namespace.clone().unwrap_or_else(|| ns.clone())),
        },
        (None, _) => TemplateReference {
            name: EXISTING_VPC_TEMPLATE.into(),
            namespace: Some(ns.clone()),
        },
    };
    let vpc_name = c
        .spec
        .vpc_config
        .as_ref()
        .and_then(|v| v.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{cluster}-vpc"));
    // The names CAPT's VPC templates use, and this project's (`cluster_name`).
    let mut variables = BTreeMap::from([
        ("cluster_name".to_string(), cluster.clone()),
        ("region".to_string(), c.spec.region.clone()),
        ("vpc_name".to_string(), vpc_name),
    ]);
    if let Some(id) = existing_vpc_id(c) {
        variables.insert("vpc_id".into(), id.to_string());
    }
    let labels = BTreeMap::from([
        (
            names::LABEL_CLUSTER_NAME.to_string(),
            names::label_value(&cluster),
        ),
        (
            names::LABEL_CAPT_CLUSTER.to_string(),
            names::label_value(&c.name_any()),
        ),
        (
            names::LABEL_COMPONENT.to_string(),
            names::COMPONENT_VPC.to_string(),
        ),
    ]);
    WorkspaceTemplateApply {
        metadata: ObjectMeta {
            name: Some(apply_name(c)),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([super::move_blocked()])),
            owner_references: owner_ref(c).map(|o| vec![o]),
            finalizers: Some(vec![
                names::APPLY_FINALIZER.to_string(),
                names::IN_USE_FINALIZER.to_string(),
            ]),
            ..Default::default()
        },
        spec: WorkspaceTemplateApplySpec {
            template_ref,
            write_connection_secret_to_ref: Some(XpSecretReference {
                name: connection_secret(c),
                namespace: ns,
            }),
            variables: Some(variables),
            terraform_variables: None,
            wait_for_secrets: None,
            wait_for_workspaces: None,
            // Retained: the apply's deletion (its owner's garbage collection included) keeps
            // the Workspace, its Terraform state and so the VPC.
            retain_workspace_on_delete: retained(c).then_some(true),
        },
        status: None,
    }
}

/// Controller owner reference to the CAPTCluster.
fn owner_ref(c: &CAPTCluster) -> Option<OwnerReference> {
    let mut owner = c.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CAPTClusterSpec;

    fn capt_cluster(yaml: &str) -> CAPTCluster {
        let spec: CAPTClusterSpec = serde_saphyr::from_str(yaml).expect("fixture spec parses");
        let mut c = CAPTCluster::new("demo", spec);
        c.metadata.namespace = Some("team-a".into());
        c.metadata.uid = Some("0000-2222".into());
        c
    }

    #[test]
    fn a_template_vpc_writes_the_secret_control_planes_wait_for() {
        let c = capt_cluster("region: ap-northeast-1\nvpcTemplateRef: { name: vpc }\n");
        let apply = render(&c);
        assert_eq!(apply.name_any(), "demo-vpc");
        assert_eq!(
            apply.spec.template_ref,
            TemplateReference {
                name: "vpc".into(),
                namespace: Some("team-a".into())
            }
        );
        let secret = apply.spec.write_connection_secret_to_ref.clone().unwrap();
        assert_eq!(
            (secret.namespace.as_str(), secret.name.as_str()),
            ("team-a", "demo-vpc-connection")
        );
        let vars = apply.spec.variables.clone().unwrap();
        assert_eq!(vars["cluster_name"], "demo");
        assert_eq!(vars["region"], "ap-northeast-1");
        assert_eq!(vars["vpc_name"], "demo-vpc");
        assert!(!vars.contains_key("vpc_id"));
        assert_eq!(apply.spec.retain_workspace_on_delete, None);
        assert_eq!(
            apply.finalizers(),
            [names::APPLY_FINALIZER, names::IN_USE_FINALIZER]
        );
        let owner = &apply.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CAPTCluster", Some(true))
        );
        assert_eq!(apply.labels()[names::LABEL_COMPONENT], names::COMPONENT_VPC);
        // Born with clusterctl's block-move: no PATCH to add it (`render::move_blocked`).
        assert_eq!(
            apply.annotations().get(names::BLOCK_MOVE_ANNOTATION),
            Some(&String::new())
        );
    }

    #[test]
    fn the_cluster_name_comes_from_the_label_then_the_owner() {
        let mut c = capt_cluster(
            "region: us-east-1\nvpcTemplateRef: { name: vpc, namespace: shared }\nvpcConfig: { name: net }\nretainVpcOnDelete: true\n",
        );
        c.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "cluster.x-k8s.io/v1beta2".into(),
            kind: "Cluster".into(),
            name: "owner".into(),
            uid: "u".into(),
            ..Default::default()
        }]);
        assert_eq!(connection_secret(&c), "owner-vpc-connection");
        c.metadata.labels = Some(BTreeMap::from([(
            names::LABEL_CLUSTER_NAME.to_string(),
            "labelled".to_string(),
        )]));
        let apply = render(&c);
        assert_eq!(
            apply.spec.write_connection_secret_to_ref.unwrap().name,
            "labelled-vpc-connection"
        );
        assert_eq!(apply.spec.template_ref.namespace.as_deref(), Some("shared"));
        assert_eq!(apply.spec.variables.unwrap()["vpc_name"], "net");
        assert_eq!(apply.spec.retain_workspace_on_delete, Some(true));
    }

    #[test]
    fn an_existing_vpc_is_described_by_the_lookup_template_and_never_retained() {
        let mut c = capt_cluster(
            "region: eu-west-1\nexistingVpcId: vpc-0a1b2c3d4e5f60718\nworkspaceTemplateApplyName: net-lookup\n",
        );
        // Admission refuses retainVpcOnDelete here; the renderer ignores it all the same.
        c.spec.retain_vpc_on_delete = Some(true);
        let apply = render(&c);
        assert_eq!(apply.name_any(), "net-lookup");
        assert_eq!(apply.spec.template_ref.name, EXISTING_VPC_TEMPLATE);
        assert_eq!(
            apply.spec.variables.unwrap()["vpc_id"],
            "vpc-0a1b2c3d4e5f60718"
        );
        assert_eq!(apply.spec.retain_workspace_on_delete, None);
    }
}
