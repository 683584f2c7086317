//! CAPTControlPlane controller: keeps the EKS cluster apply (with the default Fargate profiles)
//! and one apply per additional Fargate profile, sequenced as `status::profiles` decides, and
//! reports every profile in the control plane's status.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::secrets::Required;
use super::{Cleanup, Context};
use crate::api::conditions::READY;
use crate::api::{
    CAPTControlPlane, CAPTControlPlaneStatus, ControlPlanePhase, FargateProfileStatus,
    WorkspaceStatus, WorkspaceTemplateApply, WorkspaceTemplateStatus,
};
use crate::error::{Error, Result};
use crate::names::{self, CONTROL_PLANE_FINALIZER, FIELD_MANAGER};
use crate::render::{self, eks, fargate};
use crate::runtime::backoff::{WatchBackoff, retry_after};
use crate::runtime::cache::{self, Cache};
use crate::runtime::echo::OwnWrites;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::shared::Watched;
use crate::runtime::status_writes::StatusWrites;
use crate::runtime::write::{self, check_owner, write_if_changed};
use crate::runtime::{index, version};
use crate::status::apply::{ChildState, child_state, transient_until};
use crate::status::conditions::{WantedCondition, merge};
use crate::status::profiles::{
    self, ClusterGate, Defaults, DesiredProfile, ObservedProfile, Teardown,
};
use crate::status::{events, pacing, reason, write_failure};

const CONTROLLER: &str = "controlplane";
/// Safety-net resync; all progress is driven by watches.
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a profile apply that could not be written (name taken, forbidden, invalid) is
/// tried again.
const WRITE_FAILURE_RETRY: Duration = Duration::from_secs(30);

/// The control-plane controller's view of the cluster: watch caches, each fed by the same
/// stream that triggers reconciles (see `cache`).
pub struct State {
    ctx: Arc<Context>,
    control_planes: Cache<CAPTControlPlane>,
    applies: Cache<WorkspaceTemplateApply>,
    secrets: Cache<Secret>,
    /// When this process last wrote each control plane's status (by uid), for `pacing`.
    status_writes: StatusWrites,
    /// This controller's writes to applies and its finalizer writes to control planes, whose
    /// echoes do not wake it.
    apply_writes: Arc<OwnWrites<WorkspaceTemplateApply>>,
    finalizer_writes: Arc<OwnWrites<CAPTControlPlane>>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    watched: Watched,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Watched {
        applies,
        apply_events,
        secrets,
        secret_events,
    } = watched;
    let (control_planes, cp_events) = cache::watch(
        watcher(
            ctx.scoped_api::<CAPTControlPlane>(),
            watcher::Config::default().any_semantic(),
        ),
        cache::keep_all,
        Some(secrets_read),
    );
    let lookup = control_planes.clone();
    let (apply_writes, finalizer_writes) = (Arc::default(), Arc::default());
    let state = Arc::new(State {
        ctx,
        control_planes: control_planes.clone(),
        applies,
        secrets,
        status_writes: StatusWrites::default(),
        apply_writes: Arc::clone(&apply_writes),
        finalizer_writes: Arc::clone(&finalizer_writes),
    });
    // Status writes (this controller's own) do not trigger: the children's changes do. Nor
    // does the echo of the finalizer it adds (after the predicate, which must see that version).
    let followed = Arc::clone(&finalizer_writes);
    let own = cp_events
        .inspect_ok(move |event| followed.follow(event))
        .applied_objects()
        .predicate_filter(version::spec_or_lifecycle, Default::default())
        .try_filter(move |cp| futures::future::ready(!finalizer_writes.is_echo(cp)));
    Controller::for_stream(own, control_planes.store())
        .owns_stream(
            apply_events
                .inspect_ok({
                    let followed = Arc::clone(&apply_writes);
                    move |event| followed.follow(event)
                })
                .touched_objects()
                .try_filter(move |apply| futures::future::ready(!apply_writes.is_echo(apply))),
        )
        .watches_stream(secret_events.touched_objects(), move |s| {
            control_planes_reading(&lookup, &s)
        })
        .with_config(state.ctx.controller_config(super::DEBOUNCE))
        .trigger_backoff(WatchBackoff::for_controller())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, state)
        .for_each(|result| async move { super::log_failure(CONTROLLER, result) })
        .await;
}

