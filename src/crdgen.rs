//! Renders the CustomResourceDefinitions this project owns, as committed under `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{CAPTControlPlane, WorkspaceTemplate, WorkspaceTemplateApply};

/// The CRDs this project owns (provider-terraform's Workspace is installed by provider-terraform).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![CAPTControlPlane::crd(), WorkspaceTemplate::crd(), WorkspaceTemplateApply::crd()]
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
