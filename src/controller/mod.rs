//! The two controllers and what they share.
//!
//! Children (WorkspaceTemplateApplies, Workspaces) are written through [`write_if_changed`] /
//! [`write()`]: each rendered child is stamped with a record of what was rendered ([`stamp`],
//! `diff::Applied`), so that a change that only removes something (a variable, a tag, a
//! default profile, a label) is written, while the defaults the API server adds cause no
//! write. `crate::diff` explains why this and not a server-side apply or `kubectl apply`'s
//! last-applied annotation. Every write names the field manager `names::FIELD_MANAGER`.

pub mod cache;
pub mod control_plane;
pub mod echo;
pub mod index;
pub mod secrets;
pub mod shared;
pub mod workspace_apply;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::warn;

use crate::diff;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::FIELD_MANAGER;

/// How long the control-plane controller lets a burst of child changes (an apply created,
/// its Workspace reported, the apply's status written) settle into one reconcile.
pub const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(300);

/// Reconciles each controller runs at once unless configured otherwise. Unbounded, the first
/// pass over 200 control planes opened 200 connections to the API server, whose two cores
/// serve a few dozen requests at a time as fast. At 16, the last of 200 new control planes
/// were reached so late that their first status could not wait for the cluster's first report
/// (`pacing::FIRST_REPORT_GRACE`): 85 more status writes in `tests/bench`.
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 64;

/// How soon a reconcile that found the watch caches still filling (just after start) runs again.
pub const CACHES_FILLING: std::time::Duration = std::time::Duration::from_millis(250);

/// What every reconcile needs.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Shared metrics.
    pub metrics: Arc<Metrics>,
    /// Namespace the operator is limited to, if any.
    pub namespace: Option<String>,
    /// Reconciles each controller runs at once (`--max-concurrent-reconciles`).
    pub max_concurrent_reconciles: u16,
    /// TEST ONLY, never set by the operator: creates every missing additional profile at once,
    /// breaking AWS's one-operation-at-a-time rule on purpose, so that a test proves the
    /// simulated provider's overlap check sees it (`tests/integration/lifecycle.rs`).
    #[doc(hidden)]
    pub test_only_create_profiles_at_once: bool,
    /// Last event published per (object uid, reason): the same event is not sent twice in a
    /// row, even when a reconcile runs on a cached object that predates its own status write.
    last_events: Mutex<HashMap<(String, String), String>>,
}

impl Context {
    /// A context for `client`, reporting events as `instance`.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        namespace: Option<String>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            namespace,
            max_concurrent_reconciles: DEFAULT_MAX_CONCURRENT_RECONCILES,
            test_only_create_profiles_at_once: false,
            last_events: Mutex::default(),
        }
    }

    /// The same context with each controller running at most `n` reconciles at once.
    pub fn with_max_concurrent_reconciles(mut self, n: std::num::NonZeroU16) -> Self {
        self.max_concurrent_reconciles = n.get();
        self
    }

    /// A controller's runtime configuration: its concurrency, and `debounce`.
    pub fn controller_config(
        &self,
        debounce: std::time::Duration,
    ) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default()
            .concurrency(self.max_concurrent_reconciles)
            .debounce(debounce)
    }

    /// An API for `K` in the operator's scope (all namespaces unless limited).
    pub fn scoped_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Whether objects in `namespace` are in the operator's watches.
    pub fn in_scope(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Publishes an event about `obj`; failures are logged, never fatal (events are advisory).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.event_about(obj, None, type_, reason, note).await;
    }

    /// Forgets the events of an object that is gone, so the de-duplication map stays bounded
    /// by the objects that exist.
    pub fn forget_events(&self, uid: Option<&str>) {
        let Some(uid) = uid else { return };
        let mut last = self.last_events.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|(object, _), _| object != uid);
    }

    /// The same, naming a related object (`secondary`): events about different children of
    /// one object then form separate series instead of overwriting each other.
    pub async fn event_about<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        secondary: Option<ObjectReference>,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let related = secondary
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        let key = (
            obj.meta().uid.clone().unwrap_or_default(),
            format!("{reason}/{related}"),
        );
        {
            let mut last = self.last_events.lock().unwrap_or_else(|e| e.into_inner());
            if last.get(&key) == Some(&note) {
                return;
            }
            last.insert(key, note.clone());
        }
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// An object this operator creates and keeps: a WorkspaceTemplateApply or a Workspace.
pub trait Child:
    Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug + 'static
{
}

