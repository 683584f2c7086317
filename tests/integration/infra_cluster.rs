//! CAPTCluster on the real control plane, with the simulated provider-terraform: admission,
//! the VPC apply and its connection Secret, the status, an existing VPC, pause, and the
//! deletion order (the VPC is destroyed after the control plane's workspaces) or retention.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use capt_fargate::api::{CAPTCluster, Workspace, WorkspaceTemplateApply};
use capt_fargate::names;

use crate::support::samples::{CP, Samples};
use crate::support::{self, Operator, TestNamespace, eventually, infra};

const WAIT: Duration = Duration::from_secs(60);

/// A CAPTCluster object from a manifest's JSON.
fn capt_cluster(name: &str, spec: Value) -> CAPTCluster {
    serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

fn condition(c: &CAPTCluster, type_: &str) -> Option<(String, String, String, Option<i64>)> {
    let c = c
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.status.clone(),
        c.reason.clone(),
        c.message.clone(),
        c.observed_generation,
    ))
}

async fn secret_value(client: &Client, ns: &str, name: &str, key: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?;
    let data = secret.data?;
    Some(String::from_utf8(data.get(key)?.0.clone()).unwrap())
}

#[tokio::test]
async fn capt_manifests_apply_and_admission_names_each_mistake() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "captcluster-admission").await;
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();

    // CAPT's own manifests (its docs and cluster template): accepted unchanged.
    for (name, spec) in [
        (
            "capt-sample",
            json!({ "region": "us-west-2", "vpcTemplateRef": { "name": "vpc-template", "namespace": "default" } }),
        ),
        (
            "capt-retained",
            json!({ "region": "ap-northeast-1", "vpcTemplateRef": { "name": "vpc-template" }, "retainVpcOnDelete": true }),
        ),
        (
            "capt-existing",
            json!({ "region": "us-west-2", "existingVpcId": "vpc-0a1b2c3d4e5f60718" }),
        ),
        (
            "capt-named",
            json!({ "region": "eu-central-1", "vpcTemplateRef": { "name": "vpc" }, "vpcConfig": { "name": "my-custom-vpc" }, "workspaceTemplateApplyName": "net" }),
        ),
    ] {
        api.create(&pp, &capt_cluster(name, spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{name} {spec} refused: {e}"));
    }
    let sample = api.get("capt-named").await.unwrap();
    assert_eq!(
        serde_json::to_value(&sample.spec).unwrap(),
        json!({ "region": "eu-central-1", "vpcTemplateRef": { "name": "vpc" }, "vpcConfig": { "name": "my-custom-vpc" }, "workspaceTemplateApplyName": "net" }),
        "every field kept"
    );

    for (spec, needle) in [
        (
            json!({ "region": "us-west-2" }),
            "set exactly one of vpcTemplateRef (a new VPC from a WorkspaceTemplate) and existingVpcId",
        ),
        (
            json!({ "region": "us-west-2", "vpcTemplateRef": { "name": "vpc" }, "existingVpcId": "vpc-0a1b2c3d" }),
            "set exactly one of vpcTemplateRef",
        ),
        (
            json!({ "region": "us-west-2", "existingVpcId": "vpc-0a1b2c3d", "retainVpcOnDelete": true }),
            "retainVpcOnDelete only applies to a VPC created from vpcTemplateRef",
        ),
        (
            json!({ "region": "Tokyo", "vpcTemplateRef": { "name": "vpc" } }),
            "region must be an AWS region code such as ap-northeast-1",
        ),
        (
            json!({ "region": "us-west-2", "existingVpcId": "subnet-0a1b2c3d" }),
            "existingVpcId must be a VPC ID such as vpc-0a1b2c3d4e5f60718",
        ),
    ] {
        let err = api
            .create(&pp, &capt_cluster("bad", spec.clone()))
            .await
            .expect_err(&format!("{spec} accepted"));
        assert!(
            err.to_string().contains(needle),
            "{spec}: expected {needle:?} in {err}"
        );
    }

    // CAPT's CAPTClusterTemplate: every field optional, for ClusterClass patches.
    let gvk = kube::api::GroupVersionKind::gvk(
        "infrastructure.cluster.x-k8s.io",
        "v1beta1",
        "CAPTClusterTemplate",
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTClusterTemplate",
        "metadata": { "name": "capt-template" },
        "spec": { "template": { "spec": { "vpcTemplateRef": { "name": "vpc" } } } },
    }))
    .unwrap();
    let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let templates: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
    templates.create(&pp, &template).await.unwrap();
    ns.delete().await;
}

