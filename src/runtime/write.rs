//! The write path of children (WorkspaceTemplateApplies, Workspaces): each rendered child is
//! stamped with a record of what was rendered ([`stamp`], `diff::Applied`), so that a change
//! that only removes something (a variable, a tag, a default profile, a label) is written,
//! while the defaults the API server adds cause no write. Every write names the field manager
//! `names::FIELD_MANAGER`.
//!
//! Replaces kube's server-side apply (`Patch::Apply`) for children: a POST and merge patches at
//! the version read cost the API server about a quarter less (`examples/request_costs.rs`), and
//! the stamp gives the removals that apply's field ownership would. `diff` explains why not
//! `kubectl apply`'s last-applied annotation. Keep the spec exactly as rendered and others'
//! metadata (labels, annotations, finalizers, owner references they added) as it is.
//!
//! The statuses of CAPTClusters and CAPTControlPlanes are written whole by a server-side apply
//! ([`apply_status`]).

use kube::api::{Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cache;
use super::diff;
use super::packed::Backing;
use crate::error::{Error, Result};
use crate::names::FIELD_MANAGER;

/// An object this operator creates and keeps: a WorkspaceTemplateApply or a Workspace.
pub trait Child:
    Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug + 'static
{
}

impl<K> Child for K where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + 'static
{
}

/// Writes `desired` (see [`write()`]) unless `existing` (from `cache`) already is what it
/// renders ([`contains`], after [`stamp`]). Returns the object as written, or None when no
/// write was needed.
pub async fn write_if_changed<K, B: Backing<K>>(
    api: &Api<K>,
    cache: &cache::Cache<K, B>,
    desired: &K,
    existing: Option<&K>,
) -> Result<Option<K>>
where
    K: Child,
{
    let mut desired = desired.clone();
    stamp(&mut desired)?;
    if existing.is_some_and(|e| cache.holds(e, &desired)) {
        return Ok(None);
    }
    write(api, cache, &desired, existing).await.map(Some)
}

/// Whether [`write_if_changed`] would write `desired` over `existing`: the same stamped
/// comparison, for a decision taken before the write (e.g. holding an EKS workspace change
/// while a Fargate operation is in flight), so that a pure removal counts as a change there too.
pub fn would_change<K: Child, B: Backing<K>>(
    cache: &cache::Cache<K, B>,
    existing: &K,
    desired: &K,
) -> Result<bool> {
    let mut desired = desired.clone();
    stamp(&mut desired)?;
    Ok(!cache.holds(existing, &desired))
}

/// Puts on `desired`, a rendered child, the record of what was rendered (annotation
/// `names::ANNOTATION_APPLIED`, see `diff::Applied`), replacing any it carries: compared with
/// the child's own record, it shows whether anything changed, removals included.
pub fn stamp<K: Child>(desired: &mut K) -> Result<()> {
    use crate::names::ANNOTATION_APPLIED;
    let mut value =
        serde_json::to_value(&*desired).map_err(|e| Error::Serialization("desired object", e))?;
    diff::stamp(&mut value);
    let applied = value
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_APPLIED))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    desired
        .meta_mut()
        .annotations
        .get_or_insert_default()
        .insert(ANNOTATION_APPLIED.into(), applied);
    Ok(())
}

