//! The control-plane contract as the real CAPI manager reads it.

use std::time::Duration;

use kube::Api;
use kube::api::{DeleteParams, DynamicObject};

use crate::support::samples::{CP, Samples};
use crate::support::{Operator, capi, eventually};

/// The Cluster `name` once `check` accepts it, or a panic naming what was last seen.
async fn cluster_until(
    api: &Api<DynamicObject>,
    what: &str,
    timeout: Duration,
    check: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    eventually(what, timeout, || {
        let api = api.clone();
        let check = &check;
        async move {
            let cluster = api.get(CP).await.map_err(|e| e.to_string())?;
            if check(&cluster) {
                Ok(cluster)
            } else {
                Err(format!(
                    "phase {:?}, endpoint {}, conditions: {}",
                    cluster.data["status"]["phase"],
                    cluster.data["spec"]["controlPlaneEndpoint"],
                    capi::conditions_summary(&cluster)
                ))
            }
        }
    })
    .await
}

/// CAPT's sample Cluster (v1beta1) and CAPTControlPlane, reconciled by the real CAPI manager
/// and the operator: CAPI sees the control plane initialized, and deleting the Cluster tears
/// everything down.
#[tokio::test]
async fn cluster_with_capt_control_plane_initializes_and_deletes() {
    let client = capi::client().await;
    let samples = Samples::start_on(client.clone(), "capi-init", Duration::ZERO).await;
    samples.create_vpc_secret().await;
    let operator = Operator::start(client.clone(), &samples.ns.name);
    let clusters = capi::clusters(&client, &samples.ns.name);

    cluster_until(
        &clusters,
        "the Cluster's ControlPlaneInitialized=True",
        Duration::from_secs(120),
        |c| capi::condition_status(c, "ControlPlaneInitialized").as_deref() == Some("True"),
    )
    .await;
    samples.all_ready_within(4, Duration::from_secs(60)).await;

    clusters.delete(CP, &DeleteParams::default()).await.unwrap();
    eventually(
        "the Cluster, its control plane and every Workspace gone",
        Duration::from_secs(120),
        || async {
            let left_cluster = clusters.get_opt(CP).await.map_err(|e| e.to_string())?;
            let left_cp = samples.cps().get_opt(CP).await.map_err(|e| e.to_string())?;
            let left_ws = samples.workspaces().await;
            if left_cluster.is_none() && left_cp.is_none() && left_ws.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "cluster {}, control plane {}, {} Workspaces",
                    left_cluster.is_some(),
                    left_cp.is_some(),
                    left_ws.len()
                ))
            }
        },
    )
    .await;
    operator.stop().await;
    samples.stop().await;
}
