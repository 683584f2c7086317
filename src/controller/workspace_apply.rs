//! WorkspaceTemplateApply controller: keeps one provider-terraform Workspace per apply, built
//! from its WorkspaceTemplate, and mirrors the Workspace's state into the apply's status.
//!
//! Unlike CAPT it updates the Workspace when the template or variables change, watches
//! Workspaces, Secrets and templates instead of polling, and reports waiting and failures as
//! conditions.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::secrets::Required;
use super::{Cleanup, Context};
use crate::api::conditions::{READY, SYNCED};
use crate::api::workspace::WorkspaceSpec;
use crate::api::{
    Workspace, WorkspaceTemplate, WorkspaceTemplateApply, WorkspaceTemplateApplyStatus,
};
use crate::error::{Error, Result};
use crate::names::{self, APPLY_FINALIZER, FIELD_MANAGER};
use crate::render;
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::echo::{self, OwnWrites};
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::shared::Watched;
use crate::runtime::write::{self, write};
use crate::runtime::{index, version};
use crate::status::apply::{mirror_workspace, workspace_has_news};
use crate::status::conditions::{WantedCondition, merge};
use crate::status::pacing;
use crate::status::reason;

const CONTROLLER: &str = "workspacetemplateapply";
/// Condition type: the WorkspaceTemplate exists (informational; never a failure by itself).
const TEMPLATE_AVAILABLE: &str = "TemplateAvailable";
/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// The apply controller's view of the cluster: watch caches, each fed by the same stream that
/// triggers reconciles (see `cache`).
pub struct State {
    ctx: Arc<Context>,
    applies: Cache<WorkspaceTemplateApply>,
    workspaces: Cache<Workspace>,
    templates: Cache<WorkspaceTemplate>,
    secrets: Cache<Secret>,
    /// Workspaces this controller created, whose echo need not wake it.
    created: Arc<OwnWrites<Workspace>>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let config = || ctx.watcher_config();
    let Watched {
        applies,
        apply_events,
        secrets,
        secret_events,
    } = watched;
    // All Workspaces, not only this operator's: a name taken by someone else's must be seen
    // before one is created under it.
    let (workspaces, workspace_events) = cache::watch(
        watcher(Api::<Workspace>::all(ctx.client.clone()), config()),
        trim_workspace,
        None,
    );
    let (templates, template_events) = cache::watch(
        watcher(ctx.scoped_api::<WorkspaceTemplate>(), config()),
        cache::keep_all,
        None,
    );
    let (by_secret, by_template, scope) = (applies.clone(), applies.clone(), ctx.namespace.clone());
    let created = Arc::new(OwnWrites::default());
    let state = Arc::new(State {
        ctx,
        applies: applies.clone(),
        workspaces,
        templates,
        secrets,
        created: Arc::clone(&created),
    });
    // A Workspace wakes its apply when what the apply reports or compares of it changed, not
    // for the echo of its creation nor for a relisted, unchanged Workspace.
    let changes = echo::Changes::new(workspace_digest);
    let workspace_triggers = workspace_events.try_filter_map(move |event| {
        // Deletions, and objects a relist no longer returns, leave no entry behind.
        changes.follow(&event);
        created.follow(&event);
        let news = match event {
            watcher::Event::Apply(ws) | watcher::Event::InitApply(ws) => {
                // Both see every version, in order.
                let (moved, echo) = (changes.moved(&ws), created.is_echo(&ws));
                (moved && !echo).then_some(ws)
            }
            watcher::Event::Delete(ws) => Some(ws),
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(news))
    });
    // Status writes (this controller's own) do not trigger: the Workspace's changes do.
    let own = apply_events
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default());
    Controller::for_stream(own, applies.store())
        .watches_stream(workspace_triggers, move |ws| {
            apply_of_workspace(&ws, scope.as_deref())
        })
        .watches_stream(secret_events.touched_objects(), move |s| {
            applies_waiting_for(&by_secret, &s)
        })
        .watches_stream(template_events.touched_objects(), move |t| {
            applies_using(&by_template, &t)
        })
        .with_config(state.ctx.controller_config(Duration::ZERO))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// Cached Workspaces keep what this controller reads: the spec it compares (the module as a
/// digest, [`fingerprint_module`]) and the conditions it reports, not the provider's outputs
/// (`status.atProvider`), which reach the operator through the connection Secrets.
pub fn trim_workspace(ws: &mut Workspace) {
    fingerprint_module(ws);
    if let Some(status) = &mut ws.status {
        status.at_provider = None;
    }
}