/// Control planes that read a Secret: its EKS or VPC connection secret.
fn control_planes_reading(
    control_planes: &Cache<CAPTControlPlane>,
    secret: &Secret,
) -> Vec<ObjectRef<CAPTControlPlane>> {
    control_planes.indexed_refs(&index::secret_of(secret))
}

/// What control planes are looked up by: the connection secrets they read.
fn secrets_read(cp: &CAPTControlPlane) -> Vec<String> {
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    vec![
        index::secret(
            &render::namespace(cp),
            &names::eks_connection_secret(&cp.name_any()),
        ),
        index::secret(&vpc_ns, &vpc_name),
    ]
}

fn error_policy(_cp: Arc<CAPTControlPlane>, error: &Error, state: Arc<State>) -> Action {
    state.ctx.metrics.failure(CONTROLLER, error.metric_label());
    Action::requeue(retry_after(error))
}

async fn reconcile(cp: Arc<CAPTControlPlane>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.applies.is_ready() && state.secrets.is_ready()) {
        return Ok(Action::requeue(super::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    // The cache may hold this process's last status write, newer than the scheduled copy.
    let cp = state.control_planes.latest(cp);
    let ns = cp
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(cp.name_any()))?;
    let api: Api<CAPTControlPlane> = Api::namespaced(ctx.client.clone(), &ns);
    if cp.metadata.deletion_timestamp.is_some() {
        if teardown(&cp, &state).await? == Cleanup::Done {
            remove_finalizer(&api, cp.as_ref(), CONTROL_PLANE_FINALIZER).await?;
            forget(&cp, &state);
        }
        return Ok(Action::await_change());
    }
    let read = cp.resource_version();
    let cp = ensure_finalizer(&api, &state.control_planes, cp, CONTROL_PLANE_FINALIZER).await?;
    if cp.resource_version() != read {
        state.finalizer_writes.record(cp.as_ref());
    }
    reconcile_children(&cp, &state).await
}

/// The profile applies owned by `cp`.
fn owned_profile_applies(
    cp: &CAPTControlPlane,
    applies: &Cache<WorkspaceTemplateApply>,
) -> Vec<Arc<WorkspaceTemplateApply>> {
    let (Some(ns), Some(uid)) = (cp.metadata.namespace.as_deref(), cp.metadata.uid.as_deref())
    else {
        return Vec::new();
    };
    let component = Some(names::COMPONENT_FARGATE_PROFILE);
    let mut owned = applies.indexed(&index::owner(uid));
    owned.retain(|a| {
        a.metadata.namespace.as_deref() == Some(ns)
            && a.labels().get(names::LABEL_COMPONENT).map(String::as_str) == component
    });
    owned
}

fn observed(apply: &WorkspaceTemplateApply) -> ObservedProfile {
    let annotation = |key: &str| apply.annotations().get(key).cloned().unwrap_or_default();
    ObservedProfile {
        profile: annotation(names::ANNOTATION_PROFILE_NAME),
        apply_name: apply.name_any(),
        hash: annotation(names::ANNOTATION_PROFILE_HASH),
        state: child_state(apply),
    }
}

/// Whether the EKS cluster and both connection secrets are ready for profile workspaces.
async fn cluster_gate(
    cp: &CAPTControlPlane,
    state: &State,
    eks_apply: &str,
    eks_state: &ChildState,
) -> Result<ClusterGate> {
    match eks_state {
        ChildState::Ready => {}
        ChildState::Failed { message, .. } => {
            return Ok(ClusterGate::Failed(format!(
                "the EKS cluster workspace {eks_apply} failed: {message}"
            )));
        }
        ChildState::Creating { message, .. } => {
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            let message =
                format!("waiting for the EKS cluster workspace {eks_apply} to be ready{detail}");
            // While it applies it may create or delete default profiles: nothing else starts.
            return Ok(if eks_state.in_flight() {
                ClusterGate::Applying(message)
            } else {
                ClusterGate::Waiting(message)
            });
        }
        ChildState::Deleting(_) => {
            return Ok(ClusterGate::Applying(format!(
                "the EKS cluster workspace {eks_apply} is being deleted"
            )));
        }
    }
    let ns = render::namespace(cp);
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    let required = [
        (
            ns,
            names::eks_connection_secret(&cp.name_any()),
            fargate::EKS_SECRET_KEYS,
        ),
        (vpc_ns, vpc_name, eks::VPC_SECRET_KEYS),
    ];
    let mut missing = Vec::new();
    for (ns, name, keys) in required {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let required = Required {
            namespace: &ns,
            name: &name,
            keys: &keys,
        };
        let ctx = &state.ctx;
        missing.extend(
            super::secrets::missing(&ctx.client, &state.secrets, ctx.in_scope(&ns), required)
                .await?,
        );
    }
    Ok(if missing.is_empty() {
        ClusterGate::Open
    } else {
        ClusterGate::Waiting(format!("waiting for {}", missing.join("; ")))
    })
}

/// Reconciles a live control plane's children: writes the EKS apply and the profile applies it
/// renders (holding changes while AWS is busy), deletes the ones no longer wanted, and reports
/// their state in the control plane's status.
async fn reconcile_children(cp: &CAPTControlPlane, state: &State) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = render::namespace(cp);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);

    // The profile applies first: a change of the EKS cluster workspace waits while one of
    // them has a Fargate operation in flight (`profiles::eks_change_held_by`).
    let existing = owned_profile_applies(cp, &state.applies);
    let observed: Vec<ObservedProfile> = existing.iter().map(|a| observed(a)).collect();

    // 1. The EKS cluster, with the default profiles inside its workspace.
    let eks_desired = eks::render(cp);
    let eks_name = eks_desired.name_any();
    let mut eks_existing = state.applies.get_named(Some(&ns), &eks_name);
    let mut held_by = None;
    if let Some(e) = eks_existing.as_deref()
        && e.metadata.deletion_timestamp.is_none()
        && write::would_change(&state.applies, e, &eks_desired)?
    {
        held_by = profiles::eks_change_held_by(&observed);
    }
    if held_by.is_none()
        && eks_existing
            .as_ref()
            .is_none_or(|e| e.metadata.deletion_timestamp.is_none())
        && let Some(written) = write_if_changed(
            &applies,
            &state.applies,
            &eks_desired,
            eks_existing.as_deref(),
        )
        .await?
    {
        if eks_existing.is_none() {
            ctx.event(
                cp,
                EventType::Normal,
                "CreatedClusterWorkspace",
                format!("created WorkspaceTemplateApply {eks_name} for the EKS cluster"),
            )
            .await;
        }
        state.apply_writes.record(&written);
        state.applies.remember(written.clone());
        eks_existing = Some(Arc::new(written));
    }
    let eks_state = match &eks_existing {
        Some(a) => child_state(a),
        None => ChildState::Creating {
            reason: "Creating".into(),
            message: String::new(),
        },
    };

    // 2. Additional profiles, one step at a time.
    let profiles_spec = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap_or_default();
    // A profile that already has an apply keeps it under its name (see
    // `names::profile_apply_name_in_use`): renaming it would create the profile again.
    let owned_names: Vec<(&str, &str)> = existing
        .iter()
        .filter_map(|a| {
            let profile = a.annotations().get(names::ANNOTATION_PROFILE_NAME)?;
            Some((profile.as_str(), a.metadata.name.as_deref()?))
        })
        .collect();
    let desired: Vec<DesiredProfile> = profiles_spec
        .iter()
        .map(|p| DesiredProfile {
            name: p.name.clone(),
            apply_name: names::profile_apply_name_in_use(
                &p.name,
                names::profile_apply_name(&cp.name_any(), &p.name),
                owned_names.iter().copied(),
            ),
            hash: fargate::immutable_hash(cp, p),
        })
        .collect();
    // The Workspace the EKS apply reports, which an earlier naming rule may have named.
    let eks_workspace = eks_existing
        .as_deref()
        .map(super::workspace_apply::workspace_name_of)
        .unwrap_or_else(|| names::workspace_name(&ns, &eks_name));
    // The secrets only matter when a profile is about to be created, so they are checked then.
    let mut gate = match eks_state {
        ChildState::Ready => ClusterGate::Open,
        _ => cluster_gate(cp, state, &eks_name, &eks_state).await?,
    };
    let mut plan = profiles::plan(&desired, &observed, &gate);
    if plan.create.is_some() && gate == ClusterGate::Open {
        gate = cluster_gate(cp, state, &eks_name, &eks_state).await?;
        if gate != ClusterGate::Open {
            plan = profiles::plan(&desired, &observed, &gate);
        }
    }

    if let Some(victim) = &plan.delete {
        match applies.delete(victim, &Default::default()).await {
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            other => {
                other?;
            }
        }
        info!(control_plane = %cp.name_any(), apply = %victim, "deleting Fargate profile apply");
        ctx.event_about(
            cp,
            Some(apply_reference(cp, victim)),
            EventType::Normal,
            "DeletingFargateProfile",
            format!("deleting WorkspaceTemplateApply {victim}"),
        )
        .await;
    }
    // Misbehaves on purpose in one test only (`Context::test_only_create_profiles_at_once`).
    let at_once = ctx.test_only_create_profiles_at_once;
    if let Some(first) = plan.create.filter(|_| at_once) {
        let missing = (first + 1..desired.len()).filter(|i| !plan.keep.contains(i));
        plan.keep = plan.keep.iter().copied().chain(missing).collect();
    }
    // Profiles whose apply cannot be written, reported in their status entry.
    let mut write_failures = Vec::new();
    for index in plan.keep.iter().copied().chain(plan.create) {
        let apply_name = &desired[index].apply_name;
        let want = fargate::render_as(cp, &profiles_spec[index], apply_name, &eks_workspace);
        let have = existing.iter().find(|a| a.name_any() == want.name_any());
        // An object of that name that is not ours is left alone.
        let taken = match have {
            None => state.applies.get_named(Some(&ns), apply_name),
            Some(_) => None,
        };
        let result = match taken.map(|other| check_owner(&want, other.as_ref())) {
            Some(Err(e)) => Err(e),
            _ => write_if_changed(&applies, &state.applies, &want, have.map(|a| a.as_ref())).await,
        };
        let written = match result {
            Ok(Some(written)) => written,
            Ok(None) => continue,
            Err(error) => {
                let profile = &profiles_spec[index].name;
                match write_failure::profile_status(profile, apply_name, &error) {
                    Some(status) => {
                        ctx.metrics.failure(CONTROLLER, error.metric_label());
                        warn!(control_plane = %cp.name_any(), %profile, apply = %apply_name, %error, "cannot write Fargate profile apply");
                        write_failures.push(status);
                        continue;
                    }
                    None => return Err(error),
                }
            }
        };
        state.apply_writes.record(&written);
        state.applies.remember(written);
        // Logged only: the profile's progress is in the status, and its failure, deletion and
        // the whole set becoming ready are events (`status::events`).
        if have.is_none() {
            info!(control_plane = %cp.name_any(), profile = %profiles_spec[index].name, apply = %want.name_any(), "creating Fargate profile apply");
        }
    }

    // 3. Status.
    let spec_defaults: Vec<&str> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| d.name())
        .collect();
    let in_apply = eks_existing
        .as_deref()
        .map(default_profiles_in)
        .unwrap_or_default();
    let old = cp.status.clone().unwrap_or_default();
    let mut statuses = profiles::default_statuses(&Defaults {
        spec: &spec_defaults,
        in_apply: &in_apply,
        eks_apply: &eks_name,
        eks: &eks_state,
        held_by,
        old: &old.fargate_profiles,
    });
    let retry_failed_writes = !write_failures.is_empty();
    write_failure::apply_overrides(&mut plan.statuses, write_failures);
    statuses.extend(plan.statuses);
    ctx.metrics.set_profiles(metrics_key(cp), &statuses);
    let ready = control_plane_condition(&eks_name, &eks_state, held_by);
    let deferred = write_status(
        cp,
        state,
        eks_existing.as_deref(),
        &eks_state,
        ready,
        statuses,
    )
    .await?;
    // A transient error that lasts becomes a failure at a time no watch event marks.
    let now = k8s_openapi::jiff::Timestamp::now();
    let retry_check = eks_existing
        .iter()
        .chain(&existing)
        .filter_map(|a| transient_until(a))
        .filter_map(|until| now.duration_until(until).try_into().ok())
        .map(|wait: Duration| wait + Duration::from_secs(1))
        .min();
    // Nothing wakes this control plane when an object in the way of a write goes or the
    // permission is granted, so look again soon.
    let write_retry = retry_failed_writes.then_some(WRITE_FAILURE_RETRY);
    let next = [deferred, retry_check, write_retry]
        .into_iter()
        .flatten()
        .min();
    Ok(Action::requeue(next.unwrap_or(RESYNC)))
}

