//! Report step of a CAPTCluster's reconcile: the status built by the pure `status` builder
//! from what was observed, written when it changed, with the event of the VPC turning ready.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::State;
use super::observe::observe_vpc;
use super::status::{self, Observed, Vpc};
use crate::api::{CAPTCluster, WorkspaceTemplateApply};
use crate::controller::workspace_apply::workspace_name_of;
use crate::error::Result;
use crate::render::vpc;
use crate::runtime::write::apply_status;
use crate::status::reason::{EXISTING_VPC_USED, VPC_CREATED};

/// What the status of `c` is built from: the VPC as observed, and the pause and deletion.
pub(super) fn observed_with(
    c: &CAPTCluster,
    apply: Option<&WorkspaceTemplateApply>,
    vpc: Vpc,
    paused: Option<String>,
    deleting: Option<String>,
) -> Observed {
    Observed {
        vpc,
        existing: vpc::existing_vpc_id(c).is_some(),
        paused,
        deleting,
        workspace_name: apply.map(workspace_name_of),
        last_applied_time: apply
            .and_then(|a| a.status.as_ref())
            .and_then(|s| s.last_applied_time.clone()),
    }
}

/// Observes the VPC and writes the status if it changed.
pub(super) async fn write_status(
    c: &CAPTCluster,
    state: &State,
    apply: Option<&WorkspaceTemplateApply>,
    paused: Option<String>,
    deleting: Option<String>,
) -> Result<()> {
    let vpc = observe_vpc(c, state, apply).await?;
    write_built(c, state, &observed_with(c, apply, vpc, paused, deleting)).await
}

/// Writes the status built from `observed` unless it is the current one.
pub(super) async fn write_built(c: &CAPTCluster, state: &State, observed: &Observed) -> Result<()> {
    let old = c.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let new = status::build_status(&old, c.metadata.generation, observed, &now);
    if new == old {
        return Ok(());
    }
    if new.ready && !old.ready {
        let reason = if observed.existing {
            EXISTING_VPC_USED
        } else {
            VPC_CREATED
        };
        state
            .ctx
            .event(
                c,
                EventType::Normal,
                reason,
                format!(
                    "the VPC {} is ready",
                    new.vpc_id.clone().unwrap_or_default()
                ),
            )
            .await;
    }
    apply_status(&state.ctx.client, &state.capt_clusters, c, &new).await
}
