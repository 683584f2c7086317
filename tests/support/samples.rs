//! The shipped samples in a fresh namespace, with the simulated provider answering: the
//! starting point of the lifecycle, fault and benchmark-style tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use capt_fargate::api::{CAPTControlPlane, Workspace, WorkspaceTemplateApply};
use capt_fargate::names;

use super::simulated_provider::SimulatedProvider;
use super::{TestNamespace, eventually};

/// Name of the sample control plane.
pub const CP: &str = "demo-cluster";

/// Templates, Cluster and CAPTControlPlane from the shipped files, and the simulated
/// provider. The connection secrets do not exist yet, and no operator runs.
pub struct Samples {
    /// Admin client.
    pub client: Client,
    /// The namespace everything lives in.
    pub ns: TestNamespace,
    /// The simulated provider-terraform.
    pub provider: SimulatedProvider,
}

impl Samples {
    /// Applies the samples into a new namespace; each Fargate profile create or destroy takes
    /// `delay` at the provider.
    pub async fn start(prefix: &str, delay: Duration) -> Samples {
        Self::start_with(
            super::client().await,
            prefix,
            delay,
            SimulatedProvider::start,
        )
        .await
    }

    /// Like [`Self::start`], on the cluster of `client` (e.g. the Cluster API management
    /// cluster of [`super::capi`]).
    pub async fn start_on(client: Client, prefix: &str, delay: Duration) -> Samples {
        Self::start_with(client, prefix, delay, SimulatedProvider::start).await
    }

    /// Like [`Self::start`], with a provider that always reconciles Workspaces concurrently
    /// (see [`SimulatedProvider::start_concurrent`]).
    pub async fn start_concurrent(prefix: &str, delay: Duration) -> Samples {
        Self::start_with(
            super::client().await,
            prefix,
            delay,
            SimulatedProvider::start_concurrent,
        )
        .await
    }

    /// Like [`Self::start`], on the cluster of `client`, with the provider `provider` starts.
    pub async fn start_with(
        client: Client,
        prefix: &str,
        delay: Duration,
        provider: fn(Client, &str, Duration) -> SimulatedProvider,
    ) -> Samples {
        let ns = TestNamespace::new(&client, prefix).await;
        let root = super::repo_root();
        super::apply_yaml(&client, &ns.name, &root.join("config/workspacetemplates")).await;
        super::apply_yaml(&client, &ns.name, &root.join("config/samples/cluster.yaml")).await;
        super::apply_yaml(
            &client,
            &ns.name,
            &root.join("config/samples/captcontrolplane.yaml"),
        )
        .await;
        let provider = provider(client.clone(), &ns.name, delay);
        Samples {
            client,
            ns,
            provider,
        }
    }

    /// Stops the provider and deletes the namespace.
    pub async fn stop(self) {
        self.provider.stop().await;
        self.ns.delete().await;
    }

    /// CAPTControlPlanes of the namespace.
    pub fn cps(&self) -> Api<CAPTControlPlane> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// WorkspaceTemplateApplies of the namespace.
    pub fn applies(&self) -> Api<WorkspaceTemplateApply> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// Secrets of the namespace.
    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// The Fargate profile applies.
    pub async fn profile_applies(&self) -> Vec<WorkspaceTemplateApply> {
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            names::LABEL_COMPONENT,
            names::COMPONENT_FARGATE_PROFILE
        ));
        self.applies().list(&lp).await.unwrap().items
    }

    /// Workspaces of applies in this namespace (they are cluster-scoped).
    pub async fn workspaces(&self) -> Vec<Workspace> {
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            names::LABEL_APPLY_NAMESPACE,
            self.ns.name
        ));
        Api::<Workspace>::all(self.client.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
    }

    /// The VPC connection secret, as the VPC workspace would write it.
    pub async fn create_vpc_secret(&self) {
        let text = std::fs::read_to_string(super::repo_root().join("config/samples/secrets.yaml"))
            .unwrap();
        let doc = text
            .split("\n---")
            .find(|d| d.contains("-vpc-connection"))
            .expect("sample VPC secret");
        let obj: kube::api::DynamicObject = serde_saphyr::from_str(doc).unwrap();
        super::apply_dynamic(&self.client, &self.ns.name, obj)
            .await
            .unwrap();
    }

    /// Waits until the status lists `total` profiles, all Ready, for the current generation.
    pub async fn all_ready_within(&self, total: usize, timeout: Duration) -> CAPTControlPlane {
        let api = self.cps();
        eventually(
            &format!("{total} Fargate profiles ready in {}", self.ns.name),
            timeout,
            || {
                let api = api.clone();
                async move {
                    let cp = api.get(CP).await.map_err(|e| e.to_string())?;
                    let status = cp.status.clone().unwrap_or_default();
                    let ready = status.fargate_profiles.iter().filter(|p| p.ready).count();
                    if status.fargate_profiles.len() == total
                        && ready == total
                        && cp.metadata.generation == status.observed_generation
                    {
                        Ok(cp)
                    } else {
                        Err(format!("{:?}", status.fargate_profiles))
                    }
                }
            },
        )
        .await
    }

    /// Merge-patches the control plane's spec.
    pub async fn patch_spec(&self, spec: serde_json::Value) {
        self.cps()
            .patch(
                CP,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .unwrap();
    }
}

/// An additional profile selecting one namespace, with the shipped template.
pub fn profile(name: &str, namespace: &str) -> serde_json::Value {
    json!({ "name": name, "selectors": [{ "namespace": namespace }], "workspaceTemplateRef": { "name": "eks-fargate-profile" } })
}