/// The default profile names in an EKS apply's Terraform input (`fargate_profiles`).
fn default_profiles_in(apply: &WorkspaceTemplateApply) -> Vec<String> {
    apply
        .spec
        .terraform_variables
        .as_ref()
        .and_then(|v| v.get("fargate_profiles"))
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The control plane's own readiness, which follows the EKS cluster workspace only: a Fargate
/// profile failure is reported by the FargateProfile conditions and never marks the control
/// plane failed (CAPI treats control plane failures as terminal).
/// A change of the EKS workspace held by a profile operation (`held_by`) is said in its message.
fn control_plane_condition(
    eks_apply: &str,
    eks_state: &ChildState,
    held_by: Option<&str>,
) -> (WantedCondition, ControlPlanePhase) {
    match eks_state {
        ChildState::Ready => {
            let message = match held_by {
                Some(profile) => format!(
                    "control plane is ready; the change of the EKS cluster workspace {eks_apply} waits for Fargate profile {profile} (one Fargate profile operation per cluster at a time)"
                ),
                None => "control plane is ready".to_string(),
            };
            (
                WantedCondition::new(READY, true, reason::READY, message),
                ControlPlanePhase::Ready,
            )
        }
        ChildState::Failed { message, .. } => (
            WantedCondition::new(READY, false, reason::WORKSPACE_ERROR, message.clone()),
            ControlPlanePhase::Failed,
        ),
        ChildState::Creating { reason, message } => {
            let message = if message.is_empty() {
                "control plane is being created".to_string()
            } else {
                message.clone()
            };
            // A retried transient error keeps its reason; it is not a failure.
            let why = if reason == reason::TRANSIENT_ERROR {
                reason::TRANSIENT_ERROR
            } else {
                reason::CREATING
            };
            (
                WantedCondition::new(READY, false, why, message),
                ControlPlanePhase::Creating,
            )
        }
        ChildState::Deleting(_) => (
            WantedCondition::new(
                READY,
                false,
                reason::DELETING,
                "control plane is being deleted",
            ),
            ControlPlanePhase::Creating,
        ),
    }
}

async fn write_status(
    cp: &CAPTControlPlane,
    state: &State,
    eks_apply: Option<&WorkspaceTemplateApply>,
    eks_state: &ChildState,
    (ready_condition, phase): (WantedCondition, ControlPlanePhase),
    statuses: Vec<FargateProfileStatus>,
) -> Result<Option<Duration>> {
    let old = cp.status.clone().unwrap_or_default();
    let mut desired = profiles::conditions(&statuses);
    desired.push(ready_condition);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let ready = *eks_state == ChildState::Ready;
    let (failure_reason, failure_message) = match eks_state {
        ChildState::Failed { reason, message } => (Some(reason.clone()), Some(message.clone())),
        _ => (None, None),
    };
    let ready_count = statuses.iter().filter(|s| s.ready).count();
    let eks_ready_reason = eks_apply
        .and_then(|a| a.status.as_ref())
        .and_then(|s| crate::api::conditions::find(&s.conditions, READY).map(|c| c.reason.clone()));
    let new = CAPTControlPlaneStatus {
        ready,
        initialized: Some(ready || old.initialized == Some(true)),
        workspace_template_status: Some(WorkspaceTemplateStatus {
            ready,
            state: eks_ready_reason.clone(),
            last_applied_revision: eks_apply
                .and_then(|a| a.status.as_ref())
                .and_then(|s| s.last_applied_time.as_ref())
                .map(|t| t.0.to_string()),
            last_failure_message: failure_message.clone(),
            ..Default::default()
        }),
        workspace_status: Some(WorkspaceStatus {
            ready,
            state: eks_ready_reason,
        }),
        failure_reason,
        failure_message,
        phase: Some(phase),
        conditions: merge(&old.conditions, &desired, cp.metadata.generation, &now),
        fargate_profiles_summary: Some(format!("{ready_count}/{}", statuses.len())),
        fargate_profiles: statuses,
        observed_generation: cp.metadata.generation,
        ..old.clone()
    };
    if new == old {
        return Ok(None);
    }
    let eks_reported = eks_apply
        .and_then(|a| a.status.as_ref())
        .is_some_and(|s| !s.conditions.is_empty());
    let age = super::age(cp).unwrap_or_default();
    if let Some(wait) = pacing::first_status_wait(&old, eks_reported, age) {
        return Ok(Some(wait));
    }
    let uid = cp.uid().unwrap_or_default();
    if pacing::progress_only(&old, &new) {
        // How many roll out at once, as their statuses say (this one included).
        let rolling_out = state
            .control_planes
            .filter(|c| c.status.as_ref().is_some_and(pacing::rolling_out))
            .len();
        let interval = pacing::progress_interval(rolling_out);
        let last = state.status_writes.last(&uid);
        if let Some(wait) = last.and_then(|at| interval.checked_sub(at.elapsed())) {
            return Ok(Some(wait));
        }
    }
    publish_transitions(cp, &state.ctx, &old.fargate_profiles, &new.fargate_profiles).await;
    let api: Api<CAPTControlPlane> =
        Api::namespaced(state.ctx.client.clone(), &render::namespace(cp));
    let body = json!({ "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "CAPTControlPlane", "status": new });
    let written = api
        .patch_status(
            &cp.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    state.control_planes.remember(written);
    state.status_writes.record(&uid);
    Ok(None)
}

/// Forgets everything kept about a control plane that is gone: its metrics, events, status
/// write time and finalizer write. Every deletion path calls it.
fn forget(cp: &CAPTControlPlane, state: &State) {
    let ctx = &state.ctx;
    ctx.metrics.forget_profiles(&metrics_key(cp));
    ctx.forget_events(cp.uid().as_deref());
    state.status_writes.forget(&cp.uid().unwrap_or_default());
    state.finalizer_writes.forget(cp);
}

/// The key of a control plane's profile phases in the metrics.
fn metrics_key(cp: &CAPTControlPlane) -> String {
    format!("{}/{}", render::namespace(cp), cp.name_any())
}

/// Publishes the events `status::events` chooses for this status change.
async fn publish_transitions(
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

/// A reference to one of `cp`'s applies, as an event's related object: each profile's events
/// then form their own series instead of overwriting each other's note.
fn apply_reference(cp: &CAPTControlPlane, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("infrastructure.cluster.x-k8s.io/v1beta1".into()),
        kind: Some("WorkspaceTemplateApply".into()),
        name: Some(name.to_string()),
        namespace: cp.namespace(),
        ..Default::default()
    }
}

/// Deletes the profiles one at a time (reverse spec order, after every operation in flight),
/// then the EKS cluster, keeping the status current meanwhile, and reports when all is gone.
async fn teardown(cp: &CAPTControlPlane, state: &State) -> Result<Cleanup> {
    let ctx = &state.ctx;
    let ns = render::namespace(cp);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = owned_profile_applies(cp, &state.applies);
    let observed: Vec<ObservedProfile> = existing.iter().map(|a| observed(a)).collect();
    let eks_name = eks::apply_name(cp);
    let eks = state.applies.get_named(Some(&ns), &eks_name);
    let eks_state = eks.as_deref().map(child_state);
    let spec: Vec<String> = cp
        .spec
        .additional_fargate_profiles
        .iter()
        .flatten()
        .map(|p| p.name.clone())
        .collect();
    let defaults: Vec<&str> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| d.name())
        .collect();
    let plan = profiles::teardown(&spec, &observed, &defaults, &eks_name, eks_state.as_ref());
    if plan.step == Teardown::Done {
        return Ok(Cleanup::Done);
    }
    // The status says what teardown is doing and why it waits, so `kubectl describe` explains
    // a deletion that does not finish.
    let shown = eks_state.clone().unwrap_or(ChildState::Deleting(None));
    let ready = control_plane_condition(&eks_name, &shown, None);
    write_status(cp, state, eks.as_deref(), &shown, ready, plan.statuses).await?;
    match plan.step {
        Teardown::DeleteProfile(name) => {
            match applies.delete(&name, &Default::default()).await {
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                other => {
                    other?;
                }
            }
            info!(control_plane = %cp.name_any(), apply = %name, "deleting Fargate profile apply");
            ctx.event_about(
                cp,
                Some(apply_reference(cp, &name)),
                EventType::Normal,
                "DeletingFargateProfile",
                format!(
                    "the control plane is being deleted; deleting WorkspaceTemplateApply {name}"
                ),
            )
            .await;
            Ok(Cleanup::Waiting)
        }
        Teardown::DeleteCluster => {
            applies.delete(&eks_name, &Default::default()).await?;
            ctx.event(
                cp,
                EventType::Normal,
                "DeletingClusterWorkspace",
                format!(
                    "all Fargate profiles are gone; deleting WorkspaceTemplateApply {eks_name}"
                ),
            )
            .await;
            Ok(Cleanup::Waiting)
        }
        Teardown::WaitForProfile(_) | Teardown::WaitForCluster | Teardown::Done => {
            Ok(Cleanup::Waiting)
        }
    }
}
