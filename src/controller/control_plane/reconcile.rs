//! A control plane's reconcile, one pass through the pipeline: observe (the caches, once) →
//! desire (every child rendered once) → plan (pure) → act (the writes) → report (the status,
//! built by a pure function). Each step is its own module; this one only runs them in order.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::observe::{self, Observed};
use super::plan::{self, EksStep, Gate, Mode};
use super::readiness::control_plane_condition;
use super::report::{write_paused, write_status};
use super::status::{EksView, Report, profile_statuses};
use super::{
    CONTROLLER, RESYNC, State, WRITE_FAILURE_RETRY, act, desire, forget, metrics_key, pause,
};
use crate::api::CAPTControlPlane;
use crate::controller::Cleanup;
use crate::error::{Error, Result};
use crate::names::CONTROL_PLANE_FINALIZER;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::status::apply::{ChildState, child_state};

/// Reconciles one control plane: paused, being deleted or live (`plan::mode`).
pub(super) async fn reconcile(cp: Arc<CAPTControlPlane>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.applies.is_ready() && state.secrets.is_ready()) {
        return Ok(Action::requeue(crate::controller::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    // The cache may hold this process's last status write, newer than the scheduled copy.
    let cp = state.control_planes.latest(cp);
    let ns = cp
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(cp.name_any()))?;
    // Paused: no child is written, no teardown progresses; only the status says so. A change
    // of the Cluster or of the annotation wakes it.
    let cluster = match state.clusters.of(&cp) {
        pause::Known::Unknown => return Ok(Action::requeue(pause::CLUSTERS_UNKNOWN)),
        pause::Known::Cluster(cluster) => cluster,
    };
    let api: Api<CAPTControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    match plan::mode(&cp, pause::is_paused(cp.as_ref(), cluster.as_deref())) {
        Mode::Paused(why) => {
            write_paused(&cp, &state, &why).await?;
            Ok(Action::await_change())
        }
        Mode::Deleting => {
            if teardown(&cp, &state).await? == Cleanup::Done {
                remove_finalizer(&api, cp.as_ref(), CONTROL_PLANE_FINALIZER).await?;
                forget(&cp, &state);
            }
            Ok(Action::await_change())
        }
        Mode::Live => {
            let read = cp.resource_version();
            let cp =
                ensure_finalizer(&api, &state.control_planes, cp, CONTROL_PLANE_FINALIZER).await?;
            if cp.resource_version() != read {
                state.finalizer_writes.record(cp.as_ref());
            }
            live(&cp, &state).await
        }
    }
}

/// A live control plane's pass: the EKS apply (a change held while a profile operation is in
/// flight), the endpoint and kubeconfig Secrets, the profile applies one operation at a time,
/// then the status.
async fn live(cp: &CAPTControlPlane, state: &State) -> Result<Action> {
    let observed = observe::observe(cp, state);
    let desired = desire::desire(cp, state, &observed)?;

    // 1. The EKS cluster, with the default profiles inside its workspace.
    // The VPC connection secret gates its creation only (a cache read when in scope).
    let vpc_missing = match observed.eks {
        None => observe::missing_vpc_secret(cp, state).await?,
        Some(_) => Vec::new(),
    };
    let eks_step = plan::eks(&observed, desired.eks_changed, &vpc_missing);
    let eks = act::eks(cp, state, &observed, &desired, &eks_step).await?;
    let eks_state = plan::eks_state(&eks_step, eks.as_deref());

    // 2. The endpoint and the kubeconfig Secrets, from the EKS connection secret.
    let kubeconfig = super::kubeconfig::reconcile(cp, state, &observed.kubeconfig).await?;

    // 3. The additional profiles, planned behind the EKS apply as written.
    let steps = plan_profiles(cp, state, &observed, &desired, &eks_state).await?;
    if let Some(victim) = &steps.delete {
        let note = format!("deleting WorkspaceTemplateApply {victim}");
        act::delete_profile(cp, state, victim, note).await?;
    }
    let write_failures = act::profiles(cp, state, &observed, &desired, &steps.write).await?;

    // 4. The status.
    let retry_failed_writes = !write_failures.is_empty();
    let held_by = match &eks_step {
        EksStep::Hold(profile) => Some(profile.as_str()),
        _ => None,
    };
    let view = EksView {
        name: &observed.eks_name,
        apply: eks.as_deref(),
        state: &eks_state,
        held_by,
    };
    let statuses = profile_statuses(cp, &view, steps.statuses, write_failures);
    state.ctx.metrics.set_profiles(metrics_key(cp), &statuses);
    let report = Report {
        eks_apply: eks.as_deref(),
        eks_state: &eks_state,
        ready: control_plane_condition(&observed.eks_name, &eks_state, held_by),
        statuses,
        kubeconfig: Some(&kubeconfig.state),
    };
    let deferred = write_status(cp, state, report).await?;
    // A transient error that lasts becomes a failure at a time no watch event marks.
    let applies = eks.iter().chain(&observed.profile_applies);
    let retry_check = plan::transient_check(applies.map(|a| a.as_ref()), Timestamp::now());
    // Nothing wakes this control plane when an object in the way of a write goes or the
    // permission is granted, so look again soon.
    let write_retry = retry_failed_writes.then_some(WRITE_FAILURE_RETRY);
    let asked = [deferred, retry_check, write_retry, kubeconfig.requeue];
    Ok(Action::requeue(plan::requeue(&asked, RESYNC)))
}

/// The profiles' steps (`plan::profiles`). The connection secrets only matter when a profile
/// is about to be created, so they are observed then, and the profiles planned again.
async fn plan_profiles(
    cp: &CAPTControlPlane,
    state: &State,
    observed: &Observed,
    desired: &desire::Desired,
    eks_state: &ChildState,
) -> Result<plan::ProfileSteps> {
    let at_once = state.ctx.test_only_create_profiles_at_once;
    let mut gate = Gate {
        eks_name: &observed.eks_name,
        eks: eks_state,
        missing_secrets: None,
    };
    let steps = plan::profiles(&desired.profiles, &observed.profiles, &gate, at_once);
    if !steps.needs_secrets {
        return Ok(steps);
    }
    let missing = observe::missing_secrets(cp, state).await?;
    gate.missing_secrets = Some(&missing);
    Ok(plan::profiles(
        &desired.profiles,
        &observed.profiles,
        &gate,
        at_once,
    ))
}

/// A deleting control plane's pass: the profiles one at a time (reverse spec order, after
/// every operation in flight), then the EKS cluster, with the status current meanwhile.
/// Reports when all is gone.
async fn teardown(cp: &CAPTControlPlane, state: &State) -> Result<Cleanup> {
    let observed = observe::observe(cp, state);
    let eks_state = observed.eks.as_deref().map(child_state);
    let plan = plan::teardown(cp, &observed, eks_state.as_ref());
    if plan.step == crate::status::profiles::Teardown::Done {
        return Ok(Cleanup::Done);
    }
    // The status says what teardown is doing and why it waits, so `kubectl describe` explains
    // a deletion that does not finish.
    let shown = eks_state.unwrap_or(ChildState::Deleting(None));
    let report = Report {
        eks_apply: observed.eks.as_deref(),
        eks_state: &shown,
        ready: control_plane_condition(&observed.eks_name, &shown, None),
        statuses: plan.statuses,
        kubeconfig: None,
    };
    write_status(cp, state, report).await?;
    act::teardown(cp, state, &observed.eks_name, &plan.step).await
}
