//! WorkspaceTemplateApply controller: keeps one provider-terraform Workspace per apply, built
//! from its WorkspaceTemplate, and mirrors the Workspace's state into the apply's status.
//!
//! Unlike CAPT it updates the Workspace when the template or variables change, watches
//! Workspaces, Secrets and templates instead of polling, and reports waiting and failures as
//! conditions.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::{Cleanup, Context, apply_if_changed, ensure_finalizer, missing_secret_keys, remove_finalizer};
use crate::api::conditions::{READY, SYNCED};
use crate::api::workspace::WorkspaceSpec;
use crate::api::{Workspace, WorkspaceTemplate, WorkspaceTemplateApply, WorkspaceTemplateApplyStatus};
use crate::error::{Error, Result};
use crate::names::{self, APPLY_FINALIZER, FIELD_MANAGER};
use crate::render;
use crate::status::apply::{mirror_workspace, reason};
use crate::status::conditions::{Desired, merge};

const CONTROLLER: &str = "workspacetemplateapply";
/// Condition type: the WorkspaceTemplate exists (informational; never a failure by itself).
const TEMPLATE_AVAILABLE: &str = "TemplateAvailable";
/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let applies: Api<WorkspaceTemplateApply> = ctx.scoped_api();
    // The related objects are only mapped to applies by name and annotations: metadata suffices.
    let workspaces: Api<PartialObjectMeta<Workspace>> = Api::all(ctx.client.clone());
    let secrets: Api<PartialObjectMeta<Secret>> = ctx.scoped_api();
    let templates: Api<PartialObjectMeta<WorkspaceTemplate>> = ctx.scoped_api();

    let controller = Controller::new(applies, watcher::Config::default().any_semantic());
    let store = controller.store();
    let (by_secret, by_template) = (store.clone(), store);
    controller
        .watches(workspaces, watcher::Config::default().labels(&workspace_selector(ctx.namespace.as_deref())), apply_of_workspace)
        .watches(secrets, watcher::Config::default().any_semantic(), move |s| applies_waiting_for(&by_secret, &s))
        .watches(templates, watcher::Config::default().any_semantic(), move |t| applies_using(&by_template, &t))
        .trigger_backoff(super::WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// Workspaces created by this operator; when it watches one namespace, only that namespace's.
/// Workspaces are cluster-scoped, so the namespace is a label.
fn workspace_selector(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{},{}={}", names::LABEL_APPLY_UID, names::LABEL_APPLY_NAMESPACE, names::label_value(ns)),
        None => names::LABEL_APPLY_UID.to_string(),
    }
}

/// The apply a Workspace belongs to, from the annotation written when it was created.
fn apply_of_workspace(ws: PartialObjectMeta<Workspace>) -> Option<ObjectRef<WorkspaceTemplateApply>> {
    let (ns, name) = ws.annotations().get(names::ANNOTATION_APPLY)?.split_once('/')?;
    Some(ObjectRef::new(name).within(ns))
}

