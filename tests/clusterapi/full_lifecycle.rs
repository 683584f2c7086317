//! The whole life of a cluster as a Cluster API user sees it, on the real CAPI manager: one
//! apply of the samples (Cluster → CAPTCluster + CAPTControlPlane with two additional Fargate
//! profiles, and the WorkspaceTemplates) ends with an available Cluster, and one delete of the
//! Cluster ends with nothing of it left, AWS resources created and destroyed in dependency
//! order (from the simulated provider's record).

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Api, Client, ResourceExt};

use capt_fargate::api::Workspace;
use capt_fargate::names;

use crate::control_plane_contract::{cluster_until, is, start};
use crate::support::samples::CP;
use crate::support::{capi, eventually, infra};

const WAIT: Duration = Duration::from_secs(150);

/// The Cluster conditions that must all be True for the Cluster to be in use (v1beta2).
const TRUE_CONDITIONS: &[&str] = &[
    "Available",
    "InfrastructureReady",
    "ControlPlaneInitialized",
    "ControlPlaneAvailable",
    "RemoteConnectionProbe",
    "WorkersAvailable",
];

/// The Workspace (cluster-scoped) of the apply `namespace/apply`, by the annotation the
/// operator sets on it.
fn workspace_of(workspaces: &[Workspace], namespace: &str, apply: &str) -> String {
    let key = format!("{namespace}/{apply}");
    workspaces
        .iter()
        .find(|w| w.annotations().get(names::ANNOTATION_APPLY) == Some(&key))
        .unwrap_or_else(|| panic!("no Workspace for apply {key}"))
        .name_any()
}

/// Every object left in `namespace`, as `kind/name`, of every listable namespaced resource the
/// API server serves, except what the namespace and the test itself own: the `default`
/// ServiceAccount, the `kube-root-ca.crt` ConfigMap, Events, and the `keep` objects.
async fn left_in_namespace(
    client: &Client,
    discovery: &Discovery,
    namespace: &str,
    keep: &[&str],
) -> Vec<String> {
    let mut left = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || resource.kind == "Event"
            {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            for obj in list.items {
                let id = format!("{}/{}", resource.kind, obj.name_any());
                let default = matches!(
                    id.as_str(),
                    "ServiceAccount/default" | "ConfigMap/kube-root-ca.crt"
                );
                if !default && !keep.contains(&id.as_str()) {
                    left.push(id);
                }
            }
        }
    }
    left.sort();
    left
}

