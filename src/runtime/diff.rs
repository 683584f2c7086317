//! Deciding whether a write is needed, and what it writes.
//!
//! Writes are JSON merge patches (RFC 7386) at the resourceVersion read ([`update_patch`]): a
//! key sent as null is removed, so a patch can make the spec exactly the rendered one. That
//! alone is not enough to decide *whether* to write: the API server fills in defaults, so an
//! object we wrote reads back as a superset of what we sent, and comparing field by field (the
//! earlier subset check) cannot tell a server default from a field we stopped setting; a
//! change that only removed something was never written. Kubernetes has two answers, and
//! neither fits here:
//! - server-side apply tracks every field's owner in `managedFields` and removes what a
//!   manager stops applying, but costs the API server more per write than a merge patch
//!   (`examples/request_costs.rs`), and comparing against it would mean caching
//!   `managedFields`, often the larger part of an object;
//! - client-side apply (`kubectl apply`) keeps a copy of the whole last-applied object in an
//!   annotation and diffs three ways, which doubles the size of every child.
//!
//! So every child carries a small record of the operator's last write instead
//! ([`Applied`], annotation `names::ANNOTATION_APPLIED`): a digest of the object as rendered,
//! and the keys of the labels and annotations it set. A render that differs in any way,
//! removals included, has another digest, so [`holds`] sees it; defaults the API server adds
//! do not change the digest, so they cause no write, neither at steady state nor after a
//! restart (the record lives on the object). [`holds`] also compares every rendered field
//! with the object, so a value changed or removed by hand is restored. A key added by hand
//! to the spec cannot be told from a default without the CRD's schema; it stays until the
//! operator's next write of that child, which makes the spec exactly the rendered one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::ANNOTATION_APPLIED;

/// The operator's last write to a child, kept on it as annotation `names::ANNOTATION_APPLIED`
/// (JSON, about 100 to 300 bytes).
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// First 16 hex digits of the SHA-256 of the rendered object's JSON (keys sorted),
    /// without this annotation.
    pub digest: String,
    /// Keys of the labels the operator set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Keys of the annotations the operator set, this one excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
}

impl Applied {
    /// The record of `object`'s metadata, if it has a readable one. A child written before
    /// the record existed has none: then no label of it is known to be the operator's.
    pub fn of(object: &Value) -> Option<Applied> {
        let text = object
            .get("metadata")?
            .get("annotations")?
            .get(ANNOTATION_APPLIED)?
            .as_str()?;
        serde_json::from_str(text).ok()
    }
}

/// Hex digits of [`Applied::digest`]: 64 bits, so two renders of one child never share one
/// by chance.
const DIGEST_LEN: usize = 16;

/// Sets the applied annotation of `desired`, a rendered object, replacing any it has (so
/// stamping twice gives the same object).
pub fn stamp(desired: &mut Value) {
    let Some(object) = desired.as_object_mut() else {
        return;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    // The digest covers the object as it would be without the annotation.
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.remove(ANNOTATION_APPLIED);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    let keys = |key: &str| -> Vec<String> {
        match metadata.get(key) {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let (labels, annotations) = (keys("labels"), keys("annotations"));
    let digest = digest(desired);
    let applied = Applied {
        digest,
        labels,
        annotations,
    };
    let text = serde_json::to_string(&applied).unwrap_or_default();
    if let Some(metadata) = desired.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(ANNOTATION_APPLIED.into(), Value::String(text));
        }
    }
}

/// First [`DIGEST_LEN`] hex digits of the SHA-256 of `value`'s JSON (objects with sorted
/// keys, so the same value always gives the same digest).
fn digest(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    // Writing into a hasher cannot fail, nor can serializing a Value.
    let _ = serde_json::to_writer(&mut hasher, value);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..DIGEST_LEN]
        .to_string()
}