#[tokio::test]
async fn a_template_vpc_is_created_its_secret_published_and_its_status_reported() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "captcluster-vpc").await;
    let root = support::repo_root();
    support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    support::apply_yaml(
        &client,
        &ns.name,
        &root.join("config/samples/captcluster.yaml"),
    )
    .await;
    let operator = Operator::start(client.clone(), &ns.name);
    let provider = crate::support::simulated_provider::SimulatedProvider::start(
        client.clone(),
        &ns.name,
        Duration::from_millis(100),
    );
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    let c = infra::provisioned(&client, &ns.name, CP, WAIT).await;

    // The apply: from the vpc template, writing the Secret the control plane waits for.
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    let apply = applies.get(&format!("{CP}-vpc")).await.unwrap();
    assert_eq!(apply.spec.template_ref.name, "vpc");
    let secret_ref = apply.spec.write_connection_secret_to_ref.clone().unwrap();
    assert_eq!(
        (secret_ref.namespace.as_str(), secret_ref.name.as_str()),
        (ns.name.as_str(), "demo-cluster-vpc-connection")
    );
    assert!(
        apply
            .finalizers()
            .contains(&names::IN_USE_FINALIZER.to_string())
    );
    let vpc_id = secret_value(&client, &ns.name, &secret_ref.name, "vpc_id")
        .await
        .expect("vpc_id published");
    let vpc_config = secret_value(&client, &ns.name, &secret_ref.name, "vpc_config")
        .await
        .expect("vpc_config published");
    let var_file = hcl::parse(&vpc_config).expect("vpc_config is an HCL var file");
    let keys: Vec<&str> = var_file.attributes().map(|a| a.key()).collect();
    assert_eq!(keys, ["vpc_id", "private_subnets", "public_subnets"]);

    // The status.
    let status = c.status.clone().unwrap();
    assert_eq!(status.vpc_id.as_deref(), Some(vpc_id.as_str()));
    assert!(vpc_id.starts_with("vpc-"), "{vpc_id}");
    let zones: Vec<&str> = status
        .failure_domains
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        zones,
        ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
    );
    let workspace = apply.status.as_ref().unwrap().workspace_name.clone();
    assert_eq!(status.vpc_workspace_name, workspace);
    assert!(status.workspace_template_status.as_ref().unwrap().ready);
    let generation = c.metadata.generation;
    for (type_, want, reason) in [
        ("VPCReady", "True", "VPCCreated"),
        ("Ready", "True", "VPCCreated"),
        ("Paused", "False", "NotPaused"),
        ("Deleting", "False", "NotDeleting"),
    ] {
        let (status, why, _, observed) = condition(&c, type_).unwrap_or_else(|| panic!("{type_}"));
        assert_eq!((status.as_str(), why.as_str()), (want, reason), "{type_}");
        assert_eq!(observed, generation, "{type_} observedGeneration");
    }
    assert_eq!(status.observed_generation, generation);

    // A converged CAPTCluster is not written again, nor its apply, nor after a restart.
    let version = c.resource_version();
    let apply_version = applies
        .get(&format!("{CP}-vpc"))
        .await
        .unwrap()
        .resource_version();
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.stop().await;
    let operator = Operator::start(client.clone(), &ns.name);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.get(CP).await.unwrap().resource_version(), version);
    assert_eq!(
        applies
            .get(&format!("{CP}-vpc"))
            .await
            .unwrap()
            .resource_version(),
        apply_version
    );

    operator.stop().await;
    provider.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn an_existing_vpc_is_described_by_the_lookup_template() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "captcluster-existing").await;
    let root = support::repo_root();
    support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    let existing = "vpc-0123456789abcdef0";
    api.create(
        &PostParams::default(),
        &capt_cluster(
            CP,
            json!({ "region": "eu-west-1", "existingVpcId": existing }),
        ),
    )
    .await
    .unwrap();
    let operator = Operator::start(client.clone(), &ns.name);
    let provider = crate::support::simulated_provider::SimulatedProvider::start(
        client.clone(),
        &ns.name,
        Duration::from_millis(100),
    );
    let c = infra::provisioned(&client, &ns.name, CP, WAIT).await;
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    let apply = applies.get(&format!("{CP}-vpc")).await.unwrap();
    assert_eq!(apply.spec.template_ref.name, "existing-vpc");
    assert_eq!(apply.spec.variables.as_ref().unwrap()["vpc_id"], existing);
    assert_eq!(
        secret_value(&client, &ns.name, "demo-cluster-vpc-connection", "vpc_id")
            .await
            .as_deref(),
        Some(existing),
        "the lookup publishes the existing VPC's description"
    );
    assert_eq!(c.status.as_ref().unwrap().vpc_id.as_deref(), Some(existing));
    let (status, reason, message, _) = condition(&c, "VPCReady").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        (
            "True",
            "ExistingVPCUsed",
            "using the existing VPC vpc-0123456789abcdef0"
        )
    );
    operator.stop().await;
    provider.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn a_paused_cluster_gets_no_vpc_until_it_is_unpaused() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "captcluster-pause").await;
    let root = support::repo_root();
    support::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "cluster.x-k8s.io",
            "v1beta2",
            "Cluster",
        )),
    );
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": { "name": CP }, "spec": { "paused": true },
    }))
    .unwrap();
    clusters
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &capt_cluster(
            CP,
            json!({ "region": "ap-northeast-1", "vpcTemplateRef": { "name": "vpc" } }),
        ),
    )
    .await
    .unwrap();
    let operator = Operator::start(client.clone(), &ns.name);
    let provider = crate::support::simulated_provider::SimulatedProvider::start(
        client.clone(),
        &ns.name,
        Duration::from_millis(100),
    );
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    let paused = eventually("Paused=True", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&c, "Paused") {
                Some((s, _, m, _)) if s == "True" => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        paused.starts_with("Cluster demo-cluster is paused (spec.paused)"),
        "{paused}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        applies
            .get_opt(&format!("{CP}-vpc"))
            .await
            .unwrap()
            .is_none(),
        "no VPC apply while the Cluster is paused"
    );
    let c = api.get(CP).await.unwrap();
    assert!(
        c.finalizers().is_empty(),
        "not even its own finalizer is written while paused"
    );

    // Unpaused: the VPC comes; then the annotation pauses again, and a spec change waits.
    clusters
        .patch(
            CP,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "paused": false } })),
        )
        .await
        .unwrap();
    infra::provisioned(&client, &ns.name, CP, WAIT).await;
    let (status, ..) = condition(&api.get(CP).await.unwrap(), "Paused").unwrap();
    assert_eq!(status, "False");
    api.patch(
        CP,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": { "annotations": { "cluster.x-k8s.io/paused": "" } },
            "spec": { "vpcConfig": { "name": "renamed" } },
        })),
    )
    .await
    .unwrap();
    eventually("Paused=True by annotation", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&c, "Paused") {
                Some((s, ..)) if s == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let apply = applies.get(&format!("{CP}-vpc")).await.unwrap();
    assert_eq!(
        apply.spec.variables.as_ref().unwrap()["vpc_name"],
        "demo-cluster-vpc",
        "the apply is not changed while paused"
    );
    api.patch(
        CP,
        &PatchParams::default(),
        &Patch::Merge(
            json!({ "metadata": { "annotations": { "cluster.x-k8s.io/paused": null } } }),
        ),
    )
    .await
    .unwrap();
    eventually("the change applied after the pause", WAIT, || {
        let applies = applies.clone();
        async move {
            let a = applies
                .get(&format!("{CP}-vpc"))
                .await
                .map_err(|e| e.to_string())?;
            let name = a.spec.variables.unwrap_or_default()["vpc_name"].clone();
            if name == "renamed" { Ok(()) } else { Err(name) }
        }
    })
    .await;
    operator.stop().await;
    provider.stop().await;
    ns.delete().await;
}