/// Cached Workspaces keep a digest of their Terraform module instead of its text: the cache
/// only compares it, and 1,000s of modules would dominate the operator's memory.
fn fingerprint_module(ws: &mut Workspace) {
    let module = &mut ws.spec.for_provider.module;
    if !module.starts_with(MODULE_DIGEST) {
        *module = format!("{MODULE_DIGEST}{}", names::short_hash(module, 64));
    }
}

/// Digest of what an apply reads of its Workspace: its generation (which every spec change
/// moves), lifecycle metadata and status; not the version fields.
fn workspace_digest(ws: &Workspace) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    version::spec_or_lifecycle(ws).hash(&mut hasher);
    version::hash_serialized(&ws.status, &mut hasher);
    hasher.finish()
}

/// Prefix of a fingerprinted module (not valid HCL, so never mistaken for a module).
const MODULE_DIGEST: &str = "sha256:";

/// The apply a Workspace belongs to, from the annotation written when it was created.
fn apply_of_workspace(
    ws: &Workspace,
    namespace: Option<&str>,
) -> Option<ObjectRef<WorkspaceTemplateApply>> {
    let (ns, name) = ws
        .annotations()
        .get(names::ANNOTATION_APPLY)?
        .split_once('/')?;
    namespace
        .is_none_or(|scope| scope == ns)
        .then(|| ObjectRef::new(name).within(ns))
}

/// Applies that wait for a Secret.
fn applies_waiting_for(
    applies: &Cache<WorkspaceTemplateApply>,
    secret: &Secret,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    applies.indexed_refs(&index::secret_of(secret))
}

/// Applies that use a WorkspaceTemplate.
fn applies_using(
    applies: &Cache<WorkspaceTemplateApply>,
    template: &WorkspaceTemplate,
) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    let key = index::template(
        &template.namespace().unwrap_or_default(),
        &template.name_any(),
    );
    applies.indexed_refs(&key)
}

