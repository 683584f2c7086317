//! Pause (Cluster API contract): while its Cluster has `spec.paused: true` (`clusterctl move`
//! sets it) or the control plane carries the annotation `cluster.x-k8s.io/paused`, a control
//! plane's reconcile writes no child and only reports `Paused=True`.
//!
//! The Cluster is the control plane's owner of kind `Cluster` (Cluster API sets it), else the
//! one its label `cluster.x-k8s.io/cluster-name` names, else one whose `controlPlaneRef`
//! names the control plane (before Cluster API adopts it). Clusters are watched as the API server
//! serves them (v1beta2 when offered, else v1beta1); without Cluster API's CRD, pause comes
//! from the annotation alone, and the CRD is looked for again every minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::api::CAPTControlPlane;
use crate::api::cluster::{CLUSTER_GROUP, Cluster};
use crate::runtime::cache::{self, Cache};

/// Annotation that pauses one object (Cluster API's `PausedAnnotation`); its value is ignored.
pub const PAUSED_ANNOTATION: &str = "cluster.x-k8s.io/paused";
use crate::names::LABEL_CLUSTER_NAME as CLUSTER_NAME_LABEL;

/// How often the Cluster CRD is looked for again while the API server does not serve it.
const REDISCOVER: Duration = Duration::from_secs(60);
/// How soon a reconcile runs again while the Clusters are not known yet (discovery or the
/// first list still running, just after start): as soon as for the other caches.
pub const CLUSTERS_UNKNOWN: Duration = crate::controller::CACHES_FILLING;

/// The name of the Cluster `cp` belongs to: its owner of kind Cluster in Cluster API's group,
/// else its `cluster.x-k8s.io/cluster-name` label.
pub fn cluster_name(cp: &CAPTControlPlane) -> Option<String> {
    cp.owner_references()
        .iter()
        .find(|o| o.kind == "Cluster" && o.api_version.split('/').next() == Some(CLUSTER_GROUP))
        .map(|o| o.name.clone())
        .or_else(|| cp.labels().get(CLUSTER_NAME_LABEL).cloned())
}

/// Why `obj` (a control plane or an apply) is paused, or None when it is not: its own
/// annotation, or `cluster` (its Cluster, if known) with `spec.paused: true`. Pure.
pub fn is_paused<K: kube::Resource>(obj: &K, cluster: Option<&Cluster>) -> Option<String> {
    if obj.annotations().contains_key(PAUSED_ANNOTATION) {
        return Some(format!(
            "{} carries the annotation {PAUSED_ANNOTATION}; no child is written until it is removed",
            obj.name_any()
        ));
    }
    let cluster = cluster.filter(|c| c.spec.paused == Some(true))?;
    Some(format!(
        "Cluster {} is paused (spec.paused); no child is written until it is unpaused",
        cluster.name_any()
    ))
}

/// The control planes a Cluster names in `spec.controlPlaneRef` (of this kind), in its
/// namespace. Control planes that name the Cluster themselves are found through the index.
pub fn control_plane_named_by(cluster: &Cluster) -> Option<ObjectRef<CAPTControlPlane>> {
    let r = cluster.spec.control_plane_ref.as_ref()?;
    (r.kind == "CAPTControlPlane" && !r.name.is_empty())
        .then(|| ObjectRef::new(&r.name).within(&cluster.namespace().unwrap_or_default()))
}

const DISCOVERING: u8 = 0;
const ABSENT: u8 = 1;
const WATCHING: u8 = 2;

/// The Clusters as this operator knows them.
#[derive(Clone)]
pub struct Clusters {
    cache: Cache<Cluster>,
    source: Arc<AtomicU8>,
}

/// What is known about a control plane's Cluster.
#[derive(Debug, PartialEq)]
pub enum Known {
    /// Not yet: discovery or the first list is still running.
    Unknown,
    /// The Cluster (None: none, or Cluster API is not installed).
    Cluster(Option<Arc<Cluster>>),
}

