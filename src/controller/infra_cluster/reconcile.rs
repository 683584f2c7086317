//! A CAPTCluster's reconcile: its VPC apply, its status, and its teardown.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::status::{
    self, EXISTING_VPC_USED, Observed, VPC_CREATING, VPC_CREATION_FAILED, Vpc,
    WAITING_FOR_CONNECTION_SECRET,
};
use super::{CONTROLLER, RESYNC, State, control_planes_of, pause};
use crate::api::{CAPTCluster, WorkspaceTemplateApply};
use crate::controller::workspace_apply::workspace_name_of;
use crate::error::{Error, Result};
use crate::names::{CAPT_CLUSTER_FINALIZER, FIELD_MANAGER, IN_USE_FINALIZER};
use crate::render::vpc;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};
use crate::runtime::write::{check_owner, write_if_changed};
use crate::status::apply::{ChildState, child_state};

/// How soon a VPC apply whose name is taken is tried again (nothing wakes the CAPTCluster
/// when the other object goes).
const WRITE_FAILURE_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn reconcile(c: Arc<CAPTCluster>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    if !(state.applies.is_ready() && state.control_planes.is_ready()) {
        return Ok(Action::requeue(crate::controller::CACHES_FILLING));
    }
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let c = state.capt_clusters.latest(c);
    let ns = c
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(c.name_any()))?;
    let api: Api<CAPTCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = vpc::cluster_of(&c.metadata);
    let known = match state.clusters.named(&ns, Some(&cluster)) {
        pause::Known::Unknown => return Ok(Action::requeue(pause::CLUSTERS_UNKNOWN)),
        pause::Known::Cluster(known) => known,
    };
    let paused = pause::is_paused(c.as_ref(), known.as_deref());
    let apply = own_apply(&c, &state);
    if paused.is_some() {
        // Cluster API's pause: nothing but the status is written, deletion included.
        let deleting = c
            .metadata
            .deletion_timestamp
            .is_some()
            .then(|| "deletion waits until the pause ends".to_string());
        write_status(&c, &state, apply.as_deref(), paused, deleting).await?;
        return Ok(Action::await_change());
    }
    if c.metadata.deletion_timestamp.is_some() {
        return teardown(&c, &state, &api, apply.as_deref()).await;
    }
    let c = ensure_finalizer(&api, &state.capt_clusters, c, CAPT_CLUSTER_FINALIZER).await?;
    reconcile_vpc(&c, &state, apply).await
}

/// The VPC apply of `c` if it exists and is controlled by `c`.
fn own_apply(c: &CAPTCluster, state: &State) -> Option<Arc<WorkspaceTemplateApply>> {
    let apply = state
        .applies
        .get_named(Some(&vpc::namespace(c)), &vpc::apply_name(c))?;
    let uid = c.uid()?;
    apply
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
        .then_some(apply)
}

/// Keeps the VPC apply as rendered and reports it.
async fn reconcile_vpc(
    c: &CAPTCluster,
    state: &State,
    existing: Option<Arc<WorkspaceTemplateApply>>,
) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = vpc::namespace(c);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    let desired = vpc::render(c);
    let name = desired.name_any();
    if let Some(apply) = existing.as_deref()
        && apply.metadata.deletion_timestamp.is_some()
    {
        // Deleted by someone else (a person, the namespace's deletion): its Workspace is kept
        // until no control plane reads its Secret; then it is recreated.
        release_when_unused(c, state, &applies, apply).await?;
        write_status(c, state, Some(apply), None, None).await?;
        return Ok(Action::await_change());
    }
    // An apply of that name that `c` does not control is left alone and reported.
    if existing.is_none()
        && let Some(other) = state.applies.get_named(Some(&ns), &name)
        && let Err(e) = check_owner(&desired, other.as_ref())
    {
        let message = format!("{e}");
        let vpc = Vpc::NotReady {
            reason: crate::status::reason::APPLY_NAME_CONFLICT.into(),
            message,
        };
        write_built(c, state, &observed_with(c, None, vpc, None, None)).await?;
        return Ok(Action::requeue(WRITE_FAILURE_RETRY));
    }
    let mut apply = existing;
    let written = match write_if_changed(&applies, &state.applies, &desired, apply.as_deref()).await
    {
        // An apply of that name outside this controller's watch (without the VPC label)
        // that `c` does not control: reported, left alone, tried again later.
        Err(e @ Error::NotOwned { .. }) => {
            let vpc = Vpc::NotReady {
                reason: crate::status::reason::APPLY_NAME_CONFLICT.into(),
                message: e.to_string(),
            };
            write_built(c, state, &observed_with(c, None, vpc, None, None)).await?;
            return Ok(Action::requeue(WRITE_FAILURE_RETRY));
        }
        other => other?,
    };
    if let Some(written) = written {
        // Recorded before the event's round trip: later versions may be on their way.
        state.applies.remember(written.clone());
        if apply.is_none() {
            info!(capt_cluster = %c.name_any(), apply = %name, "creating VPC apply");
            ctx.event(
                c,
                EventType::Normal,
                "CreatedVPCWorkspace",
                format!("created WorkspaceTemplateApply {name} for the VPC"),
            )
            .await;
        }
        apply = Some(Arc::new(written));
    }
    write_status(c, state, apply.as_deref(), None, None).await?;
    Ok(Action::requeue(RESYNC))
}

