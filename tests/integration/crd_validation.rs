//! The CRDs generated from `src/api` as the real API server applies them: the samples are
//! accepted, bad manifests are rejected with the messages users will see, and every field
//! survives a round trip through the API server.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use capt_fargate::api::conditions::XpCondition;
use capt_fargate::api::*;

use crate::support::{self, TestNamespace};

const CP_API_VERSION: &str = "controlplane.cluster.x-k8s.io/v1beta1";
const INFRA_API_VERSION: &str = "infrastructure.cluster.x-k8s.io/v1beta1";

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn time(rfc3339: &str) -> Time {
    serde_json::from_value(json!(rfc3339)).unwrap()
}

/// The one document of a YAML file that has `kind`, as JSON.
fn yaml_document(path: &Path, kind: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .find(|v| v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Samples
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_sample_applies() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "crd-samples").await;
    let root = support::repo_root();

    let templates =
        support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    let kinds_names = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        templates,
        kinds_names(&[
            ("WorkspaceTemplate", "eks-controlplane"),
            ("WorkspaceTemplate", "existing-vpc"),
            ("WorkspaceTemplate", "eks-fargate-profile"),
            ("WorkspaceTemplate", "vpc")
        ])
    );
    let samples = support::apply_yaml(&client, &ns.name, &root.join("config/samples")).await;
    assert_eq!(
        samples,
        kinds_names(&[
            ("CAPTCluster", "demo-cluster"),
            ("CAPTControlPlane", "demo-cluster"),
            ("CAPTControlPlaneTemplate", "eks-fargate-template"),
            ("Cluster", "demo-cluster"),
            ("Secret", "demo-cluster-vpc-connection"),
            ("Secret", "demo-cluster-eks-connection"),
        ])
    );

    // The control plane, read back with the typed API.
    let control_planes: Api<CAPTControlPlane> = Api::namespaced(client.clone(), &ns.name);
    let cp = control_planes.get("demo-cluster").await.unwrap();
    assert_eq!(cp.metadata.namespace.as_deref(), Some(ns.name.as_str()));
    assert_eq!(cp.spec.version, "1.31");
    assert_eq!(
        cp.spec.workspace_template_ref,
        WorkspaceTemplateReference {
            name: "eks-controlplane".into(),
            namespace: None
        }
    );
    assert_eq!(
        cp.spec.default_fargate_profiles,
        vec![
            DefaultFargateProfile::KubeSystem,
            DefaultFargateProfile::Karpenter
        ],
        "the API server defaults defaultFargateProfiles to both profiles"
    );
    let additional = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .expect("the sample has additional profiles");
    assert_eq!(additional.len(), 2);
    assert_eq!(
        additional
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["monitoring", "batch-jobs"]
    );
    assert_eq!(additional[0].selectors.len(), 2);
    assert_eq!(
        additional[0].selectors[1].labels,
        Some(strings(&[("app", "prometheus")]))
    );
    assert_eq!(additional[1].selectors[0].namespace, "batch-*");
    assert_eq!(additional[1].tags, Some(strings(&[("team", "data")])));
    assert!(
        additional
            .iter()
            .all(|p| p.workspace_template_ref.name == "eks-fargate-profile")
    );
    assert_eq!(
        cp.spec
            .control_plane_config
            .as_ref()
            .map(|c| c.region.as_str()),
        Some("ap-northeast-1")
    );
    assert!(
        cp.status.is_none(),
        "no operator runs here, so nothing writes a status"
    );
    // Exactly what the file says, once defaulted.
    let mut sample = yaml_document(
        &root.join("config/samples/captcontrolplane.yaml"),
        "CAPTControlPlane",
    );
    sample["metadata"]["namespace"] = json!(ns.name);
    let sample: CAPTControlPlane = serde_json::from_value(sample).unwrap();
    assert_eq!(cp.spec, sample.spec);

    // The templates, typed, equal to their files (unknown Workspace fields included).
    let template_api: Api<WorkspaceTemplate> = Api::namespaced(client.clone(), &ns.name);
    let mut names: Vec<String> = template_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|t| t.metadata.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "eks-controlplane",
            "eks-fargate-profile",
            "existing-vpc",
            "vpc"
        ]
    );
    for (file, name) in [
        ("eks-controlplane.yaml", "eks-controlplane"),
        ("fargate-profile.yaml", "eks-fargate-profile"),
        ("existing-vpc.yaml", "existing-vpc"),
        ("vpc.yaml", "vpc"),
    ] {
        let stored = template_api.get(name).await.unwrap();
        let from_file: WorkspaceTemplate = serde_json::from_value(yaml_document(
            &root.join("config/workspacetemplates").join(file),
            "WorkspaceTemplate",
        ))
        .unwrap();
        assert_eq!(
            stored.spec, from_file.spec,
            "WorkspaceTemplate {name} differs from {file}"
        );
        assert_eq!(stored.spec.template.spec.for_provider.source, "Inline");
        assert!(!stored.spec.template.spec.for_provider.module.is_empty());
    }

    // The connection secrets.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let vpc = secrets.get("demo-cluster-vpc-connection").await.unwrap();
    assert_eq!(
        vpc.type_.as_deref(),
        Some("connection.crossplane.io/v1alpha1")
    );
    assert!(vpc.data.unwrap().contains_key("vpc_config"));

    ns.delete().await;
}

// ---------------------------------------------------------------------------------------------
// Validation table
// ---------------------------------------------------------------------------------------------

/// A valid additional profile named `name`.
fn profile(name: &str) -> Value {
    json!({
        "name": name,
        "workspaceTemplateRef": { "name": "eks-fargate-profile" },
        "selectors": [{ "namespace": "apps" }]
    })
}

/// `n` valid additional profiles.
fn profiles(n: usize) -> Vec<Value> {
    (0..n).map(|i| profile(&format!("profile-{i}"))).collect()
}

/// `profile(name)` with `changes` merged in (a null removes the field).
fn profile_with(name: &str, changes: Value) -> Value {
    merged(profile(name), changes)
}

