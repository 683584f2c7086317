//! The watches several controllers read, one per kind in the process: WorkspaceTemplateApplies
//! and Secrets (control plane and apply controllers, [`start`]), Cluster API Clusters (all
//! three, for pause, [`clusters`]) and CAPTControlPlanes' metadata (apply and CAPTCluster
//! controllers, [`control_plane_metadata`]).
//!
//! One watch and one cache per kind, with each event handed to every controller that reads it,
//! divides what the API server sends for these kinds and what this process decodes and keeps,
//! and lets each controller see the others' writes in the same cache.
//!
//! Replaces kube-runtime's shared streams (`reflect_shared` into a `store_shared`, consumed
//! with `Controller::for_shared_stream`): they do not dispatch deletions (kube-rs#1590), and a
//! controller must see a child's deletion to recreate it or finish a cleanup.
//! Here every watch event, deletions and relists included, reaches both consumers.

use std::future::Future;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::warn;

use super::cache::{self, Cache};
use super::index;
use super::packed::{PackedStore, Packing, identity};
use crate::api::cluster::Cluster;
use crate::api::{CAPTControlPlane, WorkspaceTemplateApply};
use crate::controller::control_plane::pause;

/// Watch events as a controller consumes them; errors are logged where the watch is polled.
pub type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// The WorkspaceTemplateApply caches: packed (`runtime::packed`; the sample control plane's
/// profile apply is 2.5 KB of JSON and 6.5 KB decoded), read a few at a time (an apply's
/// reconcile, a control plane's own applies through the index).
pub type ApplyCache = Cache<WorkspaceTemplateApply, PackedStore<WorkspaceTemplateApply>>;

/// What a packed apply keeps decoded: its name and versions (kube-runtime's scheduler reads the
/// reference; the apply controller's predicate reads the apply before it is packed), and
/// whether it is being deleted (the secret guard counts live applies that wait for a Secret).
pub const APPLY_PACKING: Packing = Packing {
    meta: |meta| ObjectMeta {
        deletion_timestamp: meta.deletion_timestamp.clone(),
        ..identity(meta)
    },
};

/// The Secret cache: packed (a cached connection secret, key names only, is about 0.55 KB of
/// JSON and 1.7 KB decoded), read one Secret at a time.
pub type SecretCache = Cache<Secret, PackedStore<Secret>>;

/// One controller's share of the watches.
pub struct Watched {
    /// WorkspaceTemplateApplies, shared with the other controller.
    pub applies: ApplyCache,
    /// The apply watch's events, after the cache has taken them.
    pub apply_events: Events<WorkspaceTemplateApply>,
    /// Secrets with their key names and value digests (see `key_names_only`).
    pub secrets: SecretCache,
    /// The Secret watch's events, after the cache has taken them.
    pub secret_events: Events<Secret>,
}

/// The shares of both controllers: `[control plane, apply]`, watching `apply_api` with
/// `apply_config` (`Context::filtered_watch`: the watch filter, if any) and `secret_api` (the
/// operator's scope) with `config` (`Context::watcher_config`). The watches run until
/// `shutdown`.
pub fn start<F>(
    apply_api: Api<WorkspaceTemplateApply>,
    apply_config: watcher::Config,
    secret_api: Api<Secret>,
    config: watcher::Config,
    shutdown: F,
) -> [Watched; 2]
where
    F: Future<Output = ()> + Clone + Send + 'static,
{
    let config = || config.clone();
    let (applies, apply_source) = cache::watch_packed(
        watcher(apply_api, apply_config),
        cache::keep_all,
        Some(apply_index_keys),
        APPLY_PACKING,
    );
    let (secrets, secret_source) = cache::watch_packed(
        watcher(secret_api, config()),
        key_names_only,
        None,
        Packing::IDENTITY,
    );
    let [cp_applies, apply_applies] = fan_out(apply_source, shutdown.clone(), "applies");
    let [cp_secrets, apply_secrets] = fan_out(secret_source, shutdown, "secrets");
    [
        Watched {
            applies: applies.clone(),
            apply_events: cp_applies,
            secrets: secrets.clone(),
            secret_events: cp_secrets,
        },
        Watched {
            applies,
            apply_events: apply_applies,
            secrets,
            secret_events: apply_secrets,
        },
    ]
}