/// Applies that wait for a Secret.
fn applies_waiting_for(store: &Store<WorkspaceTemplateApply>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    store
        .state()
        .iter()
        .filter(|a| a.spec.wait_for_secrets.iter().flatten().any(|s| s.name == name && s.namespace == ns))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Applies that use a WorkspaceTemplate.
fn applies_using(store: &Store<WorkspaceTemplateApply>, template: &PartialObjectMeta<WorkspaceTemplate>) -> Vec<ObjectRef<WorkspaceTemplateApply>> {
    let (ns, name) = (template.namespace().unwrap_or_default(), template.name_any());
    store
        .state()
        .iter()
        .filter(|a| a.spec.template_ref.name == name && template_namespace(a) == ns)
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

fn template_namespace(apply: &WorkspaceTemplateApply) -> String {
    apply.spec.template_ref.namespace.clone().unwrap_or_else(|| apply.namespace().unwrap_or_default())
}

fn error_policy(_apply: Arc<WorkspaceTemplateApply>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(super::retry_after(error))
}

async fn reconcile(apply: Arc<WorkspaceTemplateApply>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = apply.namespace().ok_or_else(|| Error::MissingMetadata(apply.name_any()))?;
    let api: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    if apply.metadata.deletion_timestamp.is_some() {
        if cleanup(&apply, &ctx).await? == Cleanup::Done {
            remove_finalizer(&api, apply.as_ref(), APPLY_FINALIZER).await?;
            ctx.forget_events(apply.uid().as_deref());
        }
        return Ok(Action::await_change());
    }
    ensure_finalizer(&api, apply.as_ref(), APPLY_FINALIZER).await?;
    reconcile_apply(&apply, &ctx).await
}

/// Name of the Workspace of an apply: the one recorded in status, else the derived one.
pub fn workspace_name_of(apply: &WorkspaceTemplateApply) -> String {
    apply
        .status
        .as_ref()
        .and_then(|s| s.workspace_name.clone())
        .unwrap_or_else(|| names::workspace_name(&apply.namespace().unwrap_or_default(), &apply.name_any()))
}

/// Whether `ws` was created for this apply (same uid label).
fn owned_by(ws: &Workspace, apply: &WorkspaceTemplateApply) -> bool {
    ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str) == apply.uid().as_deref()
}

/// Missing secrets or keys as a message, or None when all are present. Only key names are
/// read, never values.
async fn missing_secrets(ctx: &Context, apply: &WorkspaceTemplateApply) -> Result<Option<String>> {
    let mut missing = Vec::new();
    for req in apply.spec.wait_for_secrets.iter().flatten() {
        let keys = req.keys.clone().unwrap_or_default();
        missing.extend(missing_secret_keys(&ctx.client, &req.namespace, &req.name, &keys).await?);
    }
    Ok((!missing.is_empty()).then(|| format!("waiting for {}", missing.join("; "))))
}

/// Workspaces this apply waits for that are not Ready yet, as a message.
async fn unready_workspaces(ctx: &Context, apply: &WorkspaceTemplateApply) -> Result<Option<String>> {
    let api: Api<Workspace> = Api::all(ctx.client.clone());
    let mut waiting = Vec::new();
    for r in apply.spec.wait_for_workspaces.iter().flatten() {
        let ready = match api.get_opt(&r.name).await? {
            Some(ws) => mirror_workspace(&ws).iter().any(|c| c.type_ == READY && c.status),
            None => false,
        };
        if !ready {
            waiting.push(r.name.clone());
        }
    }
    Ok((!waiting.is_empty()).then(|| format!("waiting for Workspaces to be Ready: {}", waiting.join(", "))))
}


async fn reconcile_apply(apply: &WorkspaceTemplateApply, ctx: &Context) -> Result<Action> {
    let ws_name = workspace_name_of(apply);
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    let template_ns = template_namespace(apply);
    let existing = workspaces.get_opt(&ws_name).await?;

    if let Some(ws) = existing.as_ref().filter(|ws| !owned_by(ws, apply)) {
        let message = match ws.annotations().get(names::ANNOTATION_APPLY) {
            Some(owner) => format!("Workspace {ws_name} already belongs to WorkspaceTemplateApply {owner}"),
            None => format!("Workspace {ws_name} exists and was not created by this operator; delete or rename it"),
        };
        return blocked(apply, ctx, existing.as_ref(), reason::WORKSPACE_CONFLICT, message).await;
    }
    let templates: Api<WorkspaceTemplate> = Api::namespaced(ctx.client.clone(), &template_ns);
    let template = templates.get_opt(&apply.spec.template_ref.name).await?;
    let Some(template) = template else {
        let message = format!(
            "WorkspaceTemplate {template_ns}/{} not found; create it or fix spec.templateRef",
            apply.spec.template_ref.name
        );
        // An applied Workspace keeps working without its template: it is only frozen. That
        // is a warning, not a failure of what already exists.
        if existing.is_some() && apply.status.as_ref().is_some_and(|s| s.observed_generation == apply.metadata.generation) {
            ctx.event(apply, EventType::Warning, reason::TEMPLATE_NOT_FOUND, message.clone()).await;
            let extra = vec![Desired::new(TEMPLATE_AVAILABLE, false, reason::TEMPLATE_NOT_FOUND, message)];
            return write_status(apply, ctx, existing.as_ref(), extra, false).await;
        }
        return blocked(apply, ctx, existing.as_ref(), reason::TEMPLATE_NOT_FOUND, message).await;
    };
    let spec = match render::workspace::render(apply, &template, &ws_name) {
        Ok(spec) => spec,
        Err(e) => return blocked(apply, ctx, existing.as_ref(), reason::INVALID_TEMPLATE, e.to_string()).await,
    };

    // A Workspace of an earlier incarnation of this apply is still being destroyed.
    if existing.as_ref().is_some_and(|ws| ws.metadata.deletion_timestamp.is_some()) {
        let message = format!("waiting for the previous Workspace {ws_name} to be deleted");
        return waiting(apply, ctx, reason::CREATING, message).await;
    }
    let desired = render::workspace::object(apply, &ws_name, spec);
    if existing.as_ref().is_some_and(|ws| super::contains(ws, &desired)) {
        return write_status(apply, ctx, existing.as_ref(), template_found(), false).await;
    }
    // A write is due; the secrets and workspaces it needs are checked now (only key names).
    if let Some(message) = missing_secrets(ctx, apply).await? {
        // An existing Workspace keeps being reported; it is updated once they are back.
        return match existing {
            Some(ws) => write_status(apply, ctx, Some(&ws), template_found(), false).await,
            None => waiting(apply, ctx, reason::WAITING_FOR_SECRETS, message).await,
        };
    }
    if existing.is_none()
        && let Some(message) = unready_workspaces(ctx, apply).await?
    {
        return waiting(apply, ctx, reason::WAITING_FOR_WORKSPACES, message).await;
    }
    let written = apply_if_changed(&workspaces, &desired, existing.as_ref()).await?;
    let verb = if existing.is_some() { "Updated" } else { "Created" };
    info!(apply = %apply.name_any(), workspace = %ws_name, "{verb} Workspace");
    ctx.event(apply, EventType::Normal, &format!("{verb}Workspace"), format!("{verb} Workspace {ws_name}")).await;
    write_status(apply, ctx, written.as_ref().or(existing.as_ref()), template_found(), true).await
}

fn template_found() -> Vec<Desired> {
    vec![Desired::new(TEMPLATE_AVAILABLE, true, "TemplateFound", "")]
}

/// Reports an error the user has to fix (the Workspace, if any, is left as it is).
async fn blocked(apply: &WorkspaceTemplateApply, ctx: &Context, ws: Option<&Workspace>, why: &str, message: String) -> Result<Action> {
    if !has_condition(apply, SYNCED, false, why) {
        ctx.event(apply, EventType::Warning, why, message.clone()).await;
    }
    let mut extra = vec![Desired::new(SYNCED, false, why, message.clone())];
    if ws.is_none() {
        extra.push(Desired::new(READY, false, why, message));
    }
    write_status(apply, ctx, ws, extra, false).await
}

/// Reports that the apply waits for something that a watch will announce.
async fn waiting(apply: &WorkspaceTemplateApply, ctx: &Context, why: &str, message: String) -> Result<Action> {
    if !has_condition(apply, READY, false, why) {
        ctx.event(apply, EventType::Normal, why, message.clone()).await;
    }
    let extra = vec![Desired::new(SYNCED, true, reason::RECONCILE_SUCCESS, ""), Desired::new(READY, false, why, message)];
    write_status(apply, ctx, None, extra, false).await
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
/// `overrides` (computed by this controller) take precedence.
async fn write_status(
    apply: &WorkspaceTemplateApply,
    ctx: &Context,
    ws: Option<&Workspace>,
    overrides: Vec<Desired>,
    written: bool,
) -> Result<Action> {
    let old = apply.status.clone().unwrap_or_default();
    let mut desired: Vec<Desired> = ws.map(mirror_workspace).unwrap_or_default();
    for o in overrides {
        desired.retain(|d| d.type_ != o.type_);
        desired.push(o);
    }
    if desired.is_empty() {
        desired = vec![Desired::new(READY, false, reason::CREATING, "")];
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = WorkspaceTemplateApplyStatus {
        workspace_name: ws.map(|w| w.name_any()).or(old.workspace_name.clone()),
        applied: old.applied || ws.is_some(),
        last_applied_time: if written { Some(now.clone()) } else { old.last_applied_time.clone() },
        last_applied_hash: if written { ws.map(|w| spec_hash(&w.spec)) } else { old.last_applied_hash.clone() },
        conditions: merge(&old.conditions, &desired, apply.metadata.generation, &now),
        observed_generation: apply.metadata.generation,
    };
    if new != old {
        let api: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &apply.namespace().unwrap_or_default());
        let body = json!({ "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "WorkspaceTemplateApply", "status": new });
        api.patch_status(&apply.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    }
    Ok(Action::requeue(RESYNC))
}

fn spec_hash(spec: &WorkspaceSpec) -> String {
    names::short_hash(&serde_json::to_string(spec).unwrap_or_default(), 16)
}

/// Deletes the Workspace (unless retained) and waits until it is gone before the apply's
/// finalizer is released, so Terraform's destroy has finished when the apply disappears.
async fn cleanup(apply: &WorkspaceTemplateApply, ctx: &Context) -> Result<Cleanup> {
    let ws_name = workspace_name_of(apply);
    if apply.spec.retain_workspace_on_delete == Some(true) {
        ctx.event(apply, EventType::Normal, "RetainedWorkspace", format!("kept Workspace {ws_name} as requested")).await;
        return Ok(Cleanup::Done);
    }
    let workspaces: Api<Workspace> = Api::all(ctx.client.clone());
    match workspaces.get_opt(&ws_name).await? {
        Some(ws) if owned_by(&ws, apply) => {
            if ws.metadata.deletion_timestamp.is_none() {
                workspaces.delete(&ws_name, &Default::default()).await?;
                ctx.event(apply, EventType::Normal, "DeletingWorkspace", format!("deleting Workspace {ws_name}")).await;
            }
            // The Workspace watch brings us back when it is gone.
            Ok(Cleanup::Waiting)
        }
        _ => Ok(Cleanup::Done),
    }
}