impl Clusters {
    /// The Cluster `name` in `namespace` (None: no name), when the Clusters are known.
    pub fn named(&self, namespace: &str, name: Option<&str>) -> Known {
        match self.source.load(Ordering::Acquire) {
            ABSENT => Known::Cluster(None),
            WATCHING if self.cache.is_ready() => {
                Known::Cluster(name.and_then(|n| self.cache.get_named(Some(namespace), n)))
            }
            _ => Known::Unknown,
        }
    }

    /// `cp`'s Cluster, when the Clusters are known.
    pub fn of(&self, cp: &CAPTControlPlane) -> Known {
        match self.source.load(Ordering::Acquire) {
            ABSENT => Known::Cluster(None),
            WATCHING if self.cache.is_ready() => {
                let ns = cp.namespace();
                let cluster = match cluster_name(cp) {
                    Some(name) => self.cache.get_named(ns.as_deref(), &name),
                    // Not adopted yet (Cluster API sets the owner shortly): the Cluster that
                    // names it as its control plane.
                    None => {
                        let me = Some(ObjectRef::from_obj(cp));
                        self.cache
                            .filter(|c| control_plane_named_by(c) == me)
                            .into_iter()
                            .next()
                    }
                };
                Known::Cluster(cluster)
            }
            _ => Known::Unknown,
        }
    }
}

/// Starts watching Clusters (in `namespace`, or all): first finds which version the API
/// server serves, then lists and watches it. The events come after the cache holds them.
/// Called once in the process (`runtime::shared::clusters`), which shares the watch.
pub fn watch(
    client: Client,
    namespace: Option<String>,
) -> (
    Clusters,
    impl Stream<Item = Result<watcher::Event<Cluster>, watcher::Error>> + Send + 'static,
) {
    let source = Arc::new(AtomicU8::new(DISCOVERING));
    let found = Arc::clone(&source);
    let events = futures::stream::once(discover(client.clone(), found)).flat_map(move |ar| {
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        watcher(api, watcher::Config::default().any_semantic()).map_ok(to_cluster)
    });
    let (cache, events) = cache::watch(events, cache::keep_all, None);
    (Clusters { cache, source }, events)
}

/// The Cluster resource the API server serves, v1beta2 preferred; retried until there is one.
/// While there is none, `source` says so (pause then comes from the annotation only), which
/// is logged once.
async fn discover(client: Client, source: Arc<AtomicU8>) -> ApiResource {
    let mut said_absent = false;
    loop {
        let wait = match kube::discovery::group(&client, CLUSTER_GROUP).await {
            Ok(group) => {
                let served = ["v1beta2", "v1beta1"].into_iter().find_map(|v| {
                    group
                        .versioned_resources(v)
                        .into_iter()
                        .find(|(ar, _)| ar.kind == "Cluster")
                });
                if let Some((ar, _)) = served {
                    info!(version = %ar.version, "watching Cluster API Clusters for spec.paused");
                    source.store(WATCHING, Ordering::Release);
                    return ar;
                }
                absent(&source, &mut said_absent)
            }
            Err(kube::Error::Discovery(_)) => absent(&source, &mut said_absent),
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                absent(&source, &mut said_absent)
            }
            Err(error) => {
                warn!(%error, "cannot discover Cluster API's Cluster resource; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn absent(source: &AtomicU8, said: &mut bool) -> Duration {
    if !*said {
        info!(
            "the API server does not serve cluster.x-k8s.io Clusters (Cluster API not installed): pause follows the annotation {PAUSED_ANNOTATION} only; looking again every minute"
        );
        *said = true;
    }
    source.store(ABSENT, Ordering::Release);
    REDISCOVER
}

fn to_cluster(event: watcher::Event<DynamicObject>) -> watcher::Event<Cluster> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(o.into()),
        watcher::Event::Delete(o) => watcher::Event::Delete(o.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(o.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// What a Cluster event can change for its control planes: whether it is paused and which
/// control plane it names (its status, which Cluster API writes often, does not matter here).
pub fn pause_version(cluster: &Cluster) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    cluster.metadata.uid.hash(&mut hasher);
    cluster.spec.paused.hash(&mut hasher);
    if let Some(r) = &cluster.spec.control_plane_ref {
        (&r.kind, &r.name).hash(&mut hasher);
    }
    Some(hasher.finish())
}

#[cfg(test)]
#[path = "pause_tests.rs"]
mod tests;