/// What applies are looked up by: their owners (a control plane's profile applies), the
/// Secrets they wait for, the WorkspaceTemplate they use and their Cluster (whose changes
/// wake them).
fn apply_index_keys(apply: &WorkspaceTemplateApply) -> Vec<String> {
    let owners = apply
        .owner_references()
        .iter()
        .map(|o| index::owner(&o.uid));
    let secrets = apply
        .spec
        .wait_for_secrets
        .iter()
        .flatten()
        .map(|s| index::secret(&s.namespace, &s.name));
    let template = index::template(&apply.template_namespace(), &apply.spec.template_ref.name);
    // Its Cluster API Cluster, whose pause holds it (`control_plane::pause`).
    let cluster = apply
        .labels()
        .get(crate::names::LABEL_CLUSTER_NAME)
        .map(|c| index::cluster(&apply.namespace().unwrap_or_default(), c));
    owners
        .chain(secrets)
        .chain([template])
        .chain(cluster)
        .collect()
}

/// Prefix of the annotations this operator writes on Secrets.
const OWN_ANNOTATION_PREFIX: &str = "fargate.capt.cluster.x-k8s.io/";

/// Suffix of the kubeconfig Secrets the operator keeps (`<cluster>-kubeconfig` and
/// `<cluster>-user-kubeconfig`, `render::kubeconfig`).
const KUBECONFIG_SUFFIX: &str = "-kubeconfig";

/// Values of VPC connection secrets (`names::VPC_CONNECTION_SUFFIX`) kept as they are: the
/// VPC's ID and availability zones, public identifiers that the CAPTCluster reports in its
/// status (`infra_cluster`), so a converged or restarted operator need not read the Secret.
pub const VPC_PUBLIC_KEYS: &[&str] = &["vpc_id", "availability_zones"];

/// Secret values never enter the cache, with two exceptions: the public keys of EKS connection
/// secrets (`render::kubeconfig::PUBLIC_KEYS`: endpoint, CA and cluster name, which EKS's
/// DescribeCluster returns to anyone allowed to call it), from which the endpoint and the
/// kubeconfigs are built, and those of VPC connection secrets ([`VPC_PUBLIC_KEYS`]).
///
/// The kubeconfig Secrets the operator writes (names ending in `-kubeconfig`) keep each value
/// as its SHA-256 (32 bytes), enough to see that `value` is still what the operator wrote, and
/// the metadata the kubeconfig step compares: labels (`cluster.x-k8s.io/cluster-name`), owner
/// references and this operator's own annotations (`fargate.capt.cluster.x-k8s.io/…`: source,
/// value digest, token expiry). Of every other Secret (the connection secrets, most of them)
/// only key names are read (`controller::secrets`), with finalizers and deletion (the secret
/// guard): their values are emptied and their labels, annotations and owner references go,
/// about 40 % of what such a Secret cost in memory (BENCHMARKS.md). Annotations nobody reads
/// go everywhere: one such as kubectl's last-applied configuration may repeat the values.
pub fn key_names_only(secret: &mut Secret) {
    use sha2::{Digest, Sha256};
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let kubeconfig = name.ends_with(KUBECONFIG_SUFFIX);
    let public: &[&str] = if name.ends_with(crate::names::EKS_CONNECTION_SUFFIX) {
        crate::render::kubeconfig::PUBLIC_KEYS
    } else if name.ends_with(crate::names::VPC_CONNECTION_SUFFIX) {
        VPC_PUBLIC_KEYS
    } else {
        &[]
    };
    let meta = &mut secret.metadata;
    if kubeconfig {
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.retain(|k, _| k.starts_with(OWN_ANNOTATION_PREFIX));
            if annotations.is_empty() {
                meta.annotations = None;
            }
        }
    } else {
        meta.annotations = None;
        meta.labels = None;
        meta.owner_references = None;
    }
    for (key, value) in secret.data.iter_mut().flat_map(|d| d.iter_mut()) {
        if public.contains(&key.as_str()) {
            continue;
        }
        *value = if kubeconfig {
            ByteString(Sha256::digest(&value.0).to_vec())
        } else {
            ByteString(Vec::new())
        };
    }
    secret.string_data = None;
}

