//! An apply's status: built by a pure function from the old status, the observed Workspace and
//! the conditions this controller decided, and written (as a merge patch) only when it changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{RESYNC, State};
use crate::api::conditions::{READY, SYNCED};
use crate::api::{Workspace, WorkspaceTemplateApply, WorkspaceTemplateApplyStatus};
use crate::error::{Error, Result};
use crate::names::FIELD_MANAGER;
use crate::status::apply::mirror_workspace;
use crate::status::conditions::{WantedCondition, merge};
use crate::status::reason;

/// Condition type: the WorkspaceTemplate exists (informational; never a failure by itself).
pub(super) const TEMPLATE_AVAILABLE: &str = "TemplateAvailable";

/// The status an apply has given its old status, its Workspace (`ws`, if any), the
/// conditions this controller decided (`overrides`, which take precedence over the
/// Workspace's), the hash of the Workspace spec when the Workspace holds the desired spec
/// (`applied`), the apply's `generation`, and `now` (the time of any condition transition, and
/// `lastAppliedTime` when `applied` is a new hash).
pub(super) fn build_status(
    old: &WorkspaceTemplateApplyStatus,
    ws: Option<&Workspace>,
    overrides: Vec<WantedCondition>,
    applied: Option<String>,
    generation: Option<i64>,
    now: &Time,
) -> WorkspaceTemplateApplyStatus {
    let mut desired: Vec<WantedCondition> = ws.map(mirror_workspace).unwrap_or_default();
    for o in overrides {
        desired.retain(|d| d.type_ != o.type_);
        desired.push(o);
    }
    if desired.is_empty() {
        desired = vec![WantedCondition::new(READY, false, reason::CREATING, "")];
    }
    WorkspaceTemplateApplyStatus {
        workspace_name: ws.map(|w| w.name_any()).or(old.workspace_name.clone()),
        applied: old.applied || ws.is_some(),
        last_applied_time: match &applied {
            Some(hash) if old.last_applied_hash.as_ref() != Some(hash) => Some(now.clone()),
            _ => old.last_applied_time.clone(),
        },
        last_applied_hash: applied.or(old.last_applied_hash.clone()),
        conditions: merge(&old.conditions, &desired, generation, now),
        outputs: ws
            .and_then(crate::status::apply::workspace_outputs)
            .or(old.outputs.clone()),
        observed_generation: generation,
    }
}

/// `TemplateAvailable=True`.
pub(super) fn template_found() -> Vec<WantedCondition> {
    vec![WantedCondition::new(
        TEMPLATE_AVAILABLE,
        true,
        reason::TEMPLATE_FOUND,
        "",
    )]
}

/// `TemplateAvailable=False` with `message`: the template went away after it was applied.
pub(super) fn template_missing(message: String) -> Vec<WantedCondition> {
    vec![WantedCondition::new(
        TEMPLATE_AVAILABLE,
        false,
        reason::TEMPLATE_NOT_FOUND,
        message,
    )]
}

/// The conditions of an error the user has to fix (`why`): `Synced=False`, and `Ready=False`
/// too when there is no Workspace whose readiness would show instead.
pub(super) fn blocked_conditions(
    why: &str,
    message: String,
    has_workspace: bool,
) -> Vec<WantedCondition> {
    let mut conditions = vec![WantedCondition::new(SYNCED, false, why, message.clone())];
    if !has_workspace {
        conditions.push(WantedCondition::new(READY, false, why, message));
    }
    conditions
}

/// The conditions of an apply waiting (`why`) for something a watch will announce.
pub(super) fn waiting_conditions(why: &str, message: String) -> Vec<WantedCondition> {
    vec![
        WantedCondition::new(SYNCED, true, reason::RECONCILE_SUCCESS, ""),
        WantedCondition::new(READY, false, why, message),
    ]
}

/// Whether the apply's status already has condition `type_` with `status` and reason `why`
/// (then its event was sent before).
pub(super) fn has_condition(
    apply: &WorkspaceTemplateApply,
    type_: &str,
    status: bool,
    why: &str,
) -> bool {
    let want = if status { "True" } else { "False" };
    apply
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == type_ && c.status == want && c.reason == why)
}

/// Reports an error the user has to fix (the Workspace, if any, is left as it is).
pub(super) async fn blocked(
    apply: &WorkspaceTemplateApply,
    state: &State,
    ws: Option<&Workspace>,
    why: &str,
    message: String,
) -> Result<Action> {
    announce(apply, state, (SYNCED, why), EventType::Warning, &message).await;
    let conditions = blocked_conditions(why, message, ws.is_some());
    write_status(apply, state, ws, conditions, None).await
}

/// Reports that the apply waits for something that a watch will announce.
pub(super) async fn waiting(
    apply: &WorkspaceTemplateApply,
    state: &State,
    why: &str,
    message: String,
) -> Result<Action> {
    announce(apply, state, (READY, why), EventType::Normal, &message).await;
    write_status(apply, state, None, waiting_conditions(why, message), None).await
}

/// Sends an event for a condition the apply does not show yet: `condition` (type, reason)
/// turning False.
async fn announce(
    apply: &WorkspaceTemplateApply,
    state: &State,
    (type_, why): (&str, &str),
    event: EventType,
    message: &str,
) {
    if !has_condition(apply, type_, false, why) {
        state
            .ctx
            .event(apply, event, why, message.to_string())
            .await;
    }
}

/// Writes the status ([`build_status`]) if it changed.
pub(super) async fn write_status(
    apply: &WorkspaceTemplateApply,
    state: &State,
    ws: Option<&Workspace>,
    overrides: Vec<WantedCondition>,
    applied: Option<String>,
) -> Result<Action> {
    let old = apply.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = build_status(
        &old,
        ws,
        overrides,
        applied,
        apply.metadata.generation,
        &now,
    );
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

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
