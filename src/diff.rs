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
}