/// Removes [`IN_USE_FINALIZER`] from `apply` once no control plane of the cluster exists.
/// Returns the control planes still there.
async fn release_when_unused(
    c: &CAPTCluster,
    state: &State,
    applies: &Api<WorkspaceTemplateApply>,
    apply: &WorkspaceTemplateApply,
) -> Result<Vec<String>> {
    let left = control_planes_of(state, &vpc::namespace(c), &vpc::cluster_of(&c.metadata));
    if left.is_empty() {
        remove_finalizer(applies, apply, IN_USE_FINALIZER).await?;
    }
    Ok(left)
}

/// Deletion: with `retainVpcOnDelete`, keeps the VPC (the apply retains its Workspace and
/// no longer holds it); otherwise waits until every control plane of the cluster is gone
/// (their workspaces read the VPC connection Secret when they are destroyed), then deletes
/// the apply and waits for it (and so for the VPC's destroy) before releasing the finalizer.
async fn teardown(
    c: &CAPTCluster,
    state: &State,
    api: &Api<CAPTCluster>,
    apply: Option<&WorkspaceTemplateApply>,
) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = vpc::namespace(c);
    let applies: Api<WorkspaceTemplateApply> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(apply) = apply else {
        remove_finalizer(api, c, CAPT_CLUSTER_FINALIZER).await?;
        ctx.forget_events(c.uid().as_deref());
        return Ok(Action::await_change());
    };
    let name = apply.name_any();
    if vpc::retained(c) {
        if apply.metadata.deletion_timestamp.is_none()
            && apply.spec.retain_workspace_on_delete != Some(true)
        {
            // retainVpcOnDelete was set after the last reconcile: the apply says so first.
            let desired = vpc::render(c);
            if let Some(written) =
                write_if_changed(&applies, &state.applies, &desired, Some(apply)).await?
            {
                state.applies.remember(written);
            }
            return Ok(Action::await_change());
        }
        remove_finalizer(&applies, apply, IN_USE_FINALIZER).await?;
        ctx.event(
            c,
            EventType::Normal,
            "RetainedVPC",
            format!(
                "kept the VPC: WorkspaceTemplateApply {name} keeps its Workspace {} when it is deleted",
                workspace_name_of(apply)
            ),
        )
        .await;
        remove_finalizer(api, c, CAPT_CLUSTER_FINALIZER).await?;
        ctx.forget_events(c.uid().as_deref());
        return Ok(Action::await_change());
    }
    let left = control_planes_of(state, &ns, &vpc::cluster_of(&c.metadata));
    let waiting = if left.is_empty() {
        if apply.metadata.deletion_timestamp.is_none() {
            match applies.delete(&name, &Default::default()).await {
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                other => {
                    other?;
                }
            }
            ctx.event(
                c,
                EventType::Normal,
                "DeletingVPCWorkspace",
                format!("every control plane of the cluster is gone; deleting WorkspaceTemplateApply {name}"),
            )
            .await;
        }
        remove_finalizer(&applies, apply, IN_USE_FINALIZER).await?;
        format!(
            "destroying the VPC: waiting for WorkspaceTemplateApply {name} and its Workspace {} to be deleted",
            workspace_name_of(apply)
        )
    } else {
        format!(
            "waiting for CAPTControlPlane {} to be deleted first: their workspaces read the VPC connection Secret when they are destroyed",
            left.join(", ")
        )
    };
    write_status(c, state, Some(apply), None, Some(waiting)).await?;
    // The apply's and the control planes' watches bring it back.
    Ok(Action::await_change())
}

