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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
