//! What the benchmark examples (`bench`, `request_costs`) share: inputs they create the same
//! way, CRD installation, reading control-plane processes' CPU time, and cleaning up.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use capt_fargate::api::conditions::READY;
use capt_fargate::api::{
    CAPTCluster, CAPTControlPlane, CAPTControlPlaneStatus, FargateProfilePhase,
    FargateProfileStatus, Workspace, WorkspaceTemplate, WorkspaceTemplateApply,
};
use capt_fargate::names;
use capt_fargate::render::eks;
use capt_fargate::status::apply::ChildState;
use capt_fargate::status::conditions::{WantedCondition, merge};

use super::support;

/// Field manager of the examples' own writes.
const MANAGER: &str = "capt-fargate-examples";

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Pid of a control-plane component: `up` writes `<dir>/run/<component>.pid` beside
/// `<dir>/kubeconfig`.
pub fn cluster_pid(kubeconfig: &Path, component: &str) -> Option<u32> {
    let path = kubeconfig.parent()?.join(format!("run/{component}.pid"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn template(file: &str, ns: &str) -> Result<WorkspaceTemplate> {
    let text = std::fs::read_to_string(
        support::repo_root()
            .join("config/workspacetemplates")
            .join(file),
    )?;
    let mut t: WorkspaceTemplate = serde_saphyr::from_str(&text)?;
    t.metadata.namespace = Some(ns.into());
    Ok(t)
}

/// Our CRDs and the third-party ones (Cluster API Cluster, provider-terraform Workspace), as
/// `support::client()` installs them on the shared control plane.
pub async fn install_crds(client: &Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crds = capt_fargate::crdgen::crds();
    let dir = support::third_party_crds_dir();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("third-party CRDs in {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&path)?;
            for doc in text
                .split("\n---")
                .filter(|d| d.contains("kind: CustomResourceDefinition"))
            {
                crds.push(serde_saphyr::from_str(doc)?);
            }
        }
    }
    for crd in crds {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .with_context(|| format!("CRD {name} not Established"))??;
    }
    Ok(())
}

/// The status the operator writes once every profile is ready.
pub fn ready_control_plane_status(cp: &CAPTControlPlane) -> CAPTControlPlaneStatus {
    let eks_name = eks::apply_name(cp);
    let mut statuses: Vec<FargateProfileStatus> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| {
            capt_fargate::status::profiles::default_profile_status(
                d.name(),
                &eks_name,
                &ChildState::Ready,
            )
        })
        .collect();
    for p in cp.spec.additional_fargate_profiles.iter().flatten() {
        statuses.push(FargateProfileStatus {
            name: p.name.clone(),
            ready: true,
            workspace_template_apply_name: Some(names::profile_apply_name(&cp.name_any(), &p.name)),
            phase: Some(FargateProfilePhase::Ready),
            failure_reason: None,
            failure_message: None,
        });
    }
    let mut desired = capt_fargate::status::profiles::conditions(&statuses);
    desired.push(WantedCondition::new(
        READY,
        true,
        "Ready",
        "control plane is ready",
    ));
    // The Cluster API contract's conditions, as the operator reports a ready control plane.
    desired.push(WantedCondition::new(
        "Available",
        true,
        "Available",
        "the EKS cluster workspace is applied and ready",
    ));
    desired.push(WantedCondition::new(
        "Paused",
        false,
        "NotPaused",
        "reconciling",
    ));
    desired.push(WantedCondition::new("Deleting", false, "NotDeleting", ""));
    desired.push(WantedCondition::new(
        "KubeconfigReady",
        true,
        "KubeconfigAvailable",
        "both kubeconfig Secrets are written and current",
    ));
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    CAPTControlPlaneStatus {
        ready: true,
        initialized: Some(true),
        phase: Some(capt_fargate::api::ControlPlanePhase::Ready),
        conditions: merge(&[], &desired, cp.metadata.generation, &now),
        fargate_profiles_summary: Some(format!("{0}/{0}", statuses.len())),
        fargate_profiles: statuses,
        observed_generation: cp.metadata.generation,
        initialization: Some(capt_fargate::api::ControlPlaneInitialization {
            control_plane_initialized: Some(true),
        }),
        external_managed_control_plane: Some(true),
        version: Some(cp.spec.version.clone()),
        versions: Some(vec![capt_fargate::api::StatusVersion {
            version: cp.spec.version.clone(),
            replicas: None,
        }]),
        ..Default::default()
    }
}

/// Removes every finalizer in a benchmark's namespace (no operator or provider runs by then,
/// and without that the namespace would stay terminating) and deletes its Workspaces, which are
/// cluster-scoped. The namespace deletion removes the rest.
pub async fn cleanup(client: &Client, ns: &str) {
    let all = ListParams::default();
    let ws_selector = ListParams::default().labels(&format!(
        "{}={}",
        names::LABEL_APPLY_NAMESPACE,
        names::label_value(ns)
    ));
    clear_finalizers(&Api::<CAPTCluster>::namespaced(client.clone(), ns), &all).await;
    clear_finalizers(
        &Api::<CAPTControlPlane>::namespaced(client.clone(), ns),
        &all,
    )
    .await;
    clear_finalizers(
        &Api::<WorkspaceTemplateApply>::namespaced(client.clone(), ns),
        &all,
    )
    .await;
    // The operator's finalizer on the Secrets its Workspaces read (`controller::secret_guard`).
    clear_finalizers(
        &Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns),
        &all,
    )
    .await;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    clear_finalizers(&workspaces, &ws_selector).await;
    if let Err(e) = workspaces
        .delete_collection(&DeleteParams::background(), &ws_selector)
        .await
    {
        eprintln!("cleanup: deleting the Workspaces of {ns}: {e}");
    }
}

/// Removes every finalizer from the objects `api` lists with `params`.
async fn clear_finalizers<K>(api: &Api<K>, params: &ListParams)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let names: Vec<String> = api
        .list_metadata(params)
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|o| !o.finalizers().is_empty())
                .map(|o| o.name_any())
                .collect()
        })
        .unwrap_or_default();
    let patch = Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } }));
    futures::stream::iter(names)
        .for_each_concurrent(32, |name| {
            let patch = &patch;
            async move {
                let _ = api.patch(&name, &PatchParams::default(), patch).await;
            }
        })
        .await;
}