impl<K> Child for K where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + 'static
{
}

/// Writes `desired` (see [`write()`]) unless `existing` (from `cache`) already is what it
/// renders ([`contains`], after [`stamp`]). Returns the object as written, or None when no
/// write was needed.
pub async fn write_if_changed<K>(
    api: &Api<K>,
    cache: &cache::Cache<K>,
    desired: &K,
    existing: Option<&K>,
) -> Result<Option<K>>
where
    K: Child,
{
    let mut desired = desired.clone();
    stamp(&mut desired)?;
    if existing.is_some_and(|e| cache.holds(e, &desired)) {
        return Ok(None);
    }
    write(api, cache, &desired, existing).await.map(Some)
}

/// Whether [`write_if_changed`] would write `desired` over `existing`: the same stamped
/// comparison, for a decision taken before the write (e.g. holding an EKS workspace change
/// while a Fargate operation is in flight), so that a pure removal counts as a change there too.
pub fn would_change<K: Child>(cache: &cache::Cache<K>, existing: &K, desired: &K) -> Result<bool> {
    let mut desired = desired.clone();
    stamp(&mut desired)?;
    Ok(!cache.holds(existing, &desired))
}

/// Puts on `desired`, a rendered child, the record of what was rendered (annotation
/// `names::ANNOTATION_APPLIED`, see `diff::Applied`), replacing any it carries: compared with
/// the child's own record, it shows whether anything changed, removals included.
pub fn stamp<K: Child>(desired: &mut K) -> Result<()> {
    use crate::names::ANNOTATION_APPLIED;
    let mut value =
        serde_json::to_value(&*desired).map_err(|e| Error::Serialization("desired object", e))?;
    diff::stamp(&mut value);
    let applied = value
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_APPLIED))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    desired
        .meta_mut()
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_APPLIED.into(), applied);
    Ok(())
}

/// Creates `desired`, or updates `existing` (as `cache` holds it) to it, and returns the object
/// as written, stamped ([`stamp`]; stamping a stamped object again changes nothing).
/// - A create is a POST: for the API server about a quarter cheaper than a server-side apply,
///   which parses its body as YAML and merges field ownership (`examples/request_costs.rs`).
/// - An update is a merge patch at the version read ([`diff::update_patch`]); a conflict (the
///   cache was stale) is retried by the next reconcile.
/// - A create that finds the object there already (written by a predecessor whose write the
///   cache has not shown yet) reads it and updates it, unless it is not controlled by the owner
///   of `desired` ([`check_owner`]): someone else's object is never taken over.
pub async fn write<K>(
    api: &Api<K>,
    cache: &cache::Cache<K>,
    desired: &K,
    existing: Option<&K>,
) -> Result<K>
where
    K: Child,
{
    let mut stamped = desired.clone();
    stamp(&mut stamped)?;
    let desired = &stamped;
    let name = desired.name_any();
    let existing = match existing {
        Some(existing) => existing.clone(),
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, desired).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    let mut live = api.get(&name).await?;
                    // Someone else's object of the same name is not taken over.
                    check_owner(desired, &live)?;
                    cache.prepare(&mut live);
                    live
                }
                other => return Ok(other?),
            }
        }
    };
    let to_value =
        |obj: &K| serde_json::to_value(obj).map_err(|e| Error::Serialization("desired object", e));
    let mut comparable = desired.clone();
    cache.prepare(&mut comparable);
    let patch = diff::update_patch(
        &to_value(&existing)?,
        &to_value(&comparable)?,
        &to_value(desired)?,
    );
    Ok(api
        .patch(&name, &patch_params(), &Patch::Merge(&patch))
        .await?)
}

/// Fails with [`Error::NotOwned`] unless `live` (an object of `desired`'s name) is controlled
/// by the controller owner of `desired`. Children without a controller owner (Workspaces,
/// which are cluster-scoped) pass: their ownership is checked by their own labels.
pub fn check_owner<K: Resource<DynamicType = ()>>(desired: &K, live: &K) -> Result<()> {
    let controller = |obj: &K| {
        obj.owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .cloned()
    };
    let Some(ours) = controller(desired) else {
        return Ok(());
    };
    let theirs = controller(live);
    if theirs.as_ref().is_some_and(|o| o.uid == ours.uid) {
        return Ok(());
    }
    let holder = match theirs {
        Some(o) => format!("controlled by {} {}", o.kind, o.name),
        None => "it has no controller owner".to_string(),
    };
    Err(Error::NotOwned {
        kind: K::kind(&()).to_string(),
        name: live.name_any(),
        holder,
    })
}

