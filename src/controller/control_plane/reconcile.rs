//! A control plane's reconcile: its children (the EKS apply and the profile applies), their
//! sequencing and its teardown.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::pause;
use super::status::{control_plane_condition, write_paused, write_status};
use super::{CONTROLLER, RESYNC, State, WRITE_FAILURE_RETRY, forget, metrics_key};
use crate::api::{CAPTControlPlane, FargateProfile, FargateProfileStatus, WorkspaceTemplateApply};
use crate::controller::secrets::Required;
use crate::controller::{Cleanup, Context};
use crate::error::{Error, Result};
use crate::names::{self, CONTROL_PLANE_FINALIZER};
use crate::render::{self, eks, fargate};
use crate::runtime::cache::Cache;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::index;
use crate::runtime::write::{self, check_owner, write_if_changed};
use crate::status::apply::{ChildState, child_state, transient_until};
use crate::status::profiles::{
    self, ClusterGate, Defaults, DesiredProfile, ObservedProfile, Plan, Teardown,
};
use crate::status::reason;
use crate::status::write_failure;

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
    if let Some(why) = pause::is_paused(cp.as_ref(), cluster.as_deref()) {
        write_paused(&cp, &state, &why).await?;
        return Ok(Action::await_change());
    }
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
            crate::controller::secrets::missing(
                &ctx.client,
                &state.secrets,
                ctx.in_scope(&ns),
                required,
            )
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
    let eks_name = eks::apply_name(cp);
    let (eks_existing, held_by) = reconcile_eks(cp, state, &applies, &observed).await?;
    let eks_state = match &eks_existing {
        Some(a) => child_state(a),
        None => ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        },
    };

    // The endpoint and the kubeconfig Secrets, from the EKS connection secret.
    let kubeconfig = super::kubeconfig::reconcile(cp, state).await?;

    // 2. Additional profiles, one step at a time.
    let profiles_spec = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap_or_default();
    let desired = desired_profiles(cp, &profiles_spec, &existing);
    // The Workspace the EKS apply reports, which an earlier naming rule may have named.
    let eks_workspace = eks_existing
        .as_deref()
        .map(crate::controller::workspace_apply::workspace_name_of)
        .unwrap_or_else(|| names::workspace_name(&ns, &eks_name));
    let mut plan = plan_profiles(cp, state, &eks_name, &eks_state, &desired, &observed).await?;

    if let Some(victim) = &plan.delete {
        delete_profile_apply(cp, ctx, &applies, victim).await?;
    }
    // Misbehaves on purpose in one test only (`Context::test_only_create_profiles_at_once`).
    let at_once = ctx.test_only_create_profiles_at_once;
    if let Some(first) = plan.create.filter(|_| at_once) {
        let missing = (first + 1..desired.len()).filter(|i| !plan.keep.contains(i));
        plan.keep = plan.keep.iter().copied().chain(missing).collect();
    }
    // Profiles whose apply cannot be written, reported in their status entry.
    let to_write = plan.keep.iter().copied().chain(plan.create);
    let targets = ProfileTargets {
        desired: &desired,
        spec: &profiles_spec,
        existing: &existing,
        eks_workspace: &eks_workspace,
    };
    let write_failures = write_profiles(cp, state, &applies, &targets, to_write).await?;

    // 3. Status.
    let retry_failed_writes = !write_failures.is_empty();
    let eks = EksView {
        name: &eks_name,
        apply: eks_existing.as_deref(),
        state: &eks_state,
        held_by,
    };
    let statuses = profile_statuses(cp, &eks, plan.statuses, write_failures);
    ctx.metrics.set_profiles(metrics_key(cp), &statuses);
    let ready = control_plane_condition(&eks_name, &eks_state, held_by);
    let deferred = write_status(
        cp,
        state,
        eks_existing.as_deref(),
        &eks_state,
        ready,
        statuses,
        Some(&kubeconfig.state),
    )
    .await?;
    // A transient error that lasts becomes a failure at a time no watch event marks.
    let retry_check = transient_check(eks_existing.iter().chain(&existing));
    // Nothing wakes this control plane when an object in the way of a write goes or the
    // permission is granted, so look again soon.
    let write_retry = retry_failed_writes.then_some(WRITE_FAILURE_RETRY);
    let next = [deferred, retry_check, write_retry, kubeconfig.requeue]
        .into_iter()
        .flatten()
        .min();
    Ok(Action::requeue(next.unwrap_or(RESYNC)))
}

