//! Pure functions that turn desired state into the objects the controllers write.
//! Nothing here talks to the API server, so all of it is unit-tested beside the code.

pub mod eks;
pub mod fargate;
pub mod kubeconfig;
pub mod manifest;
pub mod vpc;
pub mod workspace;

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};

use crate::api::{CAPTControlPlane, SecretRequirement};
use crate::names;

/// The Cluster API cluster a control plane belongs to: its `cluster.x-k8s.io/cluster-name`
/// label, else its owning Cluster, else its own name (CAPT names both alike).
pub fn cluster_name(cp: &CAPTControlPlane) -> String {
    if let Some(name) = cp.labels().get(crate::names::LABEL_CLUSTER_NAME) {
        return name.clone();
    }
    cp.owner_references()
        .iter()
        .find(|o| o.kind == "Cluster" && o.api_version.starts_with("cluster.x-k8s.io/"))
        .map(|o| o.name.clone())
        .unwrap_or_else(|| cp.name_any())
}

/// Namespace of a control plane (an object read from the API server always has one).
pub fn namespace(cp: &CAPTControlPlane) -> String {
    cp.namespace().unwrap_or_else(|| "default".to_string())
}

/// Owner reference making `cp` the controller of a child, so the child is garbage-collected
/// with it and the controller is woken by the child's changes.
pub fn controller_owner_ref(
    cp: &CAPTControlPlane,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let mut owner = cp.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// The labels every apply of `cp` carries: its Cluster API cluster, its control plane and
/// `component` (`names::COMPONENT_*`), each as a valid label value, and `cp`'s watch-filter
/// label if it has one (so that an operator run with `--watch-filter` sees the children too).
pub fn child_labels(cp: &CAPTControlPlane, component: &str) -> BTreeMap<String, String> {
    let filter = cp
        .labels()
        .get(names::LABEL_WATCH_FILTER)
        .map(|v| (names::LABEL_WATCH_FILTER.to_string(), v.clone()));
    let mut labels = BTreeMap::from([
        (
            names::LABEL_CLUSTER_NAME.to_string(),
            names::label_value(&cluster_name(cp)),
        ),
        (
            names::LABEL_CONTROL_PLANE.to_string(),
            names::label_value(&cp.name_any()),
        ),
        (names::LABEL_COMPONENT.to_string(), component.to_string()),
    ]);
    labels.extend(filter);
    labels
}

/// The annotation every apply of a Cluster API cluster carries from its creation: clusterctl's
/// `clusterctl.cluster.x-k8s.io/block-move` (empty value), which the apply controller lifts
/// once the apply is paused and its Workspace with it (`workspace_apply::handover`). Rendered
/// here it saves the apply controller a PATCH of each new apply (2,200 requests of a 200 × 8
/// rollout, BENCHMARKS.md).
pub fn move_blocked() -> (String, String) {
    (names::BLOCK_MOVE_ANNOTATION.to_string(), String::new())
}

/// The Secret `namespace`/`name`, which must hold `keys`, as an apply waits for it.
pub fn secret_requirement(namespace: String, name: String, keys: &[&str]) -> SecretRequirement {
    SecretRequirement {
        name,
        namespace,
        keys: Some(keys.iter().map(|k| k.to_string()).collect()),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Control planes for the rendering tests.
    use crate::api::{CAPTControlPlane, CAPTControlPlaneSpec};

    #[test]
    fn children_inherit_the_watch_filter_label_only() {
        let mut cp = control_plane("version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\n");
        let plain = super::child_labels(&cp, "eks");
        assert!(!plain.contains_key(crate::names::LABEL_WATCH_FILTER));
        cp.metadata.labels = Some(
            [
                (
                    crate::names::LABEL_WATCH_FILTER.to_string(),
                    "team-a".to_string(),
                ),
                ("unrelated".to_string(), "x".to_string()),
            ]
            .into(),
        );
        let labels = super::child_labels(&cp, "eks");
        assert_eq!(labels[crate::names::LABEL_WATCH_FILTER], "team-a");
        assert!(!labels.contains_key("unrelated"));
    }

    /// A control plane as it reads back from the API server: with namespace, uid and defaults.
    pub fn control_plane(yaml: &str) -> CAPTControlPlane {
        let spec: CAPTControlPlaneSpec = serde_saphyr::from_str(yaml).expect("fixture spec parses");
        let mut cp = CAPTControlPlane::new("demo", spec);
        cp.metadata.namespace = Some("team-a".into());
        cp.metadata.uid = Some("0000-1111".into());
        cp.metadata.generation = Some(3);
        cp
    }
}