/// Parameters of every merge patch this operator sends: its field manager, so that
/// `managedFields` names it instead of an unnamed manager.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Whether `existing` needs no write to become `desired`, a stamped render (`diff::holds`):
/// every field of `desired` has its value in `existing`, the record of the last write among
/// them; finalizers and owner references are sets that others add to.
pub fn contains<K: Resource + Serialize>(existing: &K, desired: &K) -> bool {
    match (
        serde_json::to_value(desired),
        serde_json::to_value(existing),
    ) {
        (Ok(want), Ok(have)) => diff::holds(&have, &want),
        _ => false,
    }
}

/// Adds `finalizer` to `obj` if missing and returns the newest `obj`: the one written, which
/// `cache` then remembers, or `obj` itself. The resourceVersion in the patch makes a concurrent
/// change fail with a conflict (retried) instead of dropping someone else's finalizer.
pub async fn ensure_finalizer<K>(
    api: &Api<K>,
    cache: &cache::Cache<K>,
    obj: Arc<K>,
    finalizer: &str,
) -> Result<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(obj);
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(finalizer.to_string());
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    let written = api
        .patch(&obj.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    cache.remember(written.clone());
    Ok(Arc::new(written))
}

/// Removes `finalizer` from `obj` once its cleanup is complete.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let finalizers: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    match api
        .patch(&obj.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

/// How long ago `obj` was created, by this machine's clock; None without a creation time.
pub fn age<K: Resource>(obj: &K) -> Option<std::time::Duration> {
    let created = obj.meta().creation_timestamp.as_ref()?;
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
    Some(std::time::Duration::try_from(age).unwrap_or_default())
}

/// Outcome of a cleanup step.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Everything is gone: the finalizer can be removed.
    Done,
    /// Something is still being deleted; a watch event will bring the object back.
    Waiting,
}

/// Logs a failed reconcile. An object that left the cache before its turn came
/// (`ObjectNotFound`) is normal after deletions and not worth a warning.
pub fn log_failure<K, E, W>(
    controller: &str,
    result: Result<
        (
            kube::runtime::reflector::ObjectRef<K>,
            kube::runtime::controller::Action,
        ),
        kube::runtime::controller::Error<E, W>,
    >,
) where
    K: Resource,
    E: std::error::Error,
    W: std::error::Error,
{
    match result {
        Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(e) => warn!(controller, error = %e, "reconcile failed"),
    }
}

/// Backoff for re-establishing watches: 0.5 s doubling up to 5 s. A restarted API server
/// answers every resumed watch with 410 Gone; kube's default (up to 30 s, shared by all the
/// watches of a controller) chains those retries into a minute of blindness.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: std::time::Duration,
}

impl WatchBackoff {
    const MIN: std::time::Duration = std::time::Duration::from_millis(500);
    const MAX: std::time::Duration = std::time::Duration::from_secs(5);

    /// The backoff for a controller's watches, reset after 30 s without errors.
    pub fn for_controller() -> kube::runtime::utils::ResetTimerBackoff<WatchBackoff> {
        kube::runtime::utils::ResetTimerBackoff::new(
            WatchBackoff { next: Self::MIN },
            std::time::Duration::from_secs(30),
        )
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next;
        self.next = (current * 2).min(Self::MAX);
        Some(current)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// When to retry a failed reconcile: a conflict (someone wrote the object meanwhile) at once,
/// anything else after a pause.
pub fn retry_after(error: &Error) -> std::time::Duration {
    match error {
        Error::Kube(kube::Error::Api(status)) if status.is_conflict() => {
            std::time::Duration::from_millis(200)
        }
        _ => std::time::Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::WatchBackoff;
    use std::time::Duration;

    #[test]
    fn watch_backoff_doubles_up_to_five_seconds_and_resets() {
        let mut b = WatchBackoff {
            next: WatchBackoff::MIN,
        };
        let delays: Vec<Duration> = b.by_ref().take(6).collect();
        assert_eq!(
            delays.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
            [500, 1000, 2000, 4000, 5000, 5000]
        );
        kube::runtime::utils::Backoff::reset(&mut b);
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }
}
