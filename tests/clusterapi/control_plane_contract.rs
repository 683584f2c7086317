//! The control-plane and infrastructure-cluster contracts as the real CAPI manager reads them:
//! CAPT's sample Cluster (v1beta1), CAPTCluster and CAPTControlPlane, reconciled by the real
//! CAPI manager and the operator, with the simulated provider reporting the management
//! cluster's own API server as the EKS cluster's, so the kubeconfig Secret the operator writes
//! (with a real ServiceAccount token as its credential) really connects.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use capt_fargate::api::Workspace;
use capt_fargate::aws::token::StaticTokenSource;
use capt_fargate::names;

use crate::support::samples::{CP, Samples, profile};
use crate::support::simulated_provider::FAIL_ANNOTATION;
use crate::support::{Operator, capi, eventually, infra};

const WAIT: Duration = Duration::from_secs(150);

/// The Cluster once `check` accepts it, or a panic naming what was last seen.
pub(crate) async fn cluster_until(
    api: &Api<DynamicObject>,
    what: &str,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    eventually(what, WAIT, || {
        let api = api.clone();
        let check = &check;
        async move {
            let cluster = api.get(CP).await.map_err(|e| e.to_string())?;
            if check(&cluster) {
                Ok(cluster)
            } else {
                Err(format!(
                    "phase {}, endpoint {}, conditions: {}",
                    cluster.data["status"]["phase"],
                    cluster.data["spec"]["controlPlaneEndpoint"],
                    capi::conditions_summary(&cluster)
                ))
            }
        }
    })
    .await
}

pub(crate) fn is(c: &DynamicObject, type_: &str, status: &str) -> bool {
    capi::condition_status(c, type_).as_deref() == Some(status)
}

/// The samples on the management cluster with the CAPTCluster, the operator minting a real
/// token for the management cluster, and the simulator reporting that cluster as EKS's.
pub(crate) async fn start(prefix: &str) -> (Samples, Operator) {
    let client = capi::client().await;
    let samples = Samples::start_on(client.clone(), prefix, Duration::from_millis(100)).await;
    samples
        .provider
        .report_test_cluster(&capi::kubeconfig().await);
    infra::apply_captcluster_sample(&client, &samples.ns.name).await;
    let token = capi::admin_token(&client, &samples.ns.name, "eks-admin").await;
    let operator = Operator::start_with(client, &samples.ns.name, move |ctx| {
        ctx.token_source = Arc::new(StaticTokenSource::new(token));
    });
    (samples, operator)
}