/// `base` with the top-level fields of `changes` set (or removed when null).
fn merged(mut base: Value, changes: Value) -> Value {
    let object = base.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            object.remove(k);
        } else {
            object.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A valid CAPTControlPlane spec with `changes` merged in.
fn control_plane(changes: Value) -> Value {
    let spec = merged(
        json!({ "version": "1.31", "workspaceTemplateRef": { "name": "eks-controlplane" } }),
        changes,
    );
    json!({ "apiVersion": CP_API_VERSION, "kind": "CAPTControlPlane", "metadata": {}, "spec": spec })
}

/// A CAPTControlPlane with these additional profiles and `changes`.
fn control_plane_with_profiles(profiles: Vec<Value>, changes: Value) -> Value {
    control_plane(merged(
        json!({ "additionalFargateProfiles": profiles }),
        changes,
    ))
}

/// A CAPTControlPlane with one profile.
fn control_plane_with_profile(profile: Value) -> Value {
    control_plane_with_profiles(vec![profile], json!({}))
}

/// A WorkspaceTemplateApply with this spec.
fn template_apply(spec: Value) -> Value {
    json!({ "apiVersion": INFRA_API_VERSION, "kind": "WorkspaceTemplateApply", "metadata": {}, "spec": spec })
}

/// A valid WorkspaceTemplate whose forProvider has `changes` merged in.
fn workspace_template(for_provider_changes: Value) -> Value {
    let for_provider = merged(
        json!({ "source": "Inline", "module": "output \"x\" { value = 1 }" }),
        for_provider_changes,
    );
    json!({
        "apiVersion": INFRA_API_VERSION,
        "kind": "WorkspaceTemplate",
        "metadata": {},
        "spec": { "template": { "spec": { "forProvider": for_provider } } }
    })
}

/// A WorkspaceTemplate with this `spec.template`.
fn workspace_template_raw(template: Value) -> Value {
    json!({ "apiVersion": INFRA_API_VERSION, "kind": "WorkspaceTemplate", "metadata": {}, "spec": { "template": template } })
}

enum Expect {
    /// 422 Invalid whose message contains this text.
    Rejected(&'static str),
    /// Created; the stored spec contains everything sent plus these fields.
    Accepted(Value),
}

struct Case {
    name: &'static str,
    manifest: Value,
    expect: Expect,
}

fn reject(name: &'static str, manifest: Value, message: &'static str) -> Case {
    Case {
        name,
        manifest,
        expect: Expect::Rejected(message),
    }
}

fn accept(name: &'static str, manifest: Value, also: Value) -> Case {
    Case {
        name,
        manifest,
        expect: Expect::Accepted(also),
    }
}

fn labels(n: usize, value_len: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("label-{i}"), json!("v".repeat(value_len))))
            .collect(),
    )
}

fn tags(n: usize) -> Value {
    tags_named("tag", n)
}

/// `n` tags whose keys start with `prefix`.
fn tags_named(prefix: &str, n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("{prefix}-{i}"), json!(format!("value-{i}"))))
            .collect(),
    )
}

/// A control plane with `cluster` tags and one profile with `profile` tags.
fn control_plane_with_tags(cluster: Value, profile: Value) -> Value {
    control_plane_with_profiles(
        vec![profile_with("p", json!({ "tags": profile }))],
        json!({ "additionalTags": cluster }),
    )
}

const NAME_CHARS: &str = "profile name may contain only letters, digits, '-' and '_', and must start with a letter or digit";
const RESERVED_EKS: &str = "profile names starting with 'eks-' are reserved by AWS";
const DEFAULT_NAMES: &str =
    "'kube-system' and 'karpenter' are default profile names; choose another name";
const NAMESPACE: &str =
    "namespace must be a Kubernetes namespace name, optionally with '*' or '?' wildcards";
const LABEL_KEYS: &str = "label keys must be 1-127 characters";
const QUOTA: &str = "a cluster can have at most 10 Fargate profiles (AWS quota), counting the default profiles; remove profiles or set defaultFargateProfiles to fewer entries";
const TAG_KEYS: &str = "tag keys must be 1-127 characters and must not start with 'aws:' in any letter case (reserved by AWS)";
const CLUSTER_TAGS: &str = "additionalTags: at most 49 tags, since the EKS module adds 1 of its own (terraform-aws-modules) and AWS allows 50 per resource";
const PROFILE_TAGS: &str = "a Fargate profile gets the cluster's additionalTags plus its own tags (a key in both counts once) plus 2 the profile module adds to its pod execution role, and AWS allows 50 per resource";
const SOURCE: &str = "source must be Inline, Remote or Flux";

