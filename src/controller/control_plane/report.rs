//! Step 5 of a control plane's reconcile: its status, built by the pure `status` builder from
//! what the reconcile saw and did, written when it changed (paced, `status::pacing`), with the
//! events its changes call for.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::State;
use super::act::apply_reference;
use super::status::{Report, new_status, paused_status};
use crate::api::{CAPTControlPlane, CAPTControlPlaneStatus, FargateProfileStatus};
use crate::controller::Context;
use crate::error::Result;
use crate::runtime::write::apply_status;
use crate::status::{events, pacing};

/// Writes the status `report` gives `cp` when it changed, unless pacing holds it back
/// (`status::pacing`): then returns how long to wait. Publishes the events of the change.
pub(super) async fn write_status(
    cp: &CAPTControlPlane,
    state: &State,
    report: Report<'_>,
) -> Result<Option<Duration>> {
    let old = cp.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let eks_reported = report
        .eks_apply
        .and_then(|a| a.status.as_ref())
        .is_some_and(|s| !s.conditions.is_empty());
    let new = new_status(cp, report, &now);
    if new == old {
        return Ok(None);
    }
    let age = crate::controller::age(cp).unwrap_or_default();
    if let Some(wait) = pacing::first_status_wait(&old, eks_reported, age) {
        return Ok(Some(wait));
    }
    let uid = cp.uid().unwrap_or_default();
    if pacing::progress_only(&old, &new) {
        // How many roll out at once, as their statuses say (this one included).
        let rolling_out = state
            .control_planes
            .count_indexed(crate::runtime::index::ROLLING_OUT, |_| true);
        let interval = pacing::progress_interval(rolling_out);
        let last = state.status_writes.last(&uid);
        if let Some(wait) = last.and_then(|at| interval.checked_sub(at.elapsed())) {
            return Ok(Some(wait));
        }
    }
    publish_transitions(cp, &state.ctx, &old.fargate_profiles, &new.fargate_profiles).await;
    patch_status(cp, state, &new).await?;
    state.status_writes.record(&uid);
    Ok(None)
}

/// Reports a paused control plane (`why` says what pauses it): only its `Paused` condition
/// changes, and nothing is written when it already says so.
pub(super) async fn write_paused(cp: &CAPTControlPlane, state: &State, why: &str) -> Result<()> {
    let old = cp.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = paused_status(&old, cp.metadata.generation, why, &now);
    if new != old {
        patch_status(cp, state, &new).await?;
    }
    Ok(())
}

/// Server-side applies `new` as the control plane's status and keeps the result in the cache.
async fn patch_status(
    cp: &CAPTControlPlane,
    state: &State,
    new: &CAPTControlPlaneStatus,
) -> Result<()> {
    apply_status(&state.ctx.client, &state.control_planes, cp, new).await
}

/// Publishes the events `status::events` chooses for this status change.
pub(super) async fn publish_transitions(
    cp: &CAPTControlPlane,
    ctx: &Context,
    old: &[FargateProfileStatus],
    new: &[FargateProfileStatus],
) {
    for notice in events::notices(old, new) {
        let type_ = if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let apply = notice.apply.as_ref().map(|name| apply_reference(cp, name));
        ctx.event_about(cp, apply, type_, notice.reason, notice.note)
            .await;
    }
}