/// What the VPC apply's state means for the CAPTCluster; reads the connection Secret (values
/// `vpc_id` and `availability_zones`, never logged) once the apply is ready.
async fn observe_vpc(
    c: &CAPTCluster,
    state: &State,
    apply: Option<&WorkspaceTemplateApply>,
) -> Result<Vpc> {
    let Some(apply) = apply else {
        return Ok(Vpc::NotReady {
            reason: VPC_CREATING.into(),
            message: format!(
                "creating WorkspaceTemplateApply {} for the VPC",
                vpc::apply_name(c)
            ),
        });
    };
    match child_state(apply) {
        ChildState::Ready => {}
        ChildState::Creating { reason, message } => {
            let message = if message.is_empty() {
                format!(
                    "waiting for the VPC workspace {} to be applied ({reason})",
                    apply.name_any()
                )
            } else {
                message
            };
            return Ok(Vpc::NotReady {
                reason: VPC_CREATING.into(),
                message,
            });
        }
        ChildState::Failed { message, .. } => {
            return Ok(Vpc::NotReady {
                reason: VPC_CREATION_FAILED.into(),
                message: format!("the VPC workspace {} failed: {message}", apply.name_any()),
            });
        }
        ChildState::Deleting(_) => {
            return Ok(Vpc::NotReady {
                reason: status::DELETING.into(),
                message: format!("the VPC workspace {} is being deleted", apply.name_any()),
            });
        }
    }
    let ns = vpc::namespace(c);
    let secret_name = vpc::connection_secret(c);
    // The shared Secret cache keeps a VPC connection secret's public values (`vpc_id`,
    // `availability_zones`) and its key names; the Secret is read only when the cache cannot
    // tell (out of scope, or not complete there yet: its event may come after the apply's).
    let cached = secret_name
        .ends_with(crate::names::VPC_CONNECTION_SUFFIX)
        .then(|| state.secrets.get_named(Some(&ns), &secret_name))
        .flatten()
        .filter(|s| state.ctx.in_scope(&ns) && has_connection_keys(s));
    let secret = match cached {
        Some(secret) => Some(Arc::unwrap_or_clone(secret)),
        None => {
            Api::<Secret>::namespaced(state.ctx.client.clone(), &ns)
                .get_opt(&secret_name)
                .await?
        }
    };
    let data: BTreeMap<String, Vec<u8>> = secret
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(vpc_from_secret(
        &ns,
        &secret_name,
        &data,
        vpc::existing_vpc_id(c),
    ))
}

/// Whether `secret` has every key of a VPC connection secret (`vpc::CONNECTION_KEYS`).
fn has_connection_keys(secret: &Secret) -> bool {
    let data = secret.data.as_ref();
    vpc::CONNECTION_KEYS
        .iter()
        .all(|k| data.is_some_and(|d| d.contains_key(*k)))
}

/// The VPC as its connection Secret describes it (`data`: key → value), or what it lacks.
/// An existing VPC is reported by the ID the spec names.
fn vpc_from_secret(
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    existing: Option<&str>,
) -> Vpc {
    let missing: Vec<&str> = vpc::CONNECTION_KEYS
        .iter()
        .copied()
        .filter(|k| !data.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Vpc::NotReady {
            reason: WAITING_FOR_CONNECTION_SECRET.into(),
            message: format!(
                "the VPC workspace is applied but Secret {namespace}/{name} lacks keys {}",
                missing.join(", ")
            ),
        };
    }
    let vpc_id = existing
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&data["vpc_id"]).trim().to_string());
    // provider-terraform writes a list output as JSON. Optional: a VPC template of one's own
    // may not output the zones.
    let zones = data
        .get("availability_zones")
        .and_then(|z| serde_json::from_slice::<Vec<String>>(z).ok())
        .unwrap_or_default();
    Vpc::Ready { vpc_id, zones }
}

fn observed_with(
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
async fn write_status(
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
async fn write_built(c: &CAPTCluster, state: &State, observed: &Observed) -> Result<()> {
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
            status::VPC_CREATED
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
    let api: Api<CAPTCluster> = Api::namespaced(state.ctx.client.clone(), &vpc::namespace(c));
    let body = json!({
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        "kind": "CAPTCluster",
        "status": new,
    });
    let written = api
        .patch_status(
            &c.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    state.capt_clusters.remember(written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_gives_the_vpc_id_and_its_zones_or_says_what_it_lacks() {
        let mut data = BTreeMap::from([
            ("vpc_config".to_string(), b"vpc_id = \"x\"".to_vec()),
            ("vpc_id".to_string(), b"vpc-0123abcd".to_vec()),
        ]);
        assert_eq!(
            vpc_from_secret("ns", "demo-vpc-connection", &BTreeMap::new(), None),
            Vpc::NotReady {
                reason: WAITING_FOR_CONNECTION_SECRET.into(),
                message: "the VPC workspace is applied but Secret ns/demo-vpc-connection lacks keys vpc_config, vpc_id".into(),
            }
        );
        // The zones are optional: a VPC template of one's own may not output them.
        assert_eq!(
            vpc_from_secret("ns", "s", &data, None),
            Vpc::Ready {
                vpc_id: "vpc-0123abcd".into(),
                zones: vec![]
            }
        );
        data.insert(
            "availability_zones".into(),
            br#"["ap-northeast-1a","ap-northeast-1c"]"#.to_vec(),
        );
        assert_eq!(
            vpc_from_secret("ns", "demo-vpc-connection", &data, None),
            Vpc::Ready {
                vpc_id: "vpc-0123abcd".into(),
                zones: vec!["ap-northeast-1a".into(), "ap-northeast-1c".into()],
            }
        );
        assert!(matches!(
            vpc_from_secret("ns", "s", &data, Some("vpc-0fedcba9")),
            Vpc::Ready { vpc_id, .. } if vpc_id == "vpc-0fedcba9"
        ));
    }
}