/// Creates `desired`, or updates `existing` (as `cache` holds it) to it, and returns the object
/// as written, stamped ([`stamp`]; stamping a stamped object again changes nothing).
/// - A create is a POST: for the API server about a quarter cheaper than a server-side apply,
///   which parses its body as YAML and merges field ownership (`examples/request_costs.rs`).
/// - An update is a merge patch at the version read ([`diff::update_patch`]); a conflict (the
///   cache was stale) is retried by the next reconcile.
/// - A create that finds the object there already (written by a predecessor whose write the
///   cache has not shown yet) reads it and updates it, unless it is not controlled by the owner
///   of `desired` ([`check_owner`]): someone else's object is never taken over.
pub async fn write<K, B: Backing<K>>(
    api: &Api<K>,
    cache: &cache::Cache<K, B>,
    desired: &K,
    existing: Option<&K>,
) -> Result<K>
where
    K: Child,
{
    let mut stamped = desired.clone();
    stamp(&mut stamped)?;
    let desired = &stamped;
    let name = desired.name_any();
    let to_value =
        |obj: &K| serde_json::to_value(obj).map_err(|e| Error::Serialization("desired object", e));
    // The object to patch from, and whether it is trimmed as the cache trims (else live).
    let (existing, trimmed) = match existing {
        Some(existing) => (existing.clone(), true),
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, desired).await {
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    let live = api.get(&name).await?;
                    // Someone else's object of the same name is not taken over.
                    check_owner(desired, &live)?;
                    (live, false)
                }
                other => return Ok(other?),
            }
        }
    };
    let desired_value = to_value(desired)?;
    let mut comparable = desired.clone();
    if trimmed {
        cache.prepare(&mut comparable);
    }
    let (mut existing, comparable) = (to_value(&existing)?, to_value(&comparable)?);
    let spec = |v: &Value| v.get("spec").cloned().unwrap_or(Value::Null);
    let cached_spec_patch = diff::merge_patch(&spec(&existing), &spec(&comparable));
    let mut comparable = &comparable;
    if trimmed && diff::digest_over_object(&cached_spec_patch, &spec(&desired_value)) {
        // A changed object behind a cached digest: its keys to remove are only in the live
        // object (a rare read: only such a change of a child's spec needs it).
        existing = to_value(&api.get(&name).await?)?;
        comparable = &desired_value;
    }
    let patch = diff::update_patch(&existing, comparable, &desired_value);
    Ok(api
        .patch(&name, &patch_params(), &Patch::Merge(&patch))
        .await?)
}

/// Server-side applies `status` as the whole status of `obj`, a namespaced custom resource
/// (field manager `names::FIELD_MANAGER`, forced: fields this operator set before and `status`
/// omits are removed), and keeps the object as written in `cache`. Errors: the API server's
/// (e.g. the object is gone), or [`Error::MissingMetadata`] for an object without a namespace.
pub async fn apply_status<K, S, B: Backing<K>>(
    client: &kube::Client,
    cache: &cache::Cache<K, B>,
    obj: &K,
    status: &S,
) -> Result<()>
where
    K: Child + Resource<Scope = NamespaceResourceScope>,
    S: Serialize,
{
    let name = obj.name_any();
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(name.clone()))?;
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch_status(&name, &params, &Patch::Apply(&body))
        .await?;
    cache.remember(written);
    Ok(())
}

/// Fails with [`Error::NotOwned`] unless `live` (an object of `desired`'s name) is controlled
/// by the controller owner of `desired`. Children without a controller owner (Workspaces,
/// which are cluster-scoped) pass: their ownership is checked by their own labels.
pub fn check_owner<K: Resource<DynamicType = ()>>(desired: &K, live: &K) -> Result<()> {
    let controller = |obj: &K| {
        obj.owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .cloned()
    };
    let Some(ours) = controller(desired) else {
        return Ok(());
    };
    let theirs = controller(live);
    if theirs.as_ref().is_some_and(|o| o.uid == ours.uid) {
        return Ok(());
    }
    let holder = match theirs {
        Some(o) => format!("controlled by {} {}", o.kind, o.name),
        None => "it has no controller owner".to_string(),
    };
    Err(Error::NotOwned {
        kind: K::kind(&()).to_string(),
        name: live.name_any(),
        holder,
    })
}

/// Parameters of every merge patch this operator sends: its field manager, so that
/// `managedFields` names it instead of an unnamed manager.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Whether `existing` needs no write to become `desired`, a stamped render (`diff::holds`):
/// every field of `desired` has its value in `existing`, the record of the last write among
/// them; finalizers and owner references are sets that others add to.
pub fn contains<K: Resource + Serialize>(existing: &K, desired: &K) -> bool {
    match (
        serde_json::to_value(desired),
        serde_json::to_value(existing),
    ) {
        (Ok(want), Ok(have)) => diff::holds(&have, &want),
        _ => false,
    }
}