/// Polls `source` (which feeds its cache first) and hands each event to `N` consumers. A
/// failed watch is logged and retried with the backoff that `cache::watch`, where every
/// source comes from, puts on it (this loop has none of its own).
///
/// The consumers share one copy of each event (an `Arc`), cloned only as each takes it (the
/// last one takes it as it is): a relist's events wait in these queues until the controllers
/// drain them, and a copy per consumer made a restarted operator's peak memory (BENCHMARKS.md).
pub(crate) fn fan_out<K, S, F, const N: usize>(
    source: S,
    shutdown: F,
    kind: &'static str,
) -> [Events<K>; N]
where
    K: Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::unbounded()).unzip();
    let forward = source.for_each(move |item| {
        match item {
            Ok(event) => {
                let event = Arc::new(event);
                // A consumer that stopped (its controller shut down) is simply skipped.
                for tx in &senders {
                    let _ = tx.unbounded_send(Arc::clone(&event));
                }
            }
            Err(error) => warn!(kind, %error, "watch failed; retrying"),
        }
        futures::future::ready(())
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = forward => {}
            _ = shutdown => {}
        }
    });
    let streams: Vec<Events<K>> = receivers
        .into_iter()
        .map(|rx: mpsc::UnboundedReceiver<Arc<watcher::Event<K>>>| {
            rx.map(|event| Ok(Arc::unwrap_or_clone(event))).boxed()
        })
        .collect();
    streams
        .try_into()
        .unwrap_or_else(|_| unreachable!("one stream per consumer"))
}

/// One consumer's share of a watch that several controllers read: the cache the watch fills
/// (`C`: a [`Cache`], or a wrapper such as `control_plane::pause::Clusters`) and its events.
pub struct Share<C, K> {
    /// The watch's cache, the same for every consumer.
    pub cache: C,
    /// Every event of the watch, after the cache has taken it.
    pub events: Events<K>,
}

/// A controller's share of the Cluster watch ([`clusters`]).
pub type ClusterShare = Share<pause::Clusters, Cluster>;

/// A controller's share of the control plane metadata watch ([`control_plane_metadata`]).
pub type ControlPlaneShare =
    Share<Cache<PartialObjectMeta<CAPTControlPlane>>, PartialObjectMeta<CAPTControlPlane>>;

/// Hands the watch `source` (which feeds `cache` first) to `N` consumers (see [`fan_out`]):
/// one watch of the kind in the process, however many controllers read it.
pub fn share<C, K, S, F, const N: usize>(
    cache: C,
    source: S,
    shutdown: F,
    kind: &'static str,
) -> [Share<C, K>; N]
where
    C: Clone,
    K: Clone + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    fan_out(source, shutdown, kind).map(|events| Share {
        cache: cache.clone(),
        events,
    })
}

/// Cluster API Clusters, for their pause (`control_plane::pause::watch`: the served version,
/// found at run time), watched once for the three controllers that honour it:
/// `[control plane, apply, CAPTCluster]`. The watch runs until `shutdown`.
pub fn clusters<F>(client: Client, namespace: Option<String>, shutdown: F) -> [ClusterShare; 3]
where
    F: Future<Output = ()> + Send + 'static,
{
    let (clusters, source) = pause::watch(client, namespace);
    share(clusters, source, shutdown, "clusters")
}

/// CAPTControlPlanes' metadata, watched once for `[apply, CAPTCluster]`: the apply controller
/// reads the pause annotation of an apply's control plane, the CAPTCluster controller which
/// control planes of its cluster still exist. `config` takes no watch-filter label: the
/// CAPTCluster controller waits for every control plane of its cluster.
pub fn control_plane_metadata<F>(
    api: Api<PartialObjectMeta<CAPTControlPlane>>,
    config: watcher::Config,
    shutdown: F,
) -> [ControlPlaneShare; 2]
where
    F: Future<Output = ()> + Send + 'static,
{
    let (control_planes, source) = cache::watch(watcher(api, config), cache::keep_all, None);
    share(control_planes, source, shutdown, "control plane metadata")
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
