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

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::{Workspace, WorkspaceTemplateApply};
use crate::error::{Error, Result};
use crate::names::{self, SECRET_FINALIZER};
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::Cache;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::shared::Events;
use crate::runtime::{echo, index};

const CONTROLLER: &str = "secretguard";
/// Safety-net resync of the Secrets it guards.
const RESYNC: Duration = Duration::from_secs(600);

/// The Secrets (namespace, name) a Workspace reads: its var files' and its environment's
/// Secret references, sorted, without duplicates.
pub fn secrets_read(ws: &Workspace) -> Vec<(String, String)> {
    let fp = &ws.spec.for_provider;
    let var_files = fp
        .var_files
        .iter()
        .flatten()
        .filter_map(|f| f.secret_key_ref.as_ref())
        .map(|r| (r.namespace.clone(), r.name.clone()));
    // `env[].secretKeyRef` is not typed here (`extra`); it names a Secret the same way.
    let env = fp
        .extra
        .get("env")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let r = e.get("secretKeyRef")?;
            Some((
                r.get("namespace")?.as_str()?.to_string(),
                r.get("name")?.as_str()?.to_string(),
            ))
        });
    let mut read: Vec<_> = var_files.chain(env).collect();
    read.sort();
    read.dedup();
    read
}

/// Index keys of a Workspace in the Workspace cache: the Secrets it reads, for Workspaces this
/// operator created (labelled with their apply's uid) only.
pub fn workspace_index_keys(ws: &Workspace) -> Vec<String> {
    if !ws.labels().contains_key(names::LABEL_APPLY_UID) {
        return Vec::new();
    }
    secrets_read(ws)
        .iter()
        .map(|(ns, name)| index::secret(ns, name))
        .collect()
}

/// What the guard writes to a Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Add the finalizer: a reader exists.
    Protect,
    /// Remove the finalizer: no reader is left.
    Release,
}

/// The change `secret` needs when `readers` objects read it, or None. A Secret being deleted
/// cannot take a new finalizer (the API server refuses it), so one deleted before the guard
/// saw its first reader is left as it is.
pub fn decide(secret: &Secret, readers: usize) -> Option<Change> {
    let guarded = secret.finalizers().iter().any(|f| f == SECRET_FINALIZER);
    let deleting = secret.metadata.deletion_timestamp.is_some();
    match (readers > 0, guarded) {
        (true, false) if !deleting => Some(Change::Protect),
        (false, true) => Some(Change::Release),
        _ => None,
    }
}

struct State {
    ctx: Arc<Context>,
    secrets: Cache<Secret>,
    workspaces: Cache<Workspace>,
    applies: Cache<WorkspaceTemplateApply>,
}

impl State {
    /// How many of the operator's Workspaces read `secret`, and live applies wait for it.
    fn readers(&self, secret: &Secret) -> usize {
        let key = index::secret_of(secret);
        let workspaces = self.workspaces.indexed(&key).len();
        let applies = self
            .applies
            .indexed(&key)
            .iter()
            .filter(|a| a.metadata.deletion_timestamp.is_none())
            .count();
        workspaces + applies
    }
}