fn cases() -> Vec<Case> {
    vec![
        // --- additionalFargateProfiles[].name ---
        reject(
            "profile name with a dot",
            control_plane_with_profile(profile("bad.name")),
            NAME_CHARS,
        ),
        reject(
            "profile name with a space",
            control_plane_with_profile(profile("bad name")),
            NAME_CHARS,
        ),
        reject(
            "profile name starting with '-'",
            control_plane_with_profile(profile("-leading")),
            NAME_CHARS,
        ),
        reject(
            "profile name starting with 'eks-'",
            control_plane_with_profile(profile("eks-mine")),
            RESERVED_EKS,
        ),
        reject(
            "profile name kube-system",
            control_plane_with_profile(profile("kube-system")),
            DEFAULT_NAMES,
        ),
        reject(
            "profile name karpenter",
            control_plane_with_profile(profile("karpenter")),
            DEFAULT_NAMES,
        ),
        reject(
            "profile name of 101 characters",
            control_plane_with_profile(profile(&"a".repeat(101))),
            "spec.additionalFargateProfiles[0].name: Too long: may not be more than 100 bytes",
        ),
        reject(
            "empty profile name",
            control_plane_with_profile(profile("")),
            "spec.additionalFargateProfiles[0].name in body should be at least 1 chars long",
        ),
        reject(
            "missing profile name",
            control_plane_with_profile(profile_with("x", json!({ "name": null }))),
            "spec.additionalFargateProfiles[0].name: Required value",
        ),
        reject(
            "duplicate profile names",
            control_plane_with_profiles(
                vec![profile("same"), profile("other"), profile("same")],
                json!({}),
            ),
            "spec.additionalFargateProfiles[2]: Duplicate value",
        ),
        // --- selectors ---
        reject(
            "no selectors",
            control_plane_with_profile(profile_with("p", json!({ "selectors": [] }))),
            "spec.additionalFargateProfiles[0].selectors in body should have at least 1 items",
        ),
        reject(
            "missing selectors",
            control_plane_with_profile(profile_with("p", json!({ "selectors": null }))),
            "spec.additionalFargateProfiles[0].selectors: Required value",
        ),
        reject(
            "6 selectors",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": (0..6).map(|i| json!({ "namespace": format!("ns-{i}") })).collect::<Vec<_>>() }),
            )),
            "spec.additionalFargateProfiles[0].selectors: Too many: 6: must have at most 5 items",
        ),
        reject(
            "selector without namespace",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "labels": { "app": "x" } }] }),
            )),
            "spec.additionalFargateProfiles[0].selectors[0].namespace: Required value",
        ),
        reject(
            "selector namespace with uppercase",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "Apps" }] }),
            )),
            NAMESPACE,
        ),
        reject(
            "selector namespace ending with '-'",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps-" }] }),
            )),
            NAMESPACE,
        ),
        reject(
            "selector namespace with '_'",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "my_apps" }] }),
            )),
            NAMESPACE,
        ),
        reject(
            "selector namespace of 64 characters",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "n".repeat(64) }] }),
            )),
            "spec.additionalFargateProfiles[0].selectors[0].namespace: Too long: may not be more than 63 bytes",
        ),
        reject(
            "6 labels in a selector",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps", "labels": labels(6, 1) }] }),
            )),
            "spec.additionalFargateProfiles[0].selectors[0].labels: Too many: 6: must have at most 5 items",
        ),
        reject(
            "label value of 256 characters",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps", "labels": labels(1, 256) }] }),
            )),
            "spec.additionalFargateProfiles[0].selectors[0].labels.label-0: Too long: may not be more than 255 bytes",
        ),
        reject(
            "empty label value",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps", "labels": labels(1, 0) }] }),
            )),
            "spec.additionalFargateProfiles[0].selectors[0].labels.label-0 in body should be at least 1 chars long",
        ),
        reject(
            "label key of 128 characters",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps", "labels": { "k".repeat(128): "v" } }] }),
            )),
            LABEL_KEYS,
        ),
        reject(
            "empty label key",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "selectors": [{ "namespace": "apps", "labels": { "": "v" } }] }),
            )),
            LABEL_KEYS,
        ),
        // --- profile count (AWS quota of 10, defaults included) ---
        reject(
            "9 additional profiles with the defaults omitted (11)",
            control_plane_with_profiles(profiles(9), json!({})),
            QUOTA,
        ),
        reject(
            "9 additional profiles with both defaults (11)",
            control_plane_with_profiles(
                profiles(9),
                json!({ "defaultFargateProfiles": ["kube-system", "karpenter"] }),
            ),
            QUOTA,
        ),
        reject(
            "10 additional profiles with one default (11)",
            control_plane_with_profiles(
                profiles(10),
                json!({ "defaultFargateProfiles": ["karpenter"] }),
            ),
            QUOTA,
        ),
        reject(
            "11 additional profiles without defaults",
            control_plane_with_profiles(profiles(11), json!({ "defaultFargateProfiles": [] })),
            "spec.additionalFargateProfiles: Too many: 11: must have at most 10 items",
        ),
        // --- subnetIDs and tags ---
        reject(
            "subnet id with uppercase hex",
            control_plane_with_profile(profile_with("p", json!({ "subnetIDs": ["subnet-0ABC"] }))),
            "spec.additionalFargateProfiles[0].subnetIDs[0] in body should match '^subnet-[0-9a-f]+$'",
        ),
        reject(
            "subnet id that is a VPC id",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "subnetIDs": ["subnet-0aaa1111bbbb2222c", "vpc-0a1b2c3d"] }),
            )),
            "spec.additionalFargateProfiles[0].subnetIDs[1] in body should match '^subnet-[0-9a-f]+$'",
        ),
        reject(
            "empty subnetIDs",
            control_plane_with_profile(profile_with("p", json!({ "subnetIDs": [] }))),
            "spec.additionalFargateProfiles[0].subnetIDs in body should have at least 1 items",
        ),
        reject(
            "tag key starting with aws:",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "tags": { "aws:cloudformation": "x" } }),
            )),
            TAG_KEYS,
        ),
        reject(
            "tag value of 256 characters",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "tags": { "team": "t".repeat(256) } }),
            )),
            "spec.additionalFargateProfiles[0].tags.team: Too long: may not be more than 255 bytes",
        ),
        reject(
            "tag key of 128 characters",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "tags": { "k".repeat(128): "v" } }),
            )),
            TAG_KEYS,
        ),
        reject(
            "empty tag key",
            control_plane_with_profile(profile_with("p", json!({ "tags": { "": "v" } }))),
            TAG_KEYS,
        ),
        reject(
            "51 tags",
            control_plane_with_profile(profile_with("p", json!({ "tags": tags(51) }))),
            "spec.additionalFargateProfiles[0].tags: Too many: 51: must have at most 50 items",
        ),
        // 'aws:' is reserved in any letter case, in cluster and profile tags.
        reject(
            "cluster tag key AWS:CostCenter",
            control_plane(json!({ "additionalTags": { "AWS:CostCenter": "1" } })),
            TAG_KEYS,
        ),
        reject(
            "cluster tag key Aws:team",
            control_plane(json!({ "additionalTags": { "Aws:team": "x" } })),
            TAG_KEYS,
        ),
        reject(
            "profile tag key AWS:CostCenter",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "tags": { "AWS:CostCenter": "1" } }),
            )),
            TAG_KEYS,
        ),
        reject(
            "profile tag key aWs:team",
            control_plane_with_profile(profile_with("p", json!({ "tags": { "aWs:team": "x" } }))),
            TAG_KEYS,
        ),
        // 50 tags per AWS resource, counting what the modules add (EKS cluster: 1; a profile's
        // pod execution role: 2) and the cluster tags every profile gets.
        reject(
            "50 cluster tags (the EKS module adds 1)",
            control_plane(json!({ "additionalTags": tags(50) })),
            CLUSTER_TAGS,
        ),
        reject(
            "30 cluster tags plus 21 different profile tags",
            control_plane_with_tags(tags_named("cluster", 30), tags_named("profile", 21)),
            PROFILE_TAGS,
        ),
        reject(
            "30 cluster tags plus 19 different profile tags (the role gets 2 more)",
            control_plane_with_tags(tags_named("cluster", 30), tags_named("profile", 19)),
            PROFILE_TAGS,
        ),
        reject(
            "49 cluster tags and a profile without tags",
            control_plane_with_profiles(vec![profile("p")], json!({ "additionalTags": tags(49) })),
            PROFILE_TAGS,
        ),
        reject(
            "49 profile tags",
            control_plane_with_profile(profile_with("p", json!({ "tags": tags(49) }))),
            PROFILE_TAGS,
        ),
        // --- profile workspaceTemplateRef ---
        reject(
            "profile without workspaceTemplateRef",
            control_plane_with_profile(profile_with("p", json!({ "workspaceTemplateRef": null }))),
            "spec.additionalFargateProfiles[0].workspaceTemplateRef: Required value",
        ),
        reject(
            "profile workspaceTemplateRef with an empty name",
            control_plane_with_profile(profile_with(
                "p",
                json!({ "workspaceTemplateRef": { "name": "" } }),
            )),
            "spec.additionalFargateProfiles[0].workspaceTemplateRef.name in body should be at least 1 chars long",
        ),
        // --- the rest of the spec ---
        reject(
            "region without a number",
            control_plane(json!({ "controlPlaneConfig": { "region": "tokyo" } })),
            "spec.controlPlaneConfig.region in body should match '^[a-z]{2}-[a-z]+-[0-9]$'",
        ),
        reject(
            "region in uppercase",
            control_plane(json!({ "controlPlaneConfig": { "region": "AP-NORTHEAST-1" } })),
            "spec.controlPlaneConfig.region in body should match '^[a-z]{2}-[a-z]+-[0-9]$'",
        ),
        reject(
            "controlPlaneConfig without region",
            control_plane(
                json!({ "controlPlaneConfig": { "endpointAccess": { "public": true } } }),
            ),
            "spec.controlPlaneConfig.region: Required value",
        ),
        reject(
            "version 'latest'",
            control_plane(json!({ "version": "latest" })),
            r"spec.version in body should match '^v?[0-9]+\.[0-9]+(\.[0-9]+)?$'",
        ),
        reject(
            "version with four parts",
            control_plane(json!({ "version": "1.31.2.4" })),
            r"spec.version in body should match '^v?[0-9]+\.[0-9]+(\.[0-9]+)?$'",
        ),
        reject(
            "missing version",
            control_plane(json!({ "version": null })),
            "spec.version: Required value",
        ),
        reject(
            "missing workspaceTemplateRef",
            control_plane(json!({ "workspaceTemplateRef": null })),
            "spec.workspaceTemplateRef: Required value",
        ),
        reject(
            "unknown defaultFargateProfiles value",
            control_plane(json!({ "defaultFargateProfiles": ["coredns"] })),
            "spec.defaultFargateProfiles[0]: Unsupported value: \"coredns\": supported values: \"kube-system\", \"karpenter\"",
        ),
        reject(
            "duplicate defaultFargateProfiles",
            control_plane(json!({ "defaultFargateProfiles": ["kube-system", "kube-system"] })),
            "spec.defaultFargateProfiles[1]: Duplicate value: \"kube-system\"",
        ),
        reject(
            "controlPlaneTimeout of 0",
            control_plane(
                json!({ "controlPlaneConfig": { "region": "eu-west-1", "timeouts": { "controlPlaneTimeout": 0 } } }),
            ),
            "spec.controlPlaneConfig.timeouts.controlPlaneTimeout in body should be greater than or equal to 1",
        ),
        reject(
            "controlPlaneEndpoint without port",
            control_plane(json!({ "controlPlaneEndpoint": { "host": "example.com" } })),
            "spec.controlPlaneEndpoint.port: Required value",
        ),
        reject(
            "vpcConnectionSecretRef with an empty name",
            control_plane(json!({ "vpcConnectionSecretRef": { "name": "" } })),
            "spec.vpcConnectionSecretRef.name in body should be at least 1 chars long",
        ),
        // --- WorkspaceTemplateApply ---
        reject(
            "WorkspaceTemplateApply without templateRef",
            template_apply(json!({ "variables": { "a": "b" } })),
            "spec.templateRef: Required value",
        ),
        reject(
            "WorkspaceTemplateApply templateRef with an empty name",
            template_apply(json!({ "templateRef": { "name": "" } })),
            "spec.templateRef.name in body should be at least 1 chars long",
        ),
        reject(
            "WorkspaceTemplateApply waitForSecrets item without namespace",
            template_apply(
                json!({ "templateRef": { "name": "t" }, "waitForSecrets": [{ "name": "s", "keys": ["k"] }] }),
            ),
            "spec.waitForSecrets[0].namespace: Required value",
        ),
        reject(
            "WorkspaceTemplateApply writeConnectionSecretToRef without namespace",
            template_apply(
                json!({ "templateRef": { "name": "t" }, "writeConnectionSecretToRef": { "name": "s" } }),
            ),
            "spec.writeConnectionSecretToRef.namespace: Required value",
        ),
        reject(
            "WorkspaceTemplateApply variables with a number",
            template_apply(json!({ "templateRef": { "name": "t" }, "variables": { "count": 3 } })),
            "spec.variables.count: Invalid value: \"integer\": spec.variables.count in body must be of type string",
        ),
        reject(
            "WorkspaceTemplateApply waitForWorkspaces item with an empty name",
            template_apply(
                json!({ "templateRef": { "name": "t" }, "waitForWorkspaces": [{ "name": "" }] }),
            ),
            "spec.waitForWorkspaces[0].name in body should be at least 1 chars long",
        ),
        // --- WorkspaceTemplate ---
        reject(
            "WorkspaceTemplate with source Git",
            workspace_template(json!({ "source": "Git" })),
            SOURCE,
        ),
        reject(
            "WorkspaceTemplate with source in lowercase",
            workspace_template(json!({ "source": "inline" })),
            SOURCE,
        ),
        reject(
            "WorkspaceTemplate without module",
            workspace_template(json!({ "module": null })),
            "spec.template.spec.forProvider.module: Required value",
        ),
        reject(
            "WorkspaceTemplate without spec.template.spec",
            workspace_template_raw(json!({ "metadata": { "description": "d" } })),
            "spec.template.spec: Required value",
        ),
        reject(
            "WorkspaceTemplate varFile secretKeyRef without key",
            workspace_template(
                json!({ "varFiles": [{ "source": "SecretKey", "secretKeyRef": { "namespace": "n", "name": "s" } }] }),
            ),
            "spec.template.spec.forProvider.varFiles[0].secretKeyRef.key: Required value",
        ),
        // --- good edge cases ---
        accept(
            "8 additional profiles with the defaults omitted (10)",
            control_plane_with_profiles(profiles(8), json!({})),
            json!({ "defaultFargateProfiles": ["kube-system", "karpenter"] }),
        ),
        accept(
            "8 additional profiles with both defaults (10)",
            control_plane_with_profiles(
                profiles(8),
                json!({ "defaultFargateProfiles": ["kube-system", "karpenter"] }),
            ),
            json!({}),
        ),
        accept(
            "9 additional profiles with one default (10)",
            control_plane_with_profiles(
                profiles(9),
                json!({ "defaultFargateProfiles": ["karpenter"] }),
            ),
            json!({}),
        ),
        accept(
            "10 additional profiles without defaults (10)",
            control_plane_with_profiles(profiles(10), json!({ "defaultFargateProfiles": [] })),
            json!({}),
        ),
        accept(
            "wildcard namespaces and labels",
            control_plane_with_profile(profile_with(
                "wild",
                json!({ "selectors": [{ "namespace": "batch-*" }, { "namespace": "?eam-*-prod" }, { "namespace": "*", "labels": { "compute": "fargate-*", "tier": "?" } }] }),
            )),
            json!({}),
        ),
        accept(
            "name with underscore and uppercase",
            control_plane_with_profile(profile("My_Profile-2")),
            json!({}),
        ),
        accept(
            "name of exactly 100 characters",
            control_plane_with_profile(profile(&"a".repeat(100))),
            json!({}),
        ),
        accept(
            "name 'eks' without the dash",
            control_plane_with_profile(profile("eks")),
            json!({}),
        ),
        accept(
            "5 selectors with 5 labels each, values of 255 characters",
            control_plane_with_profile(profile_with(
                "full",
                json!({ "selectors": (0..5).map(|i| json!({ "namespace": format!("ns-{i}"), "labels": labels(5, 255) })).collect::<Vec<_>>() }),
            )),
            json!({}),
        ),
        accept(
            "48 tags (the module adds 2 to the role), 16 subnets",
            control_plane_with_profile(profile_with(
                "tagged",
                json!({ "tags": tags(48), "subnetIDs": (0..16).map(|i| format!("subnet-{i:04x}abcd")).collect::<Vec<_>>() }),
            )),
            json!({}),
        ),
        accept(
            "49 cluster tags without profiles",
            control_plane(json!({ "additionalTags": tags(49) })),
            json!({}),
        ),
        accept(
            "30 cluster tags plus 18 different profile tags",
            control_plane_with_tags(tags_named("cluster", 30), tags_named("profile", 18)),
            json!({}),
        ),
        accept(
            "30 cluster tags and 30 profile tags of the same keys (counted once)",
            control_plane_with_tags(tags(30), tags(30)),
            json!({}),
        ),
        accept(
            "tag keys containing aws: later on",
            control_plane_with_tags(json!({ "team:aws:x": "1" }), json!({ "awsome": "1" })),
            json!({}),
        ),
        accept(
            "version with v and patch",
            control_plane(json!({ "version": "v1.31.2" })),
            json!({}),
        ),
        accept(
            "empty defaultFargateProfiles",
            control_plane(json!({ "defaultFargateProfiles": [] })),
            json!({}),
        ),
        accept(
            "minimal WorkspaceTemplateApply",
            template_apply(json!({ "templateRef": { "name": "t" } })),
            json!({}),
        ),
        accept(
            "WorkspaceTemplate with a Remote source and unknown crossplane fields",
            workspace_template(
                json!({ "source": "Remote", "module": "git::https://example.com/m.git", "planArgs": ["-lock=false"], "env": [{ "name": "A", "value": "1" }] }),
            ),
            json!({}),
        ),
    ]
}