/// The profile plan (`profiles::plan`) behind the cluster's gate. The connection secrets only
/// matter when a profile is about to be created, so they are checked then.
async fn plan_profiles(
    cp: &CAPTControlPlane,
    state: &State,
    eks_name: &str,
    eks_state: &ChildState,
    desired: &[DesiredProfile],
    observed: &[ObservedProfile],
) -> Result<Plan> {
    let mut gate = match eks_state {
        ChildState::Ready => ClusterGate::Open,
        _ => cluster_gate(cp, state, eks_name, eks_state).await?,
    };
    let mut plan = profiles::plan(desired, observed, &gate);
    if plan.create.is_some() && gate == ClusterGate::Open {
        gate = cluster_gate(cp, state, eks_name, eks_state).await?;
        if gate != ClusterGate::Open {
            plan = profiles::plan(desired, observed, &gate);
        }
    }
    Ok(plan)
}

/// Writes the EKS cluster apply of `cp` unless unchanged, or held: a change waits while a
/// profile of `observed` has a Fargate operation in flight. Returns the apply as known now
/// and the profile holding a change, if one does.
async fn reconcile_eks<'o>(
    cp: &CAPTControlPlane,
    state: &State,
    applies: &Api<WorkspaceTemplateApply>,
    observed: &'o [ObservedProfile],
) -> Result<(Option<Arc<WorkspaceTemplateApply>>, Option<&'o str>)> {
    let ctx = &state.ctx;
    let ns = render::namespace(cp);
    let eks_desired = eks::render_with(cp, &ctx.operator_role_arn);
    let eks_name = eks_desired.name_any();
    let mut eks_existing = state.applies.get_named(Some(&ns), &eks_name);
    let mut held_by = None;
    if let Some(e) = eks_existing.as_deref()
        && e.metadata.deletion_timestamp.is_none()
        && write::would_change(&state.applies, e, &eks_desired)?
    {
        held_by = profiles::eks_change_held_by(observed);
    }
    if held_by.is_none()
        && eks_existing
            .as_ref()
            .is_none_or(|e| e.metadata.deletion_timestamp.is_none())
        && let Some(written) = write_if_changed(
            applies,
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
    Ok((eks_existing, held_by))
}

/// The additional profiles of `spec` as the plan sees them: name, apply name and the hash of
/// what AWS cannot change. A profile that already has an apply among `existing` keeps it
/// under its name (see `names::profile_apply_name_in_use`): renaming it would create the
/// profile again.
fn desired_profiles(
    cp: &CAPTControlPlane,
    spec: &[FargateProfile],
    existing: &[Arc<WorkspaceTemplateApply>],
) -> Vec<DesiredProfile> {
    let owned_names: Vec<(&str, &str)> = existing
        .iter()
        .filter_map(|a| {
            let profile = a.annotations().get(names::ANNOTATION_PROFILE_NAME)?;
            Some((profile.as_str(), a.metadata.name.as_deref()?))
        })
        .collect();
    spec.iter()
        .map(|p| DesiredProfile {
            name: p.name.clone(),
            apply_name: names::profile_apply_name_in_use(
                &p.name,
                names::profile_apply_name(&cp.name_any(), &p.name),
                owned_names.iter().copied(),
            ),
            hash: fargate::immutable_hash(cp, p),
        })
        .collect()
}

/// What the profile applies are rendered from: the plan's profiles, the spec's, the applies
/// that exist, and the EKS Workspace they wait for.
struct ProfileTargets<'a> {
    desired: &'a [DesiredProfile],
    spec: &'a [FargateProfile],
    existing: &'a [Arc<WorkspaceTemplateApply>],
    eks_workspace: &'a str,
}