/// Whether `existing` needs no write to become `desired` (a stamped render): every field of
/// `desired` has its value in `existing` ([`is_subset`]), the applied record among them, so
/// a render that changed or removed anything does not hold; finalizers and owner references
/// are sets that others add to, so ours only need to be among them.
pub fn holds(existing: &Value, desired: &Value) -> bool {
    let (Value::Object(want), Value::Object(have)) = (desired, existing) else {
        return is_subset(desired, existing);
    };
    want.iter().all(|(key, value)| {
        let actual = have.get(key).unwrap_or(&Value::Null);
        match (key.as_str(), value, actual) {
            ("metadata", Value::Object(meta), actual) => meta.iter().all(|(key, value)| {
                let actual = actual.get(key).unwrap_or(&Value::Null);
                match key.as_str() {
                    "finalizers" | "ownerReferences" => among(value, actual),
                    _ => is_subset(value, actual),
                }
            }),
            _ => is_subset(value, actual),
        }
    })
}

/// Whether every entry of the `wanted` list is in the `actual` one.
fn among(wanted: &Value, actual: &Value) -> bool {
    let empty = Vec::new();
    let actual = actual.as_array().unwrap_or(&empty);
    wanted
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .all(|w| actual.contains(w))
}

/// Whether every field of `desired` has the same value in `actual` (objects recursively, lists
/// element by element with equal length, scalars equal).
pub fn is_subset(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => d.iter().all(|(k, v)| match a.get(k) {
            Some(av) => is_subset(v, av),
            None => v.is_null(),
        }),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(d, a)| is_subset(d, a))
        }
        (d, a) => d == a,
    }
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed and added keys, `null`
/// for keys `new` no longer has; lists and scalars are replaced whole. For fields this process
/// alone writes, it does what a server-side apply does, without the apply's YAML parse and
/// field-manager merge on the API server.
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in n {
                match o.get(key) {
                    Some(was) if was == value => {}
                    Some(was) => {
                        patch.insert(key.clone(), merge_patch(was, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// The merge patch that updates `existing` to `desired` (a stamped render), for an object
/// whose `spec` this process alone writes:
/// - `spec` becomes exactly the desired one; a key it no longer has is removed (one the API
///   server defaults comes back with its default);
/// - labels and annotations gain or change ours, and lose those the applied record of
///   `existing` names as ours that `desired` no longer has; what others added stays;
/// - owner references (by uid) and finalizers only gain ours, so what others added stays;
/// - the resourceVersion read makes a write based on a stale cache fail with a conflict.
///
/// `comparable` is `desired` trimmed as the cache trims `existing` (a module replaced by its
/// digest), so that the two compare; the values written come from `desired`.
pub fn update_patch(existing: &Value, comparable: &Value, desired: &Value) -> Value {
    let mut spec = merge_patch(
        existing.get("spec").unwrap_or(&Value::Null),
        comparable.get("spec").unwrap_or(&Value::Null),
    );
    if let Some(desired_spec) = desired.get("spec") {
        take_values(&mut spec, desired_spec);
    }
    let meta = |v: &Value, key: &str| v.get("metadata").and_then(|m| m.get(key)).cloned();
    let mut metadata = serde_json::Map::new();
    let ours = Applied::of(existing).unwrap_or_default();
    for (key, ours) in [("labels", &ours.labels), ("annotations", &ours.annotations)] {
        if let Some(entries) = changed_entries(meta(existing, key), meta(desired, key), ours) {
            metadata.insert(key.into(), entries);
        }
    }
    if let Some(refs) = merged_by_uid(
        meta(existing, "ownerReferences"),
        meta(desired, "ownerReferences"),
    ) {
        metadata.insert("ownerReferences".into(), refs);
    }
    if let Some(finalizers) = union(meta(existing, "finalizers"), meta(desired, "finalizers")) {
        metadata.insert("finalizers".into(), finalizers);
    }
    if let Some(version) = meta(existing, "resourceVersion") {
        metadata.insert("resourceVersion".into(), version);
    }
    let mut patch = serde_json::Map::new();
    patch.insert("metadata".into(), Value::Object(metadata));
    if spec.as_object().is_none_or(|s| !s.is_empty()) {
        patch.insert("spec".into(), spec);
    }
    Value::Object(patch)
}

/// Whether `patch` (a spec patch from a cached object to a trimmed desired one, before
/// [`update_patch`] takes the values from `desired`) changes a value that the cache keeps as
/// a digest (`runtime::digest`) into an object of `desired`. A merge patch merges objects key
/// by key, so keys that the cached digest hides would stay: such a patch must be computed from
/// the live object.
pub fn digest_over_object(patch: &Value, desired: &Value) -> bool {
    let Value::Object(entries) = patch else {
        return false;
    };
    entries.iter().any(|(key, value)| {
        let wanted = desired.get(key).unwrap_or(&Value::Null);
        match value {
            Value::String(s) => s.starts_with(super::digest::PREFIX) && wanted.is_object(),
            Value::Object(_) => digest_over_object(value, wanted),
            _ => false,
        }
    })
}

/// Replaces every value of `patch` but its nulls with the value at the same place in `source`.
fn take_values(patch: &mut Value, source: &Value) {
    let Value::Object(entries) = patch else {
        *patch = source.clone();
        return;
    };
    for (key, value) in entries.iter_mut().filter(|(_, v)| !v.is_null()) {
        match source.get(key) {
            Some(from) if value.is_object() && from.is_object() => take_values(value, from),
            Some(from) => *value = from.clone(),
            None => {}
        }
    }
}

/// The entries of the `desired` map whose value `existing` lacks, and a null for each key of
/// `ours` (set by an earlier write) that `existing` has and `desired` no longer has; None if
/// there are none.
fn changed_entries(
    existing: Option<Value>,
    desired: Option<Value>,
    ours: &[String],
) -> Option<Value> {
    let desired = match desired {
        Some(Value::Object(desired)) => desired,
        _ => serde_json::Map::new(),
    };
    let has = |k: &str| existing.as_ref().and_then(|e| e.get(k)).is_some();
    let dropped: Vec<(String, Value)> = ours
        .iter()
        .filter(|k| !desired.contains_key(k.as_str()) && has(k.as_str()))
        .map(|k| (k.clone(), Value::Null))
        .collect();
    let mut changed: serde_json::Map<_, _> = desired
        .into_iter()
        .filter(|(k, v)| existing.as_ref().and_then(|e| e.get(k)) != Some(v))
        .collect();
    changed.extend(dropped);
    (!changed.is_empty()).then_some(Value::Object(changed))
}

/// `existing`'s list with the `desired` entries put in by uid; None if it holds them already.
fn merged_by_uid(existing: Option<Value>, desired: Option<Value>) -> Option<Value> {
    let (mut list, desired) = lists(existing, desired)?;
    if desired.iter().all(|d| list.contains(d)) {
        return None;
    }
    for want in desired {
        let uid = want.get("uid").cloned();
        list.retain(|have| have.get("uid").cloned() != uid);
        list.push(want);
    }
    Some(Value::Array(list))
}

/// `existing`'s list plus the `desired` entries it lacks; None if it lacks none.
fn union(existing: Option<Value>, desired: Option<Value>) -> Option<Value> {
    let (mut list, desired) = lists(existing, desired)?;
    let missing: Vec<Value> = desired.into_iter().filter(|d| !list.contains(d)).collect();
    if missing.is_empty() {
        return None;
    }
    list.extend(missing);
    Some(Value::Array(list))
}

/// The existing and desired lists (existing empty if absent); None without a desired list.
fn lists(existing: Option<Value>, desired: Option<Value>) -> Option<(Vec<Value>, Vec<Value>)> {
    let Some(Value::Array(desired)) = desired else {
        return None;
    };
    let existing = match existing {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    Some((existing, desired))
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
