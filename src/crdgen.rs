//! Renders the CustomResourceDefinitions this project owns, as committed under `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{
    CAPTCluster, CAPTClusterTemplate, CAPTControlPlane, CAPTControlPlaneTemplate,
    WorkspaceTemplate, WorkspaceTemplateApply,
};

/// The CRDs this project owns (provider-terraform's Workspace is installed by provider-terraform).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CAPTControlPlane::crd(),
        CAPTControlPlaneTemplate::crd(),
        CAPTCluster::crd(),
        CAPTClusterTemplate::crd(),
        WorkspaceTemplate::crd(),
        WorkspaceTemplateApply::crd(),
    ]
}

/// File name under `crds/` for a CRD: `<group>_<plural>.yaml`, as controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// YAML for one CRD.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let yaml = serde_saphyr::to_string(crd).expect("a CRD always serializes to YAML");
    format!("---\n{yaml}")
}

/// All CRDs as one multi-document YAML stream.
pub fn all_yaml() -> String {
    crds().iter().map(to_yaml).collect()
}

/// Writes each CRD to `<dir>/<group>_<plural>.yaml`.
pub fn write_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for crd in crds() {
        std::fs::write(dir.join(file_name(&crd)), to_yaml(&crd))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for crd in crds() {
            let path = dir.join(file_name(&crd));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == to_yaml(&crd),
                "{} is stale or missing; regenerate with `cargo run -- crds --dir crds`",
                path.display()
            );
        }
    }

    #[test]
    fn crds_carry_the_cluster_api_contract_labels_and_names() {
        let cp = crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "CAPTControlPlane")
            .unwrap();
        let labels = cp.metadata.labels.unwrap();
        assert_eq!(labels["cluster.x-k8s.io/v1beta1"], "v1beta1");
        assert_eq!(cp.spec.names.categories.unwrap(), ["cluster-api", "capt"]);
        // Cluster API v1.14 reads the v1beta2 contract's fields from our v1beta1 API version,
        // and clusterctl finds the provider's CRDs by its label; the templates carry the same.
        for kind in [
            "CAPTControlPlane",
            "CAPTControlPlaneTemplate",
            "CAPTCluster",
            "CAPTClusterTemplate",
        ] {
            let crd = crds()
                .into_iter()
                .find(|c| c.spec.names.kind == kind)
                .unwrap();
            let labels = crd.metadata.labels.unwrap();
            assert_eq!(labels["cluster.x-k8s.io/v1beta2"], "v1beta1", "{kind}");
            assert_eq!(labels["cluster.x-k8s.io/v1beta1"], "v1beta1", "{kind}");
            assert_eq!(labels["clusterctl.cluster.x-k8s.io"], "", "{kind}");
            let group = if kind.starts_with("CAPTCluster") {
                "infrastructure.cluster.x-k8s.io"
            } else {
                "controlplane.cluster.x-k8s.io"
            };
            assert_eq!(crd.spec.group, group, "{kind}");
        }
        let wta = crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "WorkspaceTemplateApply")
            .unwrap();
        assert_eq!(wta.spec.names.short_names.unwrap(), ["wtapply"]);
    }
}