/// Whether `got` has everything in `sent` (objects may have more fields, e.g. defaults).
fn contains(got: &Value, sent: &Value) -> bool {
    match (got, sent) {
        (Value::Object(g), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| contains(gv, v))),
        (Value::Array(g), Value::Array(s)) => {
            g.len() == s.len() && g.iter().zip(s).all(|(g, s)| contains(g, s))
        }
        _ => got == sent,
    }
}

fn api_resource(kind: &str) -> ApiResource {
    match kind {
        "CAPTControlPlane" => ApiResource::erase::<CAPTControlPlane>(&()),
        "WorkspaceTemplateApply" => ApiResource::erase::<WorkspaceTemplateApply>(&()),
        "WorkspaceTemplate" => ApiResource::erase::<WorkspaceTemplate>(&()),
        other => panic!("no case should use kind {other}"),
    }
}

fn short(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() > 400 {
        format!("{}...", one_line.chars().take(400).collect::<String>())
    } else {
        one_line
    }
}

/// Creates `manifest` as `name`; returns what went wrong, if anything.
async fn run_case(client: &Client, namespace: &str, name: &str, case: &Case) -> Result<(), String> {
    let mut manifest = case.manifest.clone();
    manifest["metadata"] = json!({ "name": name });
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let ar = api_resource(&kind);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
    let result = api.create(&PostParams::default(), &object).await;
    match (&case.expect, result) {
        (Expect::Rejected(message), Err(kube::Error::Api(status))) => {
            if status.code == 422 && status.reason == "Invalid" && status.message.contains(message)
            {
                Ok(())
            } else {
                Err(format!(
                    "{} {}: {}",
                    status.code,
                    status.reason,
                    short(&status.message)
                ))
            }
        }
        (Expect::Rejected(_), Ok(stored)) => Err(format!(
            "ACCEPTED (stored spec: {})",
            short(&stored.data["spec"].to_string())
        )),
        (Expect::Accepted(_), Err(kube::Error::Api(status))) => Err(format!(
            "{} {}: {}",
            status.code,
            status.reason,
            short(&status.message)
        )),
        (_, Err(other)) => Err(format!("error: {}", short(&other.to_string()))),
        (Expect::Accepted(also), Ok(stored)) => {
            let spec = &stored.data["spec"];
            if !contains(spec, &manifest["spec"]) {
                return Err(format!(
                    "stored spec lost fields: {}",
                    short(&spec.to_string())
                ));
            }
            if !contains(spec, also) {
                return Err(format!(
                    "stored spec lacks {also}: {}",
                    short(&spec.to_string())
                ));
            }
            // What the API server stored must also be readable by the operator's types.
            let typed = match kind.as_str() {
                "CAPTControlPlane" => serde_json::from_value::<CAPTControlPlane>(
                    serde_json::to_value(&stored).unwrap(),
                )
                .map(|_| ()),
                "WorkspaceTemplateApply" => serde_json::from_value::<WorkspaceTemplateApply>(
                    serde_json::to_value(&stored).unwrap(),
                )
                .map(|_| ()),
                _ => serde_json::from_value::<WorkspaceTemplate>(
                    serde_json::to_value(&stored).unwrap(),
                )
                .map(|_| ()),
            };
            typed.map_err(|e| format!("stored object does not deserialize: {e}"))
        }
    }
}