fn error_policy(_apply: Arc<WorkspaceTemplateApply>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

async fn reconcile(apply: Arc<WorkspaceTemplateApply>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.workspaces.is_ready() && state.templates.is_ready() && state.secrets.is_ready()) {
        return Ok(Action::requeue(super::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    // The cache may hold this process's last status write, newer than the scheduled copy.
    let apply = state.applies.latest(apply);
    let ns = apply
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(apply.name_any()))?;
    let api: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    if apply.metadata.deletion_timestamp.is_some() {
        if cleanup(&apply, &state).await? == Cleanup::Done {
            remove_finalizer(&api, apply.as_ref(), APPLY_FINALIZER).await?;
            ctx.forget_events(apply.uid().as_deref());
        } else if let Some(ws) =
            workspace(&state, &workspace_name_of(&apply)).filter(|ws| owned_by(ws, &apply))
        {
            // The destroy's progress and errors reach the apply's status (and from there the
            // control plane's), so a deletion that does not finish says why.
            write_status(&apply, &state, Some(ws.as_ref()), Vec::new(), None).await?;
        }
        return Ok(Action::await_change());
    }
    // Applies rendered by the control-plane controller carry the finalizer already.
    let apply = ensure_finalizer(&api, &state.applies, apply, APPLY_FINALIZER).await?;
    reconcile_apply(&apply, &state).await
}

/// Name of the Workspace of an apply: the one recorded in status, else the derived one.
pub fn workspace_name_of(apply: &WorkspaceTemplateApply) -> String {
    apply
        .status
        .as_ref()
        .and_then(|s| s.workspace_name.clone())
        .unwrap_or_else(|| {
            names::workspace_name(&apply.namespace().unwrap_or_default(), &apply.name_any())
        })
}

/// Whether `ws` was created for this apply (same uid label).
fn owned_by(ws: &Workspace, apply: &WorkspaceTemplateApply) -> bool {
    ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str) == apply.uid().as_deref()
}

/// Missing secrets or keys as a message, or None when all are present. Only key names are
/// read, never values.
async fn missing_secrets(state: &State, apply: &WorkspaceTemplateApply) -> Result<Option<String>> {
    let ctx = &state.ctx;
    let mut missing = Vec::new();
    for req in apply.spec.wait_for_secrets.iter().flatten() {
        let keys = req.keys.clone().unwrap_or_default();
        let required = Required {
            namespace: &req.namespace,
            name: &req.name,
            keys: &keys,
        };
        missing.extend(
            super::secrets::missing(
                &ctx.client,
                &state.secrets,
                ctx.in_scope(&req.namespace),
                required,
            )
            .await?,
        );
    }
    Ok((!missing.is_empty()).then(|| format!("waiting for {}", missing.join("; "))))
}

/// A Workspace by name, from the cache (which holds every Workspace).
fn workspace(state: &State, name: &str) -> Option<Arc<Workspace>> {
    state.workspaces.get_named(None, name)
}

/// Workspaces this apply waits for that are not Ready yet, as a message.
fn unready_workspaces(state: &State, apply: &WorkspaceTemplateApply) -> Option<String> {
    let mut waiting = Vec::new();
    for r in apply.spec.wait_for_workspaces.iter().flatten() {
        let ready = match workspace(state, &r.name) {
            Some(ws) => mirror_workspace(&ws)
                .iter()
                .any(|c| c.type_ == READY && c.status),
            None => false,
        };
        if !ready {
            waiting.push(r.name.clone());
        }
    }
    (!waiting.is_empty())
        .then(|| format!("waiting for Workspaces to be Ready: {}", waiting.join(", ")))
}

/// The WorkspaceTemplate of an apply: from the cache, or read directly when it lives in a
/// namespace outside the operator's watch.
async fn template(
    state: &State,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<WorkspaceTemplate>>> {
    if state.ctx.in_scope(namespace) {
        return Ok(state.templates.get_named(Some(namespace), name));
    }
    let api: Api<WorkspaceTemplate> = Api::namespaced(state.ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

async fn reconcile_apply(apply: &WorkspaceTemplateApply, state: &State) -> Result<Action> {
    let ctx = &state.ctx;
    let ws_name = workspace_name_of(apply);
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    let template_ns = apply.template_namespace();
    let existing = workspace(state, &ws_name);
    let existing = existing.as_deref();

    if let Some(ws) = existing.filter(|ws| !owned_by(ws, apply)) {
        let message = match ws.annotations().get(names::ANNOTATION_APPLY) {
            Some(owner) => {
                format!("Workspace {ws_name} already belongs to WorkspaceTemplateApply {owner}")
            }
            None => format!(
                "Workspace {ws_name} exists and was not created by this operator; delete or rename it"
            ),
        };
        return blocked(apply, state, existing, reason::WORKSPACE_CONFLICT, message).await;
    }
    let Some(template) = template(state, &template_ns, &apply.spec.template_ref.name).await? else {
        let message = format!(
            "WorkspaceTemplate {template_ns}/{} not found; create it or fix spec.templateRef",
            apply.spec.template_ref.name
        );
        // An applied Workspace keeps working without its template: it is only frozen. That
        // is a warning, not a failure of what already exists.
        if existing.is_some()
            && apply
                .status
                .as_ref()
                .is_some_and(|s| s.observed_generation == apply.metadata.generation)
        {
            ctx.event(
                apply,
                EventType::Warning,
                reason::TEMPLATE_NOT_FOUND,
                message.clone(),
            )
            .await;
            let extra = vec![WantedCondition::new(
                TEMPLATE_AVAILABLE,
                false,
                reason::TEMPLATE_NOT_FOUND,
                message,
            )];
            return write_status(apply, state, existing, extra, None).await;
        }
        return blocked(apply, state, existing, reason::TEMPLATE_NOT_FOUND, message).await;
    };
    let spec = match render::workspace::render(apply, &template, &ws_name) {
        Ok(spec) => spec,
        Err(e) => {
            return blocked(
                apply,
                state,
                existing,
                reason::INVALID_TEMPLATE,
                e.to_string(),
            )
            .await;
        }
    };

    // A Workspace of an earlier incarnation of this apply is still being destroyed.
    if existing.is_some_and(|ws| ws.metadata.deletion_timestamp.is_some()) {
        let message = format!("waiting for the previous Workspace {ws_name} to be deleted");
        return waiting(apply, state, reason::CREATING, message).await;
    }
    let mut desired = render::workspace::object(apply, &ws_name, spec);
    // With the record of what was rendered, so that a removal shows (`runtime::write::stamp`).
    write::stamp(&mut desired)?;
    // Compared as the cache keeps it (module fingerprinted).
    let mut comparable = desired.clone();
    state.workspaces.prepare(&mut comparable);
    if let Some(ws) = existing.filter(|ws| state.workspaces.holds(ws, &comparable)) {
        if let Some(wait) = awaiting_first_report(apply, ws) {
            return Ok(Action::requeue(wait));
        }
        let hash = spec_hash(&comparable.spec);
        return write_status(apply, state, existing, template_found(), Some(hash)).await;
    }
    // A write is due; the secrets and workspaces it needs are checked now (only key names).
    if let Some(message) = missing_secrets(state, apply).await? {
        // An existing Workspace keeps being reported; it is updated once they are back.
        return match existing {
            Some(ws) => write_status(apply, state, Some(ws), template_found(), None).await,
            None => waiting(apply, state, reason::WAITING_FOR_SECRETS, message).await,
        };
    }
    if existing.is_none()
        && let Some(message) = unready_workspaces(state, apply)
    {
        return waiting(apply, state, reason::WAITING_FOR_WORKSPACES, message).await;
    }
    let written = write(&workspaces, &state.workspaces, &desired, existing).await?;
    let verb = if existing.is_some() {
        "Updated"
    } else {
        "Created"
    };
    info!(apply = %apply.name_any(), workspace = %ws_name, "{verb} Workspace");
    // A control plane's applies are announced on the control plane, where users look.
    if !owned_by_control_plane(apply) {
        ctx.event(
            apply,
            EventType::Normal,
            &format!("{verb}Workspace"),
            format!("{verb} Workspace {ws_name}"),
        )
        .await;
    }
    if existing.is_none() {
        // Nothing to report before the provider's first report, which wakes this apply; if it
        // does not come within the grace, the apply reports the Workspace as created.
        state.created.record(&written);
        state.workspaces.remember(written);
        return Ok(Action::requeue(pacing::FIRST_REPORT_GRACE));
    }
    state.workspaces.remember(written);
    // The update's echo wakes this apply to report the Workspace as being applied.
    Ok(Action::requeue(RESYNC))
}

/// When an apply that has reported nothing yet has a new Workspace the provider has said
/// nothing of but "creating" (`workspace_has_news`), how long to wait for more
/// (`pacing::FIRST_REPORT_GRACE`): a provider that finishes within it gets its answer reported
/// in one status write; one that takes longer has "creating" reported when the grace is over.
fn awaiting_first_report(apply: &WorkspaceTemplateApply, ws: &Workspace) -> Option<Duration> {
    let reported = apply
        .status
        .as_ref()
        .is_some_and(|s| !s.conditions.is_empty())
        || workspace_has_news(ws);
    pacing::first_report_wait(reported, super::age(ws)?)
}

/// Whether a CAPTControlPlane owns this apply (it then reports the apply's progress itself).
fn owned_by_control_plane(apply: &WorkspaceTemplateApply) -> bool {
    apply
        .owner_references()
        .iter()
        .any(|o| o.kind == "CAPTControlPlane" && o.controller == Some(true))
}

fn template_found() -> Vec<WantedCondition> {
    vec![WantedCondition::new(
        TEMPLATE_AVAILABLE,
        true,
        reason::TEMPLATE_FOUND,
        "",
    )]
}

/// Reports an error the user has to fix (the Workspace, if any, is left as it is).
async fn blocked(
    apply: &WorkspaceTemplateApply,
    state: &State,
    ws: Option<&Workspace>,
    why: &str,
    message: String,
) -> Result<Action> {
    if !has_condition(apply, SYNCED, false, why) {
        state
            .ctx
            .event(apply, EventType::Warning, why, message.clone())
            .await;
    }
    let mut extra = vec![WantedCondition::new(SYNCED, false, why, message.clone())];
    if ws.is_none() {
        extra.push(WantedCondition::new(READY, false, why, message));
    }
    write_status(apply, state, ws, extra, None).await
}

/// Reports that the apply waits for something that a watch will announce.
async fn waiting(
    apply: &WorkspaceTemplateApply,
    state: &State,
    why: &str,
    message: String,
) -> Result<Action> {
    if !has_condition(apply, READY, false, why) {
        state
            .ctx
            .event(apply, EventType::Normal, why, message.clone())
            .await;
    }
    let extra = vec![
        WantedCondition::new(SYNCED, true, reason::RECONCILE_SUCCESS, ""),
        WantedCondition::new(READY, false, why, message),
    ];
    write_status(apply, state, None, extra, None).await
}

fn has_condition(apply: &WorkspaceTemplateApply, type_: &str, status: bool, why: &str) -> bool {
    let want = if status { "True" } else { "False" };
    apply
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == type_ && c.status == want && c.reason == why)
}

/// Writes the status if it changed. Conditions come from the Workspace when there is one;
/// `overrides` (computed by this controller) take precedence. `applied` is the hash of the
/// Workspace spec when the Workspace holds the desired spec.
async fn write_status(
    apply: &WorkspaceTemplateApply,
    state: &State,
    ws: Option<&Workspace>,
    overrides: Vec<WantedCondition>,
    applied: Option<String>,
) -> Result<Action> {
    let old = apply.status.clone().unwrap_or_default();
    let mut desired: Vec<WantedCondition> = ws.map(mirror_workspace).unwrap_or_default();
    for o in overrides {
        desired.retain(|d| d.type_ != o.type_);
        desired.push(o);
    }
    if desired.is_empty() {
        desired = vec![WantedCondition::new(READY, false, reason::CREATING, "")];
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = WorkspaceTemplateApplyStatus {
        workspace_name: ws.map(|w| w.name_any()).or(old.workspace_name.clone()),
        applied: old.applied || ws.is_some(),
        last_applied_time: match &applied {
            Some(hash) if old.last_applied_hash.as_ref() != Some(hash) => Some(now.clone()),
            _ => old.last_applied_time.clone(),
        },
        last_applied_hash: applied.or(old.last_applied_hash.clone()),
        conditions: merge(&old.conditions, &desired, apply.metadata.generation, &now),
        observed_generation: apply.metadata.generation,
    };
    if new != old {
        let api: Api<WorkspaceTemplateApply> = Api::namespaced(
            state.ctx.client.clone(),
            &apply.namespace().unwrap_or_default(),
        );
        // This controller is the status's only writer: a merge patch from the cached status
        // does what an apply would, at less API server cost (see BENCHMARKS.md).
        let to_value = |s: &WorkspaceTemplateApplyStatus| {
            serde_json::to_value(s).map_err(|e| Error::Serialization("apply status", e))
        };
        let body = json!({ "status": crate::runtime::diff::merge_patch(&to_value(&old)?, &to_value(&new)?) });
        let written = api
            .patch_status(
                &apply.name_any(),
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(&body),
            )
            .await?;
        state.applies.remember(written);
    }
    Ok(Action::requeue(RESYNC))
}

fn spec_hash(spec: &WorkspaceSpec) -> String {
    names::short_hash(&serde_json::to_string(spec).unwrap_or_default(), 16)
}

/// Deletes the Workspace (unless retained) and waits until it is gone before the apply's
/// finalizer is released, so Terraform's destroy has finished when the apply disappears.
async fn cleanup(apply: &WorkspaceTemplateApply, state: &State) -> Result<Cleanup> {
    let ctx = &state.ctx;
    let ws_name = workspace_name_of(apply);
    if apply.spec.retain_workspace_on_delete == Some(true) {
        ctx.event(
            apply,
            EventType::Normal,
            "RetainedWorkspace",
            format!("kept Workspace {ws_name} as requested"),
        )
        .await;
        return Ok(Cleanup::Done);
    }
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    match workspace(state, &ws_name) {
        Some(ws) if owned_by(&ws, apply) => {
            if ws.metadata.deletion_timestamp.is_none() {
                match workspaces.delete(&ws_name, &Default::default()).await {
                    // Still there, held by the provider's finalizer: remember that it is
                    // terminating, so a reconcile before the watch echo does not delete again.
                    Ok(deleted) => {
                        if let Some(terminating) = deleted.left() {
                            state.workspaces.remember(terminating);
                        }
                    }
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        return Ok(Cleanup::Done);
                    }
                    Err(e) => return Err(e.into()),
                }
                ctx.event(
                    apply,
                    EventType::Normal,
                    "DeletingWorkspace",
                    format!("deleting Workspace {ws_name}"),
                )
                .await;
            }
            // The Workspace watch brings us back when it is gone.
            Ok(Cleanup::Waiting)
        }
        _ => Ok(Cleanup::Done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_workspaces_keep_a_module_digest_and_conditions_but_no_outputs() {
        let mut ws: Workspace = serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": { "name": "ws", "generation": 2 },
            "spec": { "forProvider": { "source": "Inline", "module": "resource \"x\" \"y\" {}" } },
            "status": {
                "atProvider": { "outputs": { "cluster_name": "c" }, "checksum": "abc" },
                "conditions": [{ "type": "Ready", "status": "True", "reason": "Available",
                                 "lastTransitionTime": "2026-01-01T00:00:00Z" }]
            }
        }))
        .expect("a Workspace");
        let mut again = ws.clone();
        trim_workspace(&mut ws);
        let module = &ws.spec.for_provider.module;
        assert!(module.starts_with(MODULE_DIGEST) && !module.contains("resource"));
        let status = ws.status.as_ref().expect("status kept");
        assert_eq!(status.at_provider, None);
        assert_eq!(status.conditions.len(), 1);
        // Trimming is idempotent: a desired object trimmed for comparison matches the cache.
        trim_workspace(&mut again);
        trim_workspace(&mut again);
        let json = |w: &Workspace| serde_json::to_value(w).expect("serializes");
        assert_eq!(json(&again), json(&ws));
    }
}