/// The caches and events the guard runs on; the Workspace cache must be indexed with
/// [`workspace_index_keys`], the apply cache by the Secrets applies wait for.
pub struct Watched {
    /// Secrets in the operator's scope.
    pub secrets: Cache<Secret>,
    /// Their watch events.
    pub secret_events: Events<Secret>,
    /// Every Workspace.
    pub workspaces: Cache<Workspace>,
    /// Their watch events.
    pub workspace_events: Events<Workspace>,
    /// WorkspaceTemplateApplies.
    pub applies: Cache<WorkspaceTemplateApply>,
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
    let own = secret_events.applied_objects().filter(move |result| {
        let keep = match result {
            Ok(s) => {
                s.finalizers().iter().any(|f| f == SECRET_FINALIZER) || relevant.readers(s) > 0
            }
            Err(_) => true,
        };
        futures::future::ready(keep)
    });
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
    Controller::for_stream(own, secrets.store())
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
        .run(reconcile, error_policy, state)
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

fn error_policy(_secret: Arc<Secret>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

async fn reconcile(secret: Arc<Secret>, state: Arc<State>) -> Result<Action> {
    let caches = [
        state.secrets.is_ready(),
        state.workspaces.is_ready(),
        state.applies.is_ready(),
    ];
    if caches.contains(&false) {
        return Ok(Action::requeue(super::CACHES_FILLING));
    }
    let _timer = state.ctx.metrics.reconcile(CONTROLLER);
    let secret = state.secrets.latest(secret);
    let ns = secret
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(secret.name_any()))?;
    let api: Api<Secret> = Api::namespaced(state.ctx.client.clone(), &ns);
    match decide(&secret, state.readers(&secret)) {
        Some(Change::Protect) => {
            ensure_finalizer(&api, &state.secrets, secret, SECRET_FINALIZER).await?;
        }
        Some(Change::Release) => remove_finalizer(&api, secret.as_ref(), SECRET_FINALIZER).await?,
        None => {}
    }
    // A Workspace deletion missed while a watch relisted would leave the finalizer: look again
    // now and then (in memory; nothing is written unless something changed).
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace::{KeyReference, VarFile};
    use kube::api::ObjectMeta;
    use serde_json::json;

    fn var_file(ns: &str, name: &str) -> VarFile {
        VarFile {
            source: "SecretKey".into(),
            format: Some("JSON".into()),
            secret_key_ref: Some(KeyReference {
                namespace: ns.into(),
                name: name.into(),
                key: "k".into(),
            }),
            config_map_key_ref: None,
        }
    }

    fn workspace(labelled: bool) -> Workspace {
        let mut ws: Workspace = serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": { "name": "w" },
            "spec": { "forProvider": { "source": "Inline", "module": "",
                "env": [
                    { "name": "A", "secretKeyRef": { "namespace": "ns", "name": "creds", "key": "a" } },
                    { "name": "B", "value": "plain" }
                ] } }
        }))
        .unwrap();
        ws.spec.for_provider.var_files = Some(vec![
            var_file("ns", "vpc"),
            var_file("ns", "eks"),
            var_file("ns", "vpc"),
        ]);
        if labelled {
            ws.metadata.labels = Some([(names::LABEL_APPLY_UID.to_string(), "u".into())].into());
        }
        ws
    }

    #[test]
    fn a_workspace_reads_its_var_file_and_env_secrets_once_each() {
        let pair = |n: &str| ("ns".to_string(), n.to_string());
        assert_eq!(
            secrets_read(&workspace(false)),
            [pair("creds"), pair("eks"), pair("vpc")]
        );
    }

    #[test]
    fn only_the_operators_workspaces_are_indexed() {
        assert!(workspace_index_keys(&workspace(false)).is_empty());
        assert_eq!(
            workspace_index_keys(&workspace(true)),
            ["secret:ns/creds", "secret:ns/eks", "secret:ns/vpc"]
        );
    }

    fn secret(finalizer: bool, deleting: bool) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("vpc".into()),
                finalizers: finalizer.then(|| vec![SECRET_FINALIZER.to_string()]),
                deletion_timestamp: deleting.then(|| {
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_read_secret_is_kept_until_its_last_reader_is_gone() {
        assert_eq!(decide(&secret(false, false), 1), Some(Change::Protect));
        assert_eq!(decide(&secret(true, false), 2), None);
        // Deleted while read: it stays (Terminating) until the readers are gone.
        assert_eq!(decide(&secret(true, true), 1), None);
        assert_eq!(decide(&secret(true, true), 0), Some(Change::Release));
        assert_eq!(decide(&secret(true, false), 0), Some(Change::Release));
        assert_eq!(decide(&secret(false, false), 0), None);
        // Too late: a Secret being deleted takes no new finalizer.
        assert_eq!(decide(&secret(false, true), 1), None);
    }
}
