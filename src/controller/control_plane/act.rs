//! Step 4 of a control plane's reconcile: the writes the plan chose, through the runtime's
//! write path (`runtime::write`: a POST or a merge patch, each only when the stamped render
//! differs), with the events and logs that go with them. Nothing is decided here.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::desire::Desired;
use super::observe::Observed;
use super::plan::EksStep;
use super::{CONTROLLER, State};
use crate::api::{CAPTControlPlane, FargateProfileStatus, WorkspaceTemplateApply};
use crate::controller::Cleanup;
use crate::error::Result;
use crate::render;
use crate::runtime::write::{check_owner, write_if_changed};
use crate::status::profiles::Teardown;
use crate::status::write_failure;

/// The applies API of `cp`'s namespace.
fn applies_api(cp: &CAPTControlPlane, state: &State) -> Api<WorkspaceTemplateApply> {
    Api::namespaced(state.ctx.client.clone(), &render::namespace(cp))
}

/// Carries out the EKS step: creates or updates the EKS apply as `desired` renders it.
/// Returns the EKS apply as known now (as written, else as observed).
pub(super) async fn eks(
    cp: &CAPTControlPlane,
    state: &State,
    observed: &Observed,
    desired: &Desired,
    step: &EksStep,
) -> Result<Option<Arc<WorkspaceTemplateApply>>> {
    if !matches!(step, EksStep::Create | EksStep::Update) {
        return Ok(observed.eks.clone());
    }
    let api = applies_api(cp, state);
    let existing = observed.eks.as_deref();
    let Some(written) = write_if_changed(&api, &state.applies, &desired.eks, existing).await?
    else {
        return Ok(observed.eks.clone());
    };
    if existing.is_none() {
        let name = &observed.eks_name;
        let note = format!("created WorkspaceTemplateApply {name} for the EKS cluster");
        let ctx = &state.ctx;
        ctx.event(
            cp,
            EventType::Normal,
            crate::status::events::CREATED_CLUSTER_WORKSPACE,
            note,
        )
        .await;
    }
    state.apply_writes.record(&written);
    state.applies.remember(written.clone());
    Ok(Some(Arc::new(written)))
}

/// Deletes the profile apply `victim` (gone already is fine) and says so in an event whose
/// note is `note`.
pub(super) async fn delete_profile(
    cp: &CAPTControlPlane,
    state: &State,
    victim: &str,
    note: String,
) -> Result<()> {
    match applies_api(cp, state)
        .delete(victim, &Default::default())
        .await
    {
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        other => {
            other?;
        }
    }
    info!(control_plane = %cp.name_any(), apply = %victim, "deleting Fargate profile apply");
    let related = Some(apply_reference(cp, victim));
    let reason = "DeletingFargateProfile";
    let ctx = &state.ctx;
    ctx.event_about(cp, related, EventType::Normal, reason, note)
        .await;
    Ok(())
}

/// Writes the profile applies at `indices` of `desired` (each unless unchanged), and returns
/// the status entries of those that cannot be written (name taken, forbidden, invalid); other
/// errors fail the reconcile.
pub(super) async fn profiles(
    cp: &CAPTControlPlane,
    state: &State,
    observed: &Observed,
    desired: &Desired,
    indices: &[usize],
) -> Result<Vec<FargateProfileStatus>> {
    let api = applies_api(cp, state);
    let ns = render::namespace(cp);
    let mut write_failures = Vec::new();
    for &index in indices {
        let want = &desired.profile_applies[index];
        let (profile, apply_name) = (&desired.profiles[index].name, want.name_any());
        let have = observed
            .profile_applies
            .iter()
            .find(|a| a.name_any() == apply_name);
        // An object of that name that is not ours is left alone.
        let taken = match have {
            None => state.applies.get_named(Some(&ns), &apply_name),
            Some(_) => None,
        };
        let result = match taken.map(|other| check_owner(want, other.as_ref())) {
            Some(Err(e)) => Err(e),
            _ => write_if_changed(&api, &state.applies, want, have.map(|a| a.as_ref())).await,
        };
        let written = match result {
            Ok(Some(written)) => written,
            Ok(None) => continue,
            Err(error) => match write_failure::profile_status(profile, &apply_name, &error) {
                Some(status) => {
                    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
                    warn!(control_plane = %cp.name_any(), %profile, apply = %apply_name, %error, "cannot write Fargate profile apply");
                    write_failures.push(status);
                    continue;
                }
                None => return Err(error),
            },
        };
        state.apply_writes.record(&written);
        state.applies.remember(written);
        // Logged only: the profile's progress is in the status, and its failure, deletion and
        // the whole set becoming ready are events (`status::events`).
        if have.is_none() {
            info!(control_plane = %cp.name_any(), %profile, apply = %apply_name, "creating Fargate profile apply");
        }
    }
    Ok(write_failures)
}

/// Carries out a teardown step (the status is written before) and says whether all is gone.
pub(super) async fn teardown(
    cp: &CAPTControlPlane,
    state: &State,
    eks_name: &str,
    step: &Teardown,
) -> Result<Cleanup> {
    match step {
        Teardown::Done => return Ok(Cleanup::Done),
        Teardown::DeleteProfile(name) => {
            let note = format!(
                "the control plane is being deleted; deleting WorkspaceTemplateApply {name}"
            );
            delete_profile(cp, state, name, note).await?;
        }
        Teardown::DeleteCluster => {
            applies_api(cp, state)
                .delete(eks_name, &Default::default())
                .await?;
            let note = format!(
                "all Fargate profiles are gone; deleting WorkspaceTemplateApply {eks_name}"
            );
            let ctx = &state.ctx;
            ctx.event(
                cp,
                EventType::Normal,
                crate::status::events::DELETING_CLUSTER_WORKSPACE,
                note,
            )
            .await;
        }
        Teardown::WaitForProfile(_) | Teardown::WaitForCluster => {}
    }
    Ok(Cleanup::Waiting)
}

/// A reference to one of `cp`'s applies, as an event's related object: each profile's events
/// then form their own series instead of overwriting each other's note.
pub(super) fn apply_reference(cp: &CAPTControlPlane, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("infrastructure.cluster.x-k8s.io/v1beta1".into()),
        kind: Some("WorkspaceTemplateApply".into()),
        name: Some(name.to_string()),
        namespace: cp.namespace(),
        ..Default::default()
    }
}
