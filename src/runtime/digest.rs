//! Digests that stand in for values a cache only compares: a cached object keeps the digest,
//! a desired object is trimmed the same way before the comparison (`Cache::prepare`), and the
//! write path reads the live object when a change hides behind one (`diff::digest_over_object`).

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of a digest that replaced a value (not a value this operator renders).
pub const PREFIX: &str = "sha256:";

/// Replaces every list or object value of `map` by its digest ([`of`]): a map node or list
/// per value (a `serde_json` object costs at least about 600 bytes, however few its entries)
/// becomes one short string. Scalars stay: they cost no more than their digest.
pub fn containers(map: &mut BTreeMap<String, Value>) {
    for value in map.values_mut() {
        if value.is_object() || value.is_array() {
            *value = Value::String(of(value));
        }
    }
}

/// [`PREFIX`] and the first 16 hex digits of the SHA-256 of `value` in a canonical form:
/// object keys in order, and an entry whose value is null left out, as the comparison
/// (`diff::is_subset`) takes a null for an absent key.
pub fn of(value: &Value) -> String {
    let mut hasher = Sha256::new();
    feed(value, &mut hasher);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(PREFIX.len() + 16);
    out.push_str(PREFIX);
    for byte in &digest[..8] {
        use std::fmt::Write;
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn feed(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            hasher.update(b"{");
            for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                feed(&Value::String(key.clone()), hasher);
                hasher.update(b":");
                feed(value, hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                feed(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        // Scalars as JSON (a string quoted and escaped), so no two values share a form.
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_become_digests_that_change_with_any_value() {
        let mut map: BTreeMap<String, Value> = serde_json::from_value(json!({
            "name": "a",
            "tags": {"team": "x", "env": "prod"},
            "selectors": [{"namespace": "ns", "labels": {}}],
        }))
        .unwrap();
        let before = map.clone();
        containers(&mut map);
        assert_eq!(map["name"], "a", "scalars stay");
        for key in ["tags", "selectors"] {
            let digest = map[key].as_str().unwrap();
            assert!(digest.starts_with(PREFIX) && digest.len() == PREFIX.len() + 16);
            assert_eq!(digest, of(&before[key]));
        }
        // Key order and null entries do not matter; a removed, added or changed value does.
        let same = json!({"env": "prod", "team": "x", "gone": null});
        assert_eq!(of(&same), of(&before["tags"]));
        for other in [
            json!({"team": "x"}),
            json!({"team": "x", "env": "prod", "new": "y"}),
            json!({"team": "y", "env": "prod"}),
            json!({"team": "x", "env": ["prod"]}),
            json!([{"team": "x", "env": "prod"}]),
        ] {
            assert_ne!(of(&other), of(&before["tags"]), "{other}");
        }
        // A string with the characters of a container is no container.
        assert_ne!(of(&json!("[]")), of(&json!([])));
    }
}
