//! The controllers (control plane, WorkspaceTemplateApply, CAPTCluster) and the small [`Context`] they share. What they build on (caches, echo
//! suppression, the write path, finalizers, backoff, event de-duplication) is in
//! `crate::runtime`; children are written through `runtime::write`.

pub mod control_plane;
pub mod infra_cluster;
pub mod secret_guard;
pub mod secrets;
pub mod workspace_apply;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource};
use tracing::warn;

use crate::metrics::Metrics;
use crate::names::FIELD_MANAGER;
use crate::runtime::event_series::Publisher;
use crate::runtime::events::SentEvents;

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
    /// Publishes Kubernetes Events, repeats folded into series (`runtime::event_series`).
    pub events: Publisher,
    /// Shared metrics.
    pub metrics: Arc<Metrics>,
    /// Namespace the operator is limited to, if any.
    pub namespace: Option<String>,
    /// Value of the `cluster.x-k8s.io/watch-filter` label the control planes and applies it
    /// reconciles carry (`--watch-filter`); None: all of them.
    pub watch_filter: Option<String>,
    /// Reconciles each controller runs at once (`--max-concurrent-reconciles`).
    pub max_concurrent_reconciles: u16,
    /// Whether watches fill their caches with a streaming list (`runtime::listing`); `run`
    /// asks the API server at start.
    pub streaming_lists: bool,
    /// TEST ONLY, never set by the operator: creates every missing additional profile at once,
    /// breaking AWS's one-operation-at-a-time rule on purpose, so that a test proves the
    /// simulated provider's overlap check sees it (`tests/integration/lifecycle.rs`).
    #[doc(hidden)]
    pub test_only_create_profiles_at_once: bool,
    /// Where the token of the `<cluster>-kubeconfig` Secrets comes from. [`NoTokenSource`]
    /// unless chosen (`run` chooses AWS, or the test-only static source): nothing reaches for
    /// AWS credentials by default.
    ///
    /// [`NoTokenSource`]: crate::aws::token::NoTokenSource
    pub token_source: crate::aws::token::SharedTokenSource,
    /// The operator's IAM role ARN (`--operator-role-arn`), given to the EKS module for an
    /// access entry; empty for none.
    pub operator_role_arn: String,
    /// Last event published per series: the same event is not sent twice in a row, even when
    /// a reconcile runs on a cached object that predates its own status write.
    sent_events: SentEvents,
}

impl Context {
    /// A context for `client`, reporting events as `instance`.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        namespace: Option<String>,
        instance: Option<String>,
    ) -> Self {
        Context {
            events: Publisher::new(client.clone(), FIELD_MANAGER, instance),
            client,
            metrics,
            namespace,
            watch_filter: None,
            max_concurrent_reconciles: DEFAULT_MAX_CONCURRENT_RECONCILES,
            streaming_lists: false,
            test_only_create_profiles_at_once: false,
            token_source: Arc::new(crate::aws::token::NoTokenSource),
            operator_role_arn: String::new(),
            sent_events: SentEvents::default(),
        }
    }

    /// The same context with each controller running at most `n` reconciles at once.
    pub fn with_max_concurrent_reconciles(mut self, n: std::num::NonZeroU16) -> Self {
        self.max_concurrent_reconciles = n.get();
        self
    }

    /// The same context reconciling only objects labelled with the watch filter `value`.
    pub fn with_watch_filter(mut self, value: Option<String>) -> Self {
        self.watch_filter = value;
        self
    }

    /// The watch configuration of the objects the operator reconciles (control planes and
    /// applies): only those carrying the watch-filter label, when one is set. Secrets,
    /// templates, Workspaces and Clusters are read whatever their labels.
    pub fn filtered_watch(&self) -> kube::runtime::watcher::Config {
        let config = self.watcher_config();
        match &self.watch_filter {
            Some(value) => config.labels(&format!("{}={value}", crate::names::LABEL_WATCH_FILTER)),
            None => config,
        }
    }

    /// The same context with its watches filling their caches by streaming lists or not
    /// (`runtime::listing::streaming_lists_served` tells whether the API server serves them).
    pub fn with_streaming_lists(mut self, streaming: bool) -> Self {
        self.streaming_lists = streaming;
        self
    }

    /// The configuration of every watch (`runtime::listing::config`).
    pub fn watcher_config(&self) -> kube::runtime::watcher::Config {
        crate::runtime::listing::config(self.streaming_lists)
    }

    /// The same context minting kubeconfig tokens with `source`.
    pub fn with_token_source(mut self, source: crate::aws::token::SharedTokenSource) -> Self {
        self.token_source = source;
        self
    }

    /// The same context granting `arn` (the operator's IAM role) EKS access in each cluster.
    pub fn with_operator_role_arn(mut self, arn: String) -> Self {
        self.operator_role_arn = arn;
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
        self.sent_events.forget(uid);
    }

    /// How many objects have events remembered for de-duplication: after every object is
    /// deleted, none (tests check that deletions leave nothing behind).
    #[doc(hidden)]
    pub fn objects_with_sent_events(&self) -> usize {
        self.sent_events.objects()
    }

    /// Like [`Context::event`], naming a related object (`secondary`): events about different children of
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
        let uid = obj.meta().uid.as_deref().unwrap_or_default();
        if !self.sent_events.record(uid, reason, &related, &note) {
            return;
        }
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary,
        };
        if let Err(e) = self.events.publish(&event, &obj.object_ref(&())).await {
            warn!(error = %e, reason, "could not publish event");
        }
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
