//! CAPTCluster helpers, for the tests on the plain control plane (`tests/integration/
//! infra_cluster.rs`) and on the real Cluster API manager: apply the sample, wait for it to be
//! provisioned, and check the VPC's place in the simulated provider's record.

use std::time::Duration;

use kube::{Api, Client};

use capt_fargate::api::CAPTCluster;

use super::eventually;
use super::simulated_provider::Observations;

/// Applies `config/samples/captcluster.yaml` (CAPTCluster `demo-cluster` from the `vpc`
/// template) into `namespace`.
pub async fn apply_captcluster_sample(client: &Client, namespace: &str) {
    let path = super::repo_root().join("config/samples/captcluster.yaml");
    super::apply_yaml(client, namespace, &path).await;
}

/// Waits until the CAPTCluster `name` reports `status.ready` and
/// `status.initialization.provisioned`, and returns it.
pub async fn provisioned(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> CAPTCluster {
    let api: Api<CAPTCluster> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("CAPTCluster {name} provisioned"), timeout, || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let c = api.get(&name).await.map_err(|e| e.to_string())?;
            let status = c.status.clone().unwrap_or_default();
            let provisioned = status.initialization.as_ref().and_then(|i| i.provisioned);
            if status.ready && provisioned == Some(true) {
                Ok(c)
            } else {
                Err(format!("{status:?}"))
            }
        }
    })
    .await
}

/// Checks, from the simulated provider's record, that the VPC Workspace `vpc` (the
/// CAPTCluster's `status.vpcWorkspaceName`) was created before every other Workspace of
/// `others` and destroyed after all of them. An error describes the orders seen.
pub fn vpc_first_and_last(obs: &Observations, vpc: &str, others: &[String]) -> Result<(), String> {
    let at = |order: &[String], name: &str| order.iter().position(|n| n == name);
    let describe = || {
        format!(
            "created {:?}, destroyed {:?}",
            obs.create_order, obs.destroy_order
        )
    };
    let vpc_created = at(&obs.create_order, vpc)
        .ok_or_else(|| format!("VPC {vpc} never created: {}", describe()))?;
    let vpc_destroyed = at(&obs.destroy_order, vpc);
    for other in others {
        if at(&obs.create_order, other).is_some_and(|i| i < vpc_created) {
            return Err(format!(
                "{other} was created before the VPC: {}",
                describe()
            ));
        }
        match (at(&obs.destroy_order, other), vpc_destroyed) {
            (None, Some(_)) => {
                return Err(format!(
                    "the VPC was destroyed while {other} was not: {}",
                    describe()
                ));
            }
            (Some(i), Some(v)) if i > v => {
                return Err(format!(
                    "{other} was destroyed after the VPC: {}",
                    describe()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