#[tokio::test]
async fn bad_manifests_are_rejected_with_their_messages() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "crd-table").await;
    let cases = cases();
    let rejected = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Rejected(_)))
        .count();
    assert!(
        rejected >= 25,
        "the table must have at least 25 bad manifests, it has {rejected}"
    );

    let mut failures = Vec::new();
    let mut accepted_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("case-{i:02}");
        if let Err(problem) = run_case(&client, &ns.name, &name, case).await {
            let expected = match &case.expect {
                Expect::Rejected(m) => format!("422 Invalid containing \"{m}\""),
                Expect::Accepted(_) => "accepted".to_string(),
            };
            failures.push((name.clone(), case.name, expected, problem));
        }
        if matches!(case.expect, Expect::Accepted(_)) {
            accepted_names
                .entry(case.manifest["kind"].as_str().unwrap().to_string())
                .or_default()
                .push(name);
        }
    }

    if failures.is_empty() {
        // Exactly the accepted cases were stored: no rejected manifest slipped through.
        for kind in [
            "CAPTControlPlane",
            "WorkspaceTemplateApply",
            "WorkspaceTemplate",
        ] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &ns.name, &api_resource(kind));
            let mut stored: Vec<String> = api
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
            stored.sort();
            assert_eq!(
                stored,
                accepted_names.get(kind).cloned().unwrap_or_default(),
                "stored {kind} objects"
            );
        }
    }
    ns.delete().await;

    if !failures.is_empty() {
        let mut table = format!(
            "{} of {} validation cases failed:\n",
            failures.len(),
            cases.len()
        );
        for (name, what, expected, got) in &failures {
            table.push_str(&format!(
                "\n{name} | {what}\n    expected: {expected}\n    got:      {got}\n"
            ));
        }
        panic!("{table}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn full_control_plane_spec() -> CAPTControlPlaneSpec {
    CAPTControlPlaneSpec {
        version: "v1.31.2".into(),
        workspace_template_ref: WorkspaceTemplateReference {
            name: "eks-controlplane".into(),
            namespace: Some("capt-templates".into()),
        },
        control_plane_config: Some(ControlPlaneConfig {
            region: "ap-northeast-1".into(),
            endpoint_access: Some(EndpointAccess {
                public: Some(true),
                private: Some(false),
                public_cidrs: Some(vec!["203.0.113.0/24".into(), "198.51.100.7/32".into()]),
            }),
            addons: Some(vec![
                Addon {
                    name: "coredns".into(),
                    version: Some("v1.11.3-eksbuild.2".into()),
                    configuration_values: Some(
                        r#"{"computeType":"Fargate","replicaCount":2}"#.into(),
                    ),
                },
                Addon {
                    name: "vpc-cni".into(),
                    version: None,
                    configuration_values: None,
                },
            ]),
            timeouts: Some(TimeoutConfig {
                control_plane_timeout: Some(45),
                vpc_ready_timeout: Some(20),
            }),
        }),
        additional_tags: Some(strings(&[
            ("environment", "staging"),
            ("cost-center", "4711"),
            ("empty", ""),
        ])),
        control_plane_endpoint: Some(ApiEndpoint {
            host: "4F1D2C3B.gr7.ap-northeast-1.eks.amazonaws.com".into(),
            port: 443,
        }),
        workspace_template_apply_name: Some("round-trip-eks".into()),
        default_fargate_profiles: vec![DefaultFargateProfile::Karpenter],
        additional_fargate_profiles: Some(vec![
            FargateProfile {
                name: "monitoring".into(),
                selectors: vec![
                    FargateProfileSelector {
                        namespace: "monitoring".into(),
                        labels: None,
                    },
                    FargateProfileSelector {
                        namespace: "observability".into(),
                        labels: Some(strings(&[("app", "prometheus"), ("tier", "*")])),
                    },
                ],
                workspace_template_ref: WorkspaceTemplateReference {
                    name: "eks-fargate-profile".into(),
                    namespace: Some("capt-templates".into()),
                },
                subnet_ids: Some(vec![
                    "subnet-0aaa1111bbbb2222c".into(),
                    "subnet-0ddd3333eeee4444f".into(),
                ]),
                tags: Some(strings(&[("team", "platform"), ("owner", "sre")])),
            },
            FargateProfile {
                name: "Batch_Jobs".into(),
                selectors: vec![FargateProfileSelector {
                    namespace: "batch-*".into(),
                    labels: Some(strings(&[("compute", "fargate")])),
                }],
                workspace_template_ref: WorkspaceTemplateReference {
                    name: "eks-fargate-profile".into(),
                    namespace: None,
                },
                subnet_ids: None,
                tags: None,
            },
        ]),
        vpc_connection_secret_ref: Some(SecretReference {
            name: "shared-vpc-connection".into(),
            namespace: Some("network".into()),
        }),
    }
}

fn full_control_plane_status() -> CAPTControlPlaneStatus {
    CAPTControlPlaneStatus {
        ready: true,
        initialized: Some(true),
        initialization: Some(ControlPlaneInitialization {
            control_plane_initialized: Some(true),
        }),
        external_managed_control_plane: Some(true),
        version: Some("v1.31.2".into()),
        versions: Some(vec![StatusVersion {
            version: "v1.31.2".into(),
            replicas: None,
        }]),
        secrets_ready: Some(false),
        workspace_template_status: Some(WorkspaceTemplateStatus {
            ready: true,
            state: Some("Available".into()),
            last_applied_revision: Some("2025-03-04T05:06:07Z".into()),
            outputs: Some(strings(&[
                ("cluster_name", "round-trip"),
                (
                    "cluster_endpoint",
                    "https://4F1D2C3B.gr7.ap-northeast-1.eks.amazonaws.com",
                ),
            ])),
            last_failed_revision: Some("2025-03-01T00:00:00Z".into()),
            last_failure_message: Some("apply failed: timeout".into()),
        }),
        workspace_status: Some(WorkspaceStatus {
            ready: true,
            state: Some("Available".into()),
        }),
        failure_reason: Some("FargateProfileFailed".into()),
        failure_message: Some("profile monitoring: AccessDenied".into()),
        phase: Some(ControlPlanePhase::Ready),
        conditions: vec![
            Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Available".into(),
                message: "the EKS control plane is ready".into(),
                last_transition_time: time("2025-03-04T05:06:07Z"),
                observed_generation: Some(1),
            },
            Condition {
                type_: "FargateProfileFailed".into(),
                status: "True".into(),
                reason: "ApplyFailed".into(),
                message: String::new(),
                last_transition_time: time("2025-03-04T05:10:00Z"),
                observed_generation: None,
            },
        ],
        fargate_profiles: vec![
            FargateProfileStatus {
                name: "karpenter".into(),
                ready: true,
                workspace_template_apply_name: Some("round-trip-eks".into()),
                phase: Some(FargateProfilePhase::Ready),
                failure_reason: None,
                failure_message: None,
            },
            FargateProfileStatus {
                name: "monitoring".into(),
                ready: false,
                workspace_template_apply_name: Some("round-trip-fargate-monitoring".into()),
                phase: Some(FargateProfilePhase::Failed),
                failure_reason: Some("ApplyFailed".into()),
                failure_message: Some(
                    "AccessDenied: not authorized to perform eks:CreateFargateProfile".into(),
                ),
            },
            FargateProfileStatus {
                name: "Batch_Jobs".into(),
                ready: false,
                workspace_template_apply_name: None,
                phase: Some(FargateProfilePhase::Pending),
                failure_reason: Some("WaitingForPreviousProfile".into()),
                failure_message: Some("waiting for monitoring".into()),
            },
        ],
        fargate_profiles_summary: Some("1/3".into()),
        observed_generation: Some(1),
    }
}

