//! Tests of `pause.rs`: which Cluster a control plane has, and what pauses it.

use super::*;
use crate::api::cluster::{ClusterSpec, ControlPlaneRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

fn control_plane(
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
    owner: Option<(&str, &str, &str)>,
) -> CAPTControlPlane {
    let mut cp = CAPTControlPlane::new("demo", Default::default());
    cp.metadata.namespace = Some("ns".into());
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    cp.metadata.annotations = Some(map(annotations));
    cp.metadata.labels = Some(map(labels));
    cp.metadata.owner_references = owner.map(|(api_version, kind, name)| {
        vec![OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            ..Default::default()
        }]
    });
    cp
}

fn cluster(name: &str, paused: Option<bool>) -> Cluster {
    Cluster {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: ClusterSpec {
            paused,
            control_plane_ref: None,
        },
    }
}

#[test]
fn the_cluster_is_the_owner_of_kind_cluster_else_the_label() {
    let owned = control_plane(
        &[],
        &[(CLUSTER_NAME_LABEL, "by-label")],
        Some(("cluster.x-k8s.io/v1beta2", "Cluster", "by-owner")),
    );
    assert_eq!(cluster_name(&owned).as_deref(), Some("by-owner"));
    let labelled = control_plane(&[], &[(CLUSTER_NAME_LABEL, "by-label")], None);
    assert_eq!(cluster_name(&labelled).as_deref(), Some("by-label"));
    // A Cluster kind of another API group is not Cluster API's.
    let other = control_plane(&[], &[], Some(("example.com/v1", "Cluster", "x")));
    assert_eq!(cluster_name(&other), None);
}

#[test]
fn paused_by_the_annotation_or_a_paused_cluster_only() {
    let plain = control_plane(&[], &[], None);
    assert_eq!(is_paused(&plain, None), None);
    assert_eq!(is_paused(&plain, Some(&cluster("c", Some(false)))), None);
    assert_eq!(is_paused(&plain, Some(&cluster("c", None))), None);
    let why = is_paused(&plain, Some(&cluster("c", Some(true)))).unwrap();
    assert!(why.contains("Cluster c is paused"), "{why}");
    // Any value of the annotation pauses, as in Cluster API.
    let annotated = control_plane(&[(PAUSED_ANNOTATION, "")], &[], None);
    let why = is_paused(&annotated, None).unwrap();
    assert!(
        why.contains(PAUSED_ANNOTATION) && why.starts_with("demo "),
        "{why}"
    );
}

#[test]
fn a_cluster_names_its_control_plane_of_this_kind_only() {
    let mut c = cluster("c", None);
    assert_eq!(control_plane_named_by(&c), None);
    c.spec.control_plane_ref = Some(ControlPlaneRef {
        kind: "KubeadmControlPlane".into(),
        name: "k".into(),
    });
    assert_eq!(control_plane_named_by(&c), None);
    c.spec.control_plane_ref = Some(ControlPlaneRef {
        kind: "CAPTControlPlane".into(),
        name: "demo".into(),
    });
    assert_eq!(
        control_plane_named_by(&c),
        Some(ObjectRef::new("demo").within("ns"))
    );
}

#[test]
fn only_pause_and_the_control_plane_reference_wake_control_planes() {
    let a = cluster("c", Some(false));
    let mut status_only = a.clone();
    status_only.metadata.resource_version = Some("2".into());
    assert_eq!(pause_version(&a), pause_version(&status_only));
    assert_ne!(pause_version(&a), pause_version(&cluster("c", Some(true))));
}

#[test]
fn both_api_versions_read_alike() {
    for (api_version, reference) in [
        (
            "cluster.x-k8s.io/v1beta2",
            serde_json::json!({"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "CAPTControlPlane", "name": "demo"}),
        ),
        (
            "cluster.x-k8s.io/v1beta1",
            serde_json::json!({"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "name": "demo", "namespace": "ns"}),
        ),
    ] {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": api_version, "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"paused": true, "controlPlaneRef": reference},
            "status": {"phase": "Provisioned"}
        }))
        .unwrap();
        let c = Cluster::from(obj);
        assert_eq!(c.spec.paused, Some(true), "{api_version}");
        assert_eq!(
            control_plane_named_by(&c),
            Some(ObjectRef::new("demo").within("ns"))
        );
    }
}
