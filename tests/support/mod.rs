//! Shared by every integration test: the real control plane, a fresh namespace per test, the
//! CRDs, the operator and the simulated provider-terraform.
#![allow(dead_code)]

pub mod capi;
pub mod cluster;
pub mod infra;
pub mod samples;
pub mod simulated_provider;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use tokio::sync::OnceCell;

use capt_fargate::controller::{self, Context};
use capt_fargate::metrics::Metrics;

/// Repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Third-party CRDs (Cluster API Cluster, provider-terraform Workspace), kept in the
/// repository so that a fresh checkout runs its tests; `$CAPT_THIRD_PARTY_CRDS` overrides.
pub fn third_party_crds_dir() -> PathBuf {
    std::env::var_os("CAPT_THIRD_PARTY_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/third_party/crds"))
}

static CRDS: OnceCell<()> = OnceCell::const_new();

/// A client of the test cluster with all CRDs installed and Established.
pub async fn client() -> Client {
    let client = cluster::client().await;
    CRDS.get_or_init(|| install_crds_except(client.clone(), &[]))
        .await;
    client
}

/// Installs this project's CRDs and the third-party ones, except those named in `skip`
/// (installed by their owner, e.g. the real Cluster API), and waits until each is Established.
pub async fn install_crds_except(client: Client, skip: &[&str]) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let mut crds = capt_fargate::crdgen::crds();
    let dir = third_party_crds_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("third-party CRDs not found in {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in text
            .split("\n---")
            .filter(|d| d.contains("kind: CustomResourceDefinition"))
        {
            crds.push(
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            );
        }
    }
    for crd in crds {
        let name = crd.name_any();
        if skip.contains(&name.as_str()) {
            continue;
        }
        api.patch(
            &name,
            &PatchParams::apply("capt-fargate-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .unwrap();
    }
}

/// A namespace that exists for one test.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{:08x}", rand_u32());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    /// Deletes the namespace (kube-controller-manager finalizes it).
    pub async fn delete(self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = api.delete(&self.name, &Default::default()).await;
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ std::process::id() as u128);
    h.finish() as u32
}

/// Polls `check` until it returns Some, or panics after `timeout` with `what` and the last
/// observation (tests observe; the operator itself never polls).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last observed: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The operator running in this process, limited to one namespace.
pub struct Operator {
    /// Its metrics (reconcile counts).
    pub metrics: Arc<Metrics>,
    /// The context both controllers share (what it remembers per object).
    pub ctx: Arc<Context>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Operator {
    /// Starts the controllers (control plane, apply, CAPTCluster) for `namespace` with `client`.
    pub fn start(client: Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, |_| {})
    }

    /// Like [`Self::start`], with the context changed by `configure` first (test-only knobs).
    pub fn start_with(
        client: Client,
        namespace: &str,
        configure: impl FnOnce(&mut Context),
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let mut ctx = Context::new(
            client,
            metrics.clone(),
            Some(namespace.to_string()),
            Some("test".into()),
        )
        // The test control plane (Kubernetes 1.34) serves streaming lists, as `run` finds out.
        .with_streaming_lists(true);
        // A token that never expires, as the operator's own tests' kubeconfig credential: with
        // it the kubeconfig Secrets are written, `Available` can turn True, and a converged
        // operator has nothing to refresh. Tests of the token itself replace it.
        ctx.token_source = Arc::new(capt_fargate::aws::token::StaticTokenSource::new(
            "capt-fargate-test-token".to_string(),
        ));
        configure(&mut ctx);
        let ctx = Arc::new(ctx);
        let (stop, rx) = tokio::sync::watch::channel(false);
        // One shutdown signal for the shared watches and both controllers.
        let shutdown = futures::FutureExt::shared(async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        });
        let [for_control_planes, for_applies] = capt_fargate::runtime::shared::start(
            ctx.scoped_api(),
            ctx.filtered_watch(),
            ctx.scoped_api(),
            ctx.watcher_config(),
            shutdown.clone(),
        );
        // One Cluster watch and one control plane metadata watch, shared as `run` shares them.
        let [cp_clusters, apply_clusters, infra_clusters] = capt_fargate::runtime::shared::clusters(
            ctx.client.clone(),
            ctx.namespace.clone(),
            shutdown.clone(),
        );
        let [apply_cps, infra_cps] = capt_fargate::runtime::shared::control_plane_metadata(
            ctx.scoped_api(),
            ctx.watcher_config(),
            shutdown.clone(),
        );
        let secrets = for_control_planes.secrets.clone();
        let tasks = vec![
            tokio::spawn(controller::control_plane::run(
                ctx.clone(),
                for_control_planes,
                cp_clusters,
                shutdown.clone(),
            )),
            tokio::spawn(controller::workspace_apply::run(
                ctx.clone(),
                for_applies,
                (apply_clusters, apply_cps),
                shutdown.clone(),
            )),
            tokio::spawn(controller::infra_cluster::run(
                ctx.clone(),
                (infra_clusters, infra_cps),
                secrets,
                shutdown,
            )),
        ];
        Operator {
            metrics,
            ctx,
            stop,
            tasks,
        }
    }

    /// Stops the controllers and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Applies every YAML document in `path` (a file or a directory) to `namespace`, as kubectl
/// would, and returns what was applied as (kind, name).
pub async fn apply_yaml(
    client: &Client,
    namespace: &str,
    path: &std::path::Path,
) -> Vec<(String, String)> {
    let mut files = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut applied = Vec::new();
    for file in files.drain(..) {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in text.split("\n---") {
            let value: serde_json::Value = match serde_saphyr::from_str(doc) {
                Ok(serde_json::Value::Null) | Err(_)
                    if doc.trim().trim_start_matches("---").trim().is_empty() =>
                {
                    continue;
                }
                Ok(v) => v,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            if value.is_null() {
                continue;
            }
            let obj: kube::api::DynamicObject = serde_json::from_value(value).unwrap();
            applied.push(
                apply_dynamic(client, namespace, obj)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            );
        }
    }
    applied
}

/// Server-side applies one object into `namespace`.
pub async fn apply_dynamic(
    client: &Client,
    namespace: &str,
    mut obj: kube::api::DynamicObject,
) -> Result<(String, String), kube::Error> {
    let types = obj.types.clone().expect("manifest has apiVersion and kind");
    let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<kube::api::DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        obj.metadata.namespace = Some(namespace.to_string());
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    let name = obj.name_any();
    api.patch(
        &name,
        &PatchParams::apply("capt-fargate-tests").force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok((types.kind, name))
}

pub mod audit;