#[tokio::test]
async fn control_plane_round_trips_every_field() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "crd-rt-cp").await;
    let api: Api<CAPTControlPlane> = Api::namespaced(client.clone(), &ns.name);
    let spec = full_control_plane_spec();
    let status = full_control_plane_status();

    // Every field of the sent spec is set (guards this test against new fields left out).
    let sent = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        sent.as_object().unwrap().len(),
        9,
        "spec fields sent: {:?}",
        sent.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    let mut object = CAPTControlPlane::new("round-trip", spec.clone());
    // The status subresource is enabled: a status sent with the object is dropped.
    object.status = Some(status.clone());
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(created.spec, spec);
    assert_eq!(
        created.status, None,
        "the API server keeps status out of creates"
    );
    assert_eq!(created.metadata.generation, Some(1));

    let got = api.get("round-trip").await.unwrap();
    assert_eq!(got.spec, spec);
    assert_eq!(
        serde_json::to_value(&got.spec).unwrap(),
        sent,
        "the stored JSON equals the sent JSON"
    );

    let patched = api
        .patch_status(
            "round-trip",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref(), Some(&status));
    let got = api.get_status("round-trip").await.unwrap();
    assert_eq!(got.status.as_ref(), Some(&status));
    assert_eq!(got.spec, spec, "a status write leaves the spec alone");
    assert_eq!(
        got.metadata.generation,
        Some(1),
        "a status write does not bump the generation"
    );

    // A spec write through the main resource cannot change the status.
    let mut changed = got.clone();
    changed.spec.version = "1.32".into();
    changed.status = Some(CAPTControlPlaneStatus::default());
    let replaced = api
        .replace("round-trip", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.spec.version, "1.32");
    assert_eq!(replaced.status.as_ref(), Some(&status));
    assert_eq!(replaced.metadata.generation, Some(2));

    ns.delete().await;
}