/// Writes the profile applies at `indices` of the targets (each unless unchanged), and
/// returns the status entries of those that cannot be written (name taken, forbidden,
/// invalid); other errors fail the reconcile.
async fn write_profiles(
    cp: &CAPTControlPlane,
    state: &State,
    applies: &Api<WorkspaceTemplateApply>,
    targets: &ProfileTargets<'_>,
    indices: impl Iterator<Item = usize>,
) -> Result<Vec<FargateProfileStatus>> {
    let ctx = &state.ctx;
    let ns = render::namespace(cp);
    let ProfileTargets {
        desired,
        spec: profiles_spec,
        existing,
        eks_workspace,
    } = targets;
    let mut write_failures = Vec::new();
    for index in indices {
        let apply_name = &desired[index].apply_name;
        let want = fargate::render_as(cp, &profiles_spec[index], apply_name, eks_workspace);
        let have = existing.iter().find(|a| a.name_any() == want.name_any());
        // An object of that name that is not ours is left alone.
        let taken = match have {
            None => state.applies.get_named(Some(&ns), apply_name),
            Some(_) => None,
        };
        let result = match taken.map(|other| check_owner(&want, other.as_ref())) {
            Some(Err(e)) => Err(e),
            _ => write_if_changed(applies, &state.applies, &want, have.map(|a| a.as_ref())).await,
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
    Ok(write_failures)
}

/// When to look again at applies whose transient error could become a failure (a second
/// after the earliest such moment), if any.
fn transient_check<'a>(
    applies: impl Iterator<Item = &'a Arc<WorkspaceTemplateApply>>,
) -> Option<Duration> {
    let now = k8s_openapi::jiff::Timestamp::now();
    applies
        .filter_map(|a| transient_until(a))
        .filter_map(|until| now.duration_until(until).try_into().ok())
        .map(|wait: Duration| wait + Duration::from_secs(1))
        .min()
}

/// The EKS cluster apply as the status sees it.
struct EksView<'a> {
    name: &'a str,
    apply: Option<&'a WorkspaceTemplateApply>,
    state: &'a ChildState,
    /// The profile holding a change of the EKS workspace, if one does.
    held_by: Option<&'a str>,
}

/// Every profile's status entry: the default profiles (from the EKS apply), then the
/// additional ones as the plan reports them, with those that could not be written marked so.
fn profile_statuses(
    cp: &CAPTControlPlane,
    eks: &EksView<'_>,
    mut planned: Vec<FargateProfileStatus>,
    write_failures: Vec<FargateProfileStatus>,
) -> Vec<FargateProfileStatus> {
    let spec_defaults: Vec<&str> = cp
        .spec
        .default_fargate_profiles
        .iter()
        .map(|d| d.name())
        .collect();
    let in_apply = eks.apply.map(default_profiles_in).unwrap_or_default();
    let old = cp.status.clone().unwrap_or_default();
    let mut statuses = profiles::default_statuses(&Defaults {
        spec: &spec_defaults,
        in_apply: &in_apply,
        eks_apply: eks.name,
        eks: eks.state,
        held_by: eks.held_by,
        old: &old.fargate_profiles,
    });
    write_failure::apply_overrides(&mut planned, write_failures);
    statuses.extend(planned);
    statuses
}

/// Deletes the profile apply `victim` (gone already is fine) and says so in an event.
async fn delete_profile_apply(
    cp: &CAPTControlPlane,
    ctx: &Context,
    applies: &Api<WorkspaceTemplateApply>,
    victim: &str,
) -> Result<()> {
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
    Ok(())
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
    write_status(
        cp,
        state,
        eks.as_deref(),
        &shown,
        ready,
        plan.statuses,
        None,
    )
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FargateProfilePhase;
    use crate::render::fixtures::control_plane;

    fn entry(name: &str, phase: FargateProfilePhase) -> FargateProfileStatus {
        FargateProfileStatus {
            name: name.into(),
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_come_first_and_a_failed_write_replaces_its_planned_entry() {
        let cp = control_plane(
            "version: \"1.31\"\nworkspaceTemplateRef: { name: eks }\ndefaultFargateProfiles: [karpenter]\n",
        );
        let eks = EksView {
            name: "demo-eks",
            apply: None,
            state: &ChildState::Creating {
                reason: reason::CREATING.into(),
                message: String::new(),
            },
            held_by: None,
        };
        let planned = vec![
            entry("a", FargateProfilePhase::Creating),
            entry("b", FargateProfilePhase::Pending),
        ];
        let failed = entry("a", FargateProfilePhase::Failed);
        let statuses = profile_statuses(&cp, &eks, planned, vec![failed]);
        let got: Vec<(&str, Option<FargateProfilePhase>)> = statuses
            .iter()
            .map(|s| (s.name.as_str(), s.phase))
            .collect();
        assert_eq!(got[0].0, "karpenter", "the default profile first");
        assert_eq!(
            &got[1..],
            [
                ("a", Some(FargateProfilePhase::Failed)),
                ("b", Some(FargateProfilePhase::Pending))
            ]
        );
    }
}
