//! Deciding whether a write is needed: the API server fills in defaults, so an object we wrote
//! reads back as a superset of what we sent. Writing only when our fields differ keeps a
//! converged system at zero writes.

use serde_json::Value;

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

/// The merge patch that updates `existing` to `desired`, for an object whose `spec` this
/// process alone writes:
/// - `spec` becomes exactly the desired one; a key it no longer has is removed (one the API
///   server defaults comes back with its default);
/// - labels, annotations, owner references (by uid) and finalizers only gain or change ours,
///   so what others added stays;
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
    for key in ["labels", "annotations"] {
        if let Some(entries) = changed_entries(meta(existing, key), meta(desired, key)) {
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

/// The entries of the `desired` map whose value `existing` lacks; None if there are none.
fn changed_entries(existing: Option<Value>, desired: Option<Value>) -> Option<Value> {
    let Some(Value::Object(desired)) = desired else {
        return None;
    };
    let changed: serde_json::Map<_, _> = desired
        .into_iter()
        .filter(|(k, v)| existing.as_ref().and_then(|e| e.get(k)) != Some(v))
        .collect();
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
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7386's algorithm, to check patches by their effect.
    fn apply(target: &Value, patch: &Value) -> Value {
        match patch {
            Value::Object(p) => {
                let mut out = target.as_object().cloned().unwrap_or_default();
                for (k, v) in p {
                    if v.is_null() {
                        out.remove(k);
                    } else {
                        let merged = apply(out.get(k).unwrap_or(&Value::Null), v);
                        out.insert(k.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    #[test]
    fn merge_patch_turns_old_into_new() {
        let old = json!({ "applied": true, "name": "ws", "conditions": [{ "type": "Ready" }], "nested": { "a": 1, "b": 2 } });
        let new = json!({ "name": "ws2", "conditions": [], "nested": { "a": 1, "c": 3 }, "added": { "x": [1] } });
        let patch = merge_patch(&old, &new);
        assert_eq!(
            patch,
            json!({ "applied": null, "name": "ws2", "conditions": [], "nested": { "b": null, "c": 3 }, "added": { "x": [1] } })
        );
        assert_eq!(apply(&old, &patch), new);
        assert_eq!(merge_patch(&new, &new), json!({}));
        assert_eq!(apply(&Value::Null, &merge_patch(&Value::Null, &new)), new);
    }

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_a_difference() {
        let desired = json!({ "a": 1, "list": [{ "k": "v" }], "nested": { "x": true } });
        let actual = json!({ "a": 1, "list": [{ "k": "v", "format": "HCL" }], "nested": { "x": true, "y": 2 }, "extra": [] });
        assert!(is_subset(&desired, &actual));
    }

    #[test]
    fn changed_removed_or_reordered_values_count() {
        let actual = json!({ "a": 1, "list": [1, 2] });
        assert!(!is_subset(&json!({ "a": 2 }), &actual));
        assert!(!is_subset(&json!({ "b": 1 }), &actual));
        assert!(!is_subset(&json!({ "list": [2, 1] }), &actual));
        assert!(!is_subset(&json!({ "list": [1] }), &actual));
        assert!(is_subset(&json!({ "b": null }), &actual));
    }

    #[test]
    fn update_patch_makes_the_spec_desired_and_keeps_what_others_added() {
        let existing = json!({
            "metadata": {
                "resourceVersion": "7",
                "labels": { "ours": "old", "theirs": "x" },
                "annotations": { "external-name": "ws" },
                "ownerReferences": [{ "uid": "u1", "name": "cp", "controller": true }, { "uid": "u9", "name": "user" }],
                "finalizers": ["theirs"]
            },
            "spec": { "module": "sha256:aaa", "vars": { "tags": { "a": "1", "gone": "2" } }, "defaulted": "Delete" }
        });
        let desired = json!({
            "metadata": {
                "labels": { "ours": "new" },
                "ownerReferences": [{ "uid": "u1", "name": "cp", "controller": true }],
                "finalizers": ["ours"]
            },
            "spec": { "module": "resource \"x\" {}", "vars": { "tags": { "a": "1" } } }
        });
        let mut comparable = desired.clone();
        comparable["spec"]["module"] = json!("sha256:bbb");
        let patch = update_patch(&existing, &comparable, &desired);
        assert_eq!(
            patch,
            json!({
                "metadata": { "resourceVersion": "7", "labels": { "ours": "new" }, "finalizers": ["theirs", "ours"] },
                "spec": { "module": "resource \"x\" {}", "vars": { "tags": { "gone": null } }, "defaulted": null }
            })
        );
        let updated = apply(&existing, &patch);
        assert_eq!(updated["spec"], desired["spec"]);
        assert_eq!(
            updated["metadata"]["labels"],
            json!({ "ours": "new", "theirs": "x" })
        );
        assert_eq!(
            updated["metadata"]["annotations"],
            existing["metadata"]["annotations"]
        );
        assert_eq!(
            updated["metadata"]["ownerReferences"],
            existing["metadata"]["ownerReferences"]
        );
    }

    #[test]
    fn update_patch_puts_in_a_changed_owner_and_leaves_an_unchanged_module_out() {
        let existing = json!({
            "metadata": { "resourceVersion": "3", "ownerReferences": [{ "uid": "u9", "name": "user" }, { "uid": "u1", "name": "old" }] },
            "spec": { "module": "sha256:same", "n": 1 }
        });
        let desired = json!({ "metadata": { "ownerReferences": [{ "uid": "u1", "name": "cp" }] }, "spec": { "module": "text", "n": 2 } });
        let mut comparable = desired.clone();
        comparable["spec"]["module"] = json!("sha256:same");
        let patch = update_patch(&existing, &comparable, &desired);
        assert_eq!(
            patch,
            json!({
                "metadata": { "resourceVersion": "3", "ownerReferences": [{ "uid": "u9", "name": "user" }, { "uid": "u1", "name": "cp" }] },
                "spec": { "n": 2 }
            })
        );
        // Nothing to change but the version check.
        let same = update_patch(&existing, &existing, &existing);
        assert_eq!(same, json!({ "metadata": { "resourceVersion": "3" } }));
    }
}