/// One apply: Cluster `Available` with every condition a user looks at True, phase
/// `Provisioned`, all four profiles Ready, the VPC created before the EKS cluster before the
/// profiles (one at a time, spec order). One delete of the Cluster: nothing of it left in the
/// namespace or cluster-wide, destroyed in the reverse order.
#[tokio::test]
async fn one_apply_gives_an_available_cluster_and_one_delete_leaves_nothing() {
    let (samples, operator) = start("capi-full").await;
    let ns = samples.ns.name.clone();
    let clusters = capi::clusters(&samples.client, &ns);

    let cluster = cluster_until(&clusters, "the Cluster Available and Provisioned", |c| {
        c.data["status"]["phase"] == "Provisioned"
            && TRUE_CONDITIONS.iter().all(|t| is(c, t, "True"))
    })
    .await;
    // What CAPI recorded from the CAPTCluster's and control plane's initialization.
    let status = &cluster.data["status"];
    assert_eq!(
        status["initialization"]["infrastructureProvisioned"], true,
        "{status}"
    );
    assert_eq!(
        status["initialization"]["controlPlaneInitialized"], true,
        "{status}"
    );
    // No MachineDeployments or MachinePools: CAPI counts a Fargate-only cluster's workers as
    // available (reason NoWorkers), so Available needs nothing more from us.
    let workers = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "WorkersAvailable"))
        .map(|c| c["reason"].clone());
    assert_eq!(workers, Some("NoWorkers".into()), "{status}");
    let cp = samples.all_ready_within(4, WAIT).await;
    let profiles = cp.status.clone().unwrap().fargate_profiles;
    assert_eq!(
        profiles.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["kube-system", "karpenter", "monitoring", "batch-jobs"],
        "status.fargateProfiles: {profiles:?}"
    );

    // The provider's record: VPC, then EKS (with its default profiles), then the additional
    // profiles in spec order.
    let workspaces = samples.workspaces().await;
    let mut expected = vec![
        workspace_of(&workspaces, &ns, &names::vpc_apply_name(CP)),
        workspace_of(&workspaces, &ns, &names::eks_apply_name(CP)),
    ];
    for p in &profiles[2..] {
        let apply = p
            .workspace_template_apply_name
            .as_deref()
            .unwrap_or_else(|| panic!("profile {} has no apply in status", p.name));
        expected.push(workspace_of(&workspaces, &ns, apply));
    }
    let vpc = infra::provisioned(&samples.client, &ns, CP, WAIT)
        .await
        .status
        .unwrap()
        .vpc_workspace_name;
    assert_eq!(vpc.as_deref(), Some(expected[0].as_str()));
    assert_eq!(
        samples.provider.observations.lock().unwrap().create_order,
        expected,
        "created: VPC, EKS, then the profiles in spec order"
    );
    // What the Cluster owns now, to show the check below sees it before the delete.
    let discovery = Discovery::new(samples.client.clone()).run().await.unwrap();
    let keep = ["ServiceAccount/eks-admin"];
    let before = left_in_namespace(&samples.client, &discovery, &ns, &keep).await;
    for id in [
        format!("Cluster/{CP}"),
        format!("CAPTCluster/{CP}"),
        format!("CAPTControlPlane/{CP}"),
        format!("WorkspaceTemplateApply/{}", names::vpc_apply_name(CP)),
        format!("Secret/{}", names::vpc_connection_secret(CP)),
        format!("Secret/{}", names::eks_connection_secret(CP)),
        format!("Secret/{CP}-kubeconfig"),
        format!("Secret/{CP}-user-kubeconfig"),
    ] {
        assert!(
            before.contains(&id),
            "{id} not found before the delete: {before:?}"
        );
    }

    // `kubectl delete cluster`.
    clusters.delete(CP, &DeleteParams::default()).await.unwrap();
    let templates: BTreeSet<String> = [
        "eks-controlplane",
        "eks-fargate-profile",
        "vpc",
        "existing-vpc",
    ]
    .iter()
    .map(|t| format!("WorkspaceTemplate/{t}"))
    .collect();
    let all_workspaces: Api<Workspace> = Api::all(samples.client.clone());
    let prefix = format!("{ns}/");
    eventually("nothing of the Cluster left", WAIT, || async {
        let left: Vec<String> = left_in_namespace(&samples.client, &discovery, &ns, &keep)
            .await
            .into_iter()
            // The WorkspaceTemplates were applied beside the Cluster and belong to no Cluster.
            .filter(|id| !templates.contains(id))
            .collect();
        // Cluster-wide: the Workspaces of this namespace's applies, found by label or
        // annotation.
        let workspaces: Vec<String> = all_workspaces
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|w| {
                w.labels().get(names::LABEL_APPLY_NAMESPACE) == Some(&ns)
                    || w.annotations()
                        .get(names::ANNOTATION_APPLY)
                        .is_some_and(|a| a.starts_with(&prefix))
            })
            .map(|w| w.name_any())
            .collect();
        if left.is_empty() && workspaces.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "in the namespace {left:?}, Workspaces {workspaces:?}"
            ))
        }
    })
    .await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(
        samples.provider.observations.lock().unwrap().destroy_order,
        reversed,
        "destroyed: the profiles in reverse spec order, then EKS, then the VPC"
    );
    operator.stop().await;
    samples.stop().await;
}