#[tokio::test]
async fn workspace_template_apply_round_trips_every_field() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "crd-rt-wta").await;
    let api: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);

    let terraform_variables: BTreeMap<String, Value> = serde_json::from_value(json!({
        "cluster_name": "round-trip",
        "profile_name": "monitoring",
        "selectors": [
            { "namespace": "monitoring", "labels": {} },
            { "namespace": "batch-*", "labels": { "compute": "fargate", "tier": "*" } }
        ],
        "subnet_ids": ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f"],
        "tags": { "team": "platform" },
        "replicas": 3,
        "negative": -12,
        "ratio": 0.25,
        "big": 9007199254740991_i64,
        "enabled": true,
        "disabled": false,
        "empty_string": "",
        "empty_list": [],
        "empty_map": {},
        "nested": { "level1": { "level2": [1, [2, 3], { "x": "y", "z": [true, "s", 1.5] }] } }
    }))
    .unwrap();
    let spec = WorkspaceTemplateApplySpec {
        template_ref: TemplateReference {
            name: "eks-fargate-profile".into(),
            namespace: Some("capt-templates".into()),
        },
        write_connection_secret_to_ref: Some(XpSecretReference {
            name: "round-trip-fargate-monitoring".into(),
            namespace: ns.name.clone(),
        }),
        variables: Some(strings(&[
            ("vpc_connection_secret_name", "round-trip-vpc-connection"),
            ("vpc_connection_secret_namespace", ns.name.as_str()),
            ("with_placeholder", "${WORKSPACE_NAME}"),
            ("blank", ""),
        ])),
        terraform_variables: Some(capt_fargate::api::compact::compact_values(
            terraform_variables,
        )),
        wait_for_secrets: Some(vec![
            SecretRequirement {
                name: "round-trip-vpc-connection".into(),
                namespace: ns.name.clone(),
                keys: Some(vec!["vpc_config".into(), "vpc_id".into()]),
            },
            SecretRequirement {
                name: "round-trip-eks-connection".into(),
                namespace: "elsewhere".into(),
                keys: None,
            },
        ]),
        wait_for_workspaces: Some(vec![
            WorkspaceReference {
                name: "round-trip-eks".into(),
                namespace: Some("ignored".into()),
            },
            WorkspaceReference {
                name: "round-trip-vpc".into(),
                namespace: None,
            },
        ]),
        retain_workspace_on_delete: Some(true),
    };
    let sent = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        sent.as_object().unwrap().len(),
        7,
        "spec fields sent: {:?}",
        sent.as_object().unwrap().keys().collect::<Vec<_>>()
    );

    let created = api
        .create(
            &PostParams::default(),
            &WorkspaceTemplateApply::new("round-trip", spec.clone()),
        )
        .await
        .unwrap();
    assert_eq!(created.spec, spec);
    let got = api.get("round-trip").await.unwrap();
    assert_eq!(got.spec, spec);
    assert_eq!(
        serde_json::to_value(&got.spec).unwrap(),
        sent,
        "the stored JSON equals the sent JSON"
    );

    let status = WorkspaceTemplateApplyStatus {
        workspace_name: Some("round-trip-fargate-monitoring".into()),
        applied: true,
        last_applied_time: Some(time("2025-03-04T05:06:07Z")),
        last_applied_hash: Some(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
        outputs: Some(strings(&[
            ("cluster_version", "1.31"),
            ("fargate_profiles", "{\"kube-system\":\"arn:aws:eks:x\"}"),
        ])),
        conditions: vec![
            XpCondition {
                type_: "Synced".into(),
                status: "True".into(),
                reason: "ReconcileSuccess".into(),
                message: None,
                last_transition_time: time("2025-03-04T05:06:07Z"),
                observed_generation: Some(1),
            },
            XpCondition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "Creating".into(),
                message: Some("terraform apply in progress".into()),
                last_transition_time: time("2025-03-04T05:06:08Z"),
                observed_generation: None,
            },
        ],
        observed_generation: Some(1),
    };
    let patched = api
        .patch_status(
            "round-trip",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref(), Some(&status));
    let got = api.get_status("round-trip").await.unwrap();
    assert_eq!(got.status.as_ref(), Some(&status));
    assert_eq!(got.spec, spec);

    ns.delete().await;
}