/// Provisioned as Cluster API sees it, no write fight in a quiet minute, pause honoured, and
/// deleting the Cluster tears everything down, the VPC last.
#[tokio::test]
async fn a_capt_cluster_provisions_connects_pauses_and_deletes_under_the_real_manager() {
    let (samples, operator) = start("capi-life").await;
    let clusters = capi::clusters(&samples.client, &samples.ns.name);

    let cluster = cluster_until(
        &clusters,
        "the Cluster provisioned, connected and available",
        |c| {
            c.data["status"]["phase"] == "Provisioned"
                && is(c, "InfrastructureReady", "True")
                && is(c, "ControlPlaneInitialized", "True")
                && is(c, "ControlPlaneAvailable", "True")
                && is(c, "RemoteConnectionProbe", "True")
        },
    )
    .await;
    // CAPI copied the endpoint the operator set from the "EKS" connection secret: the
    // management cluster's own API server.
    let server = kube::config::Kubeconfig::read_from(capi::kubeconfig().await)
        .unwrap()
        .clusters[0]
        .cluster
        .clone()
        .unwrap()
        .server
        .unwrap();
    let endpoint = &cluster.data["spec"]["controlPlaneEndpoint"];
    assert_eq!(
        format!(
            "https://{}:{}",
            endpoint["host"].as_str().unwrap(),
            endpoint["port"]
        ),
        server
    );
    samples.all_ready_within(4, WAIT).await;

    // A quiet minute: neither CAPI nor the operator writes the control plane.
    let before = samples.cps().get(CP).await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let after = samples.cps().get(CP).await.unwrap().resource_version();
    assert_eq!(
        before, after,
        "the control plane was written in a quiet minute"
    );

    // Paused: a new profile is not created until the Cluster is unpaused.
    let pause = |paused: bool| json!({ "spec": { "paused": paused } });
    clusters
        .patch(CP, &PatchParams::default(), &Patch::Merge(&pause(true)))
        .await
        .unwrap();
    eventually("the control plane Paused=True", WAIT, || async {
        let cp = samples.cps().get(CP).await.map_err(|e| e.to_string())?;
        let paused = cp.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Paused")
                .map(|c| c.status.clone())
        });
        if paused.as_deref() == Some("True") {
            Ok(())
        } else {
            Err(format!("Paused {paused:?}"))
        }
    })
    .await;
    let profiles = samples
        .cps()
        .get(CP)
        .await
        .unwrap()
        .spec
        .additional_fargate_profiles;
    let mut spec_profiles: Vec<serde_json::Value> = profiles
        .unwrap_or_default()
        .into_iter()
        .map(|p| serde_json::to_value(p).unwrap())
        .collect();
    spec_profiles.push(profile("paused-extra", "extra"));
    samples
        .patch_spec(json!({ "additionalFargateProfiles": spec_profiles }))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        samples.profile_applies().await.len(),
        2,
        "no apply may be created while the Cluster is paused"
    );
    clusters
        .patch(CP, &PatchParams::default(), &Patch::Merge(&pause(false)))
        .await
        .unwrap();
    samples.all_ready_within(5, WAIT).await;

    // Deleting the Cluster: CAPI deletes the control plane and the CAPTCluster; the VPC goes
    // after the workspaces that read its connection secret.
    let vpc = infra::provisioned(&samples.client, &samples.ns.name, CP, WAIT)
        .await
        .status
        .unwrap()
        .vpc_workspace_name
        .expect("the VPC Workspace's name");
    let others: Vec<String> = samples
        .workspaces()
        .await
        .iter()
        .map(|w| w.name_any())
        .filter(|n| *n != vpc)
        .collect();
    clusters.delete(CP, &DeleteParams::default()).await.unwrap();
    eventually(
        "the Cluster, its control plane, CAPTCluster and every Workspace gone",
        WAIT,
        || async {
            let left_cluster = clusters.get_opt(CP).await.map_err(|e| e.to_string())?;
            let left_cp = samples.cps().get_opt(CP).await.map_err(|e| e.to_string())?;
            let left_ws = samples.workspaces().await;
            if left_cluster.is_none() && left_cp.is_none() && left_ws.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "cluster {}, control plane {}, Workspaces {:?}",
                    left_cluster.is_some(),
                    left_cp.is_some(),
                    left_ws.iter().map(|w| w.name_any()).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    let order = {
        let obs = samples.provider.observations.lock().unwrap();
        infra::vpc_first_and_last(&obs, &vpc, &others)
    };
    order.unwrap_or_else(|e| panic!("{e}"));
    operator.stop().await;
    samples.stop().await;
}

/// A failed EKS workspace turns the control plane's `Available`, and so the Cluster's
/// `ControlPlaneAvailable`, False; initialization stays.
#[tokio::test]
async fn a_failed_eks_workspace_makes_the_cluster_control_plane_unavailable() {
    let (samples, operator) = start("capi-avail").await;
    let clusters = capi::clusters(&samples.client, &samples.ns.name);
    cluster_until(&clusters, "ControlPlaneAvailable=True", |c| {
        is(c, "ControlPlaneAvailable", "True")
    })
    .await;
    let eks = names::eks_apply_name(CP);
    let workspace = samples
        .workspaces()
        .await
        .into_iter()
        .find(|w| w.annotations()[names::ANNOTATION_APPLY].ends_with(&format!("/{eks}")))
        .expect("the EKS Workspace")
        .name_any();
    let fail = |message: Option<&str>| json!({ "metadata": { "annotations": { FAIL_ANNOTATION: message } } });
    let workspaces: Api<Workspace> = Api::all(samples.client.clone());
    workspaces
        .patch(
            &workspace,
            &PatchParams::default(),
            &Patch::Merge(&fail(Some("AccessDeniedException: not authorized"))),
        )
        .await
        .unwrap();
    let cluster = cluster_until(&clusters, "ControlPlaneAvailable=False", |c| {
        is(c, "ControlPlaneAvailable", "False")
    })
    .await;
    assert!(is(&cluster, "ControlPlaneInitialized", "True"));
    workspaces
        .patch(
            &workspace,
            &PatchParams::default(),
            &Patch::Merge(&fail(None)),
        )
        .await
        .unwrap();
    cluster_until(&clusters, "ControlPlaneAvailable=True again", |c| {
        is(c, "ControlPlaneAvailable", "True")
    })
    .await;
    clusters.delete(CP, &DeleteParams::default()).await.unwrap();
    eventually("the Cluster gone", WAIT, || async {
        match clusters.get_opt(CP).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(c) => Err(capi::conditions_summary(&c)),
        }
    })
    .await;
    operator.stop().await;
    samples.stop().await;
}