/// The sample cluster (templates, Cluster, CAPTControlPlane) with the sample CAPTCluster
/// instead of a hand-written VPC Secret, converged.
async fn converged_cluster(prefix: &str, retain: bool) -> (Samples, Operator) {
    let samples = Samples::start(prefix, Duration::from_millis(100)).await;
    infra::apply_captcluster_sample(&samples.client, &samples.ns.name).await;
    if retain {
        Api::<CAPTCluster>::namespaced(samples.client.clone(), &samples.ns.name)
            .patch(
                CP,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "retainVpcOnDelete": true } })),
            )
            .await
            .unwrap();
    }
    let operator = Operator::start(samples.client.clone(), &samples.ns.name);
    samples.all_ready_within(4, WAIT).await;
    (samples, operator)
}

#[tokio::test]
async fn deleting_the_cluster_destroys_the_vpc_after_its_control_plane_and_leaves_nothing() {
    let (samples, operator) = converged_cluster("captcluster-delete", false).await;
    let client = samples.client.clone();
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &samples.ns.name);
    let c = infra::provisioned(&client, &samples.ns.name, CP, WAIT).await;
    let vpc_workspace = c.status.unwrap().vpc_workspace_name.unwrap();

    // Both at once, as a Cluster's deletion or `kubectl delete -f` does.
    api.delete(CP, &Default::default()).await.unwrap();
    samples.cps().delete(CP, &Default::default()).await.unwrap();
    let waiting = eventually("the CAPTCluster waits for the control plane", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&c, "Deleting") {
                Some((s, _, m, _)) if s == "True" && m.contains("CAPTControlPlane") => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(
        waiting.contains("waiting for CAPTControlPlane demo-cluster to be deleted first"),
        "{waiting}"
    );
    eventually("everything gone", Duration::from_secs(90), || {
        let samples = &samples;
        let api = api.clone();
        async move {
            let c = api.get_opt(CP).await.map_err(|e| e.to_string())?;
            let cp = samples.cps().get_opt(CP).await.map_err(|e| e.to_string())?;
            let applies = samples.applies().list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let workspaces = samples.workspaces().await;
            let secret = samples.secrets().get_opt("demo-cluster-vpc-connection").await.map_err(|e| e.to_string())?;
            if c.is_none() && cp.is_none() && applies.items.is_empty() && workspaces.is_empty() && secret.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "CAPTCluster {:?}, control plane {}, applies {:?}, workspaces {:?}, VPC secret {}",
                    c.map(|c| c.status),
                    cp.is_some(),
                    applies.items.iter().map(|a| a.name_any()).collect::<Vec<_>>(),
                    workspaces.iter().map(|w| w.name_any()).collect::<Vec<_>>(),
                    secret.is_some()
                ))
            }
        }
    })
    .await;
    let order = samples
        .provider
        .observations
        .lock()
        .unwrap()
        .destroy_order
        .clone();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(
        order.last(),
        Some(&vpc_workspace),
        "the VPC is destroyed last, after the profiles and the EKS cluster: {order:?}"
    );
    assert!(samples.provider.overlaps().is_empty());
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn retain_vpc_on_delete_keeps_the_vpc_workspace_and_its_secret() {
    let (samples, operator) = converged_cluster("captcluster-retain", true).await;
    let client = samples.client.clone();
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &samples.ns.name);
    let c = infra::provisioned(&client, &samples.ns.name, CP, WAIT).await;
    let vpc_workspace = c.status.unwrap().vpc_workspace_name.unwrap();
    api.delete(CP, &Default::default()).await.unwrap();
    // The apply goes too (garbage-collected after its owner), keeping its Workspace.
    eventually("CAPTCluster and its apply gone", WAIT, || {
        let api = api.clone();
        let applies = samples.applies();
        async move {
            let c = api.get_opt(CP).await.map_err(|e| e.to_string())?;
            let apply = applies
                .get_opt(&format!("{CP}-vpc"))
                .await
                .map_err(|e| e.to_string())?;
            if c.is_none() && apply.is_none() {
                Ok(())
            } else {
                Err(format!(
                    "CAPTCluster {}, apply {:?}",
                    c.is_some(),
                    apply.map(|a| a.finalizers().to_vec())
                ))
            }
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ws = Api::<Workspace>::all(client.clone())
        .get(&vpc_workspace)
        .await
        .expect("the VPC Workspace is kept");
    assert!(ws.metadata.deletion_timestamp.is_none());
    assert!(
        samples
            .secrets()
            .get_opt("demo-cluster-vpc-connection")
            .await
            .unwrap()
            .is_some(),
        "the VPC connection Secret is kept"
    );
    let destroys = samples
        .provider
        .observations
        .lock()
        .unwrap()
        .destroys
        .clone();
    assert!(!destroys.contains_key(&vpc_workspace), "{destroys:?}");
    // The control plane still tears down, reading the kept Secret.
    samples.cps().delete(CP, &Default::default()).await.unwrap();
    eventually("control plane gone", WAIT, || {
        let cps = samples.cps();
        async move {
            match cps.get_opt(CP).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(cp) => Err(format!("{:?}", cp.status.map(|s| s.conditions))),
            }
        }
    })
    .await;
    Api::<Workspace>::all(client.clone())
        .delete(&vpc_workspace, &Default::default())
        .await
        .unwrap();
    operator.stop().await;
    samples.stop().await;
}

#[tokio::test]
async fn an_apply_name_taken_by_someone_else_is_reported_and_left_alone() {
    let client = support::client().await;
    let ns = TestNamespace::new(&client, "captcluster-taken").await;
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(client.clone(), &ns.name);
    // A WorkspaceTemplateApply of the VPC apply's name, made by hand (no owner, no label).
    let theirs: WorkspaceTemplateApply = serde_json::from_value(json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "WorkspaceTemplateApply",
        "metadata": { "name": format!("{CP}-vpc") },
        "spec": { "templateRef": { "name": "someone-elses" } },
    }))
    .unwrap();
    applies
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &capt_cluster(
            CP,
            json!({ "region": "ap-northeast-1", "vpcTemplateRef": { "name": "vpc" } }),
        ),
    )
    .await
    .unwrap();
    let operator = Operator::start(client.clone(), &ns.name);
    let message = eventually("VPCReady=False/ApplyNameConflict", WAIT, || {
        let api = api.clone();
        async move {
            let c = api.get(CP).await.map_err(|e| e.to_string())?;
            match condition(&c, "VPCReady") {
                Some((s, r, m, _)) if s == "False" && r == "ApplyNameConflict" => Ok(m),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert!(message.contains(&format!("{CP}-vpc")), "{message}");
    let after = applies.get(&format!("{CP}-vpc")).await.unwrap();
    assert_eq!(after.spec.template_ref.name, "someone-elses", "left alone");
    assert!(after.owner_references().is_empty());
    operator.stop().await;
    ns.delete().await;
}