// ---------------------------------------------------------------------------------------------
// Control plane names
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn control_plane_names_must_be_valid_eks_cluster_names() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "crd-names").await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns.name, &api_resource("CAPTControlPlane"));
    let create = |name: String| {
        let api = api.clone();
        async move {
            let mut manifest = control_plane(json!({}));
            manifest["metadata"] = json!({ "name": name });
            let object: DynamicObject = serde_json::from_value(manifest).unwrap();
            api.create(&PostParams::default(), &object).await
        }
    };
    const RULE: &str = "the name becomes the EKS cluster name, which AWS limits to 1-100 characters: letters, digits, '-' and '_', starting with a letter or digit (CreateCluster API)";
    for bad in [
        "team.prod-eu".to_string(),
        "a".repeat(101),
        format!("{}.b", "a".repeat(60)),
    ] {
        match create(bad.clone()).await {
            Err(kube::Error::Api(status)) => assert!(
                status.code == 422 && status.message.contains(RULE),
                "{bad}: {} {}",
                status.code,
                status.message
            ),
            other => panic!("{bad}: expected a rejection, got {other:?}"),
        }
    }
    for good in [
        "team-prod-eu".to_string(),
        "a".repeat(100),
        "9-lives".to_string(),
    ] {
        let created = create(good.clone())
            .await
            .unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(created.metadata.name.as_deref(), Some(good.as_str()));
    }
    ns.delete().await;
}
