//! Secret guard: keeps every Secret that the operator's Workspaces read until no Workspace
//! reading it is left.
//!
//! provider-terraform reads a Workspace's var-file Secrets at every reconcile, its destroy
//! included (the observation plans first). A Secret deleted together with, or before, the
//! Workspaces that read it (`kubectl delete` of a cluster's manifests, or the VPC Workspace
//! deleted and its connection Secret garbage-collected after it) leaves their destroys unable
//! to run, and their finalizers, the applies' and the control plane's with them, stay for ever.
//!
//! So the guard puts [`names::SECRET_FINALIZER`] on each such Secret while a reader exists,
//! and removes it once none is left: a deleted Secret stays readable (Terminating) until the
//! last destroy reading it has finished, then goes. Readers are the operator's Workspaces whose
//! `varFiles` or `env` name the Secret (a destroy in progress included), and the applies not
//! being deleted that wait for it (`waitForSecrets`), which will create such a Workspace: the
//! Secret is protected before its first reader exists. No cycle: a destroy needs the Secret
//! to exist, not to be live, and the finalizer waits only for Workspaces to be gone.
//!
//! Only Secrets in the operator's scope are guarded (a namespace-scoped operator's watch).
//! The finalizer is the only thing the operator ever writes to a Secret (a merge patch of
//! `metadata.finalizers` at the version read); values are never read.
//!
//! Here the wiring; `reads` says which Secrets a Workspace reads, `decide` what a Secret needs
//! (both pure), `reconcile` writes it.

mod decide;
mod reads;
mod reconcile;

pub use decide::{Change, decide};
pub use reads::{secrets_read, workspace_index_keys};

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::Context;
use super::workspace_apply::WorkspaceCache;
use crate::api::{Workspace, WorkspaceTemplateApply};
use crate::error::Error;
use crate::names::SECRET_FINALIZER;
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::packed::{Packed, reconcile_decoded};
use crate::runtime::shared::{ApplyCache, Events, SecretCache};
use crate::runtime::{echo, index};

const CONTROLLER: &str = "secretguard";
/// Safety-net resync of the Secrets it guards.
const RESYNC: Duration = Duration::from_secs(600);

struct State {
    ctx: Arc<Context>,
    secrets: SecretCache,
    workspaces: WorkspaceCache,
    applies: ApplyCache,
}

impl State {
    /// How many of the operator's Workspaces read `secret`, and live applies wait for it.
    fn readers(&self, secret: &Secret) -> usize {
        let key = index::secret_of(secret);
        let workspaces = self.workspaces.indexed_refs(&key).len();
        let applies = self
            .applies
            .count_indexed(&key, |meta| meta.deletion_timestamp.is_none());
        workspaces + applies
    }
}

/// The caches and events the guard runs on; the Workspace cache must be indexed with
/// [`workspace_index_keys`], the apply cache by the Secrets applies wait for.
pub struct Watched {
    /// Secrets in the operator's scope.
    pub secrets: SecretCache,
    /// Their watch events.
    pub secret_events: Events<Secret>,
    /// Every Workspace.
    pub workspaces: WorkspaceCache,
    /// Their watch events.
    pub workspace_events: Events<Workspace>,
    /// WorkspaceTemplateApplies.
    pub applies: ApplyCache,
    /// Their watch events.
    pub apply_events: Events<WorkspaceTemplateApply>,
}

/// Runs the guard until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watched {
        secrets,
        secret_events,
        workspaces,
        workspace_events,
        applies,
        apply_events,
    } = watched;
    let state = Arc::new(State {
        ctx,
        secrets: secrets.clone(),
        workspaces,
        applies,
    });
    // A Secret matters when it carries the finalizer or has a reader; most have neither.
    let relevant = Arc::clone(&state);
    let own = secret_events
        .applied_objects()
        .filter(move |result| {
            let keep = match result {
                Ok(s) => {
                    s.finalizers().iter().any(|f| f == SECRET_FINALIZER) || relevant.readers(s) > 0
                }
                Err(_) => true,
            };
            futures::future::ready(keep)
        })
        // The controller schedules from the packed store: it reads the reference only.
        .map_ok(|secret| Packed::reference(&secret));
    // A Workspace's reads change with its spec (generation); its deletion ends them.
    let changes = echo::Changes::new(reads_digest);
    let workspace_triggers = workspace_events.try_filter_map(move |event| {
        changes.follow(&event);
        let news = match event {
            watcher::Event::Apply(ws) | watcher::Event::InitApply(ws) => {
                changes.moved(&ws).then_some(ws)
            }
            watcher::Event::Delete(ws) => Some(ws),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(news))
    });
    let scope = state.ctx.namespace.clone();
    let in_scope = move |ns: &str| scope.as_deref().is_none_or(|s| s == ns);
    let scope_of_applies = in_scope.clone();
    Controller::for_stream(own, secrets.packed_store())
        .watches_stream(workspace_triggers, move |ws| {
            let refs: Vec<_> = secrets_read(&ws)
                .into_iter()
                .filter(|(ns, _)| in_scope(ns))
                .map(|(ns, name)| ObjectRef::new(&name).within(&ns))
                .collect();
            refs
        })
        .watches_stream(apply_events.touched_objects(), move |apply| {
            let refs: Vec<_> = apply
                .spec
                .wait_for_secrets
                .iter()
                .flatten()
                .filter(|r| scope_of_applies(&r.namespace))
                .map(|r| ObjectRef::new(&r.name).within(&r.namespace))
                .collect();
            refs
        })
        .with_config(state.ctx.controller_config(Duration::ZERO))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(
            |secret, state| {
                reconcile_decoded(secret, state, "a cached Secret", reconcile::reconcile)
            },
            error_policy,
            state,
        )
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// What decides which Secrets a Workspace reads: its generation (every spec change moves it),
/// its labels (which say whose it is) and whether it is being deleted.
fn reads_digest(ws: &Workspace) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    (
        ws.metadata.generation,
        &ws.metadata.labels,
        ws.metadata.deletion_timestamp.is_some(),
    )
        .hash(&mut hasher);
    hasher.finish()
}

fn error_policy(_secret: Arc<Packed<Secret>>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}
