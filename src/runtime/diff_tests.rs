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

/// A small deterministic generator (xorshift64*), enough for the property test below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Keys of the spec: the operator's and the server's defaults share them, as
/// `deletionPolicy` is defaulted when a template does not set it.
const SPEC_KEYS: &[&str] = &["a", "b", "c", "d", "e"];
/// Label and annotation keys the operator sets, and those others set.
const OUR_KEYS: &[&str] = &["ours/x", "ours/y", "ours/z"];
const THEIR_KEYS: &[&str] = &["theirs/p", "theirs/q"];

/// A random JSON value without nulls (rendered objects have none).
fn value(rng: &mut Rng, depth: u32) -> Value {
    match if depth == 0 {
        rng.below(3)
    } else {
        rng.below(5)
    } {
        0 => json!(rng.pick(&["s", "t", "u"])),
        1 => json!(rng.below(3)),
        2 => json!(rng.chance(50)),
        3 => {
            let n = rng.below(3);
            Value::Array((0..n).map(|_| value(rng, depth - 1)).collect())
        }
        _ => object(rng, depth - 1),
    }
}

fn object(rng: &mut Rng, depth: u32) -> Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.below(4) {
        map.insert(rng.pick(SPEC_KEYS).into(), value(rng, depth));
    }
    Value::Object(map)
}

fn string_map(rng: &mut Rng, keys: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for key in keys {
        if rng.chance(60) {
            map.insert((*key).into(), json!(rng.pick(&["1", "2", "3"])));
        }
    }
    Value::Object(map)
}

/// A rendered child, before stamping.
fn rendered(rng: &mut Rng) -> Value {
    json!({
        "metadata": {
            "name": "child",
            "labels": string_map(rng, OUR_KEYS),
            "annotations": string_map(rng, OUR_KEYS),
            "ownerReferences": [{ "uid": "u1", "name": "cp", "controller": true }],
            "finalizers": ["ours"]
        },
        "spec": object(rng, 3),
    })
}

/// `rendered` changed a little: a key removed, added or changed, in the spec or metadata.
fn changed(rng: &mut Rng, rendered: &Value) -> Value {
    let mut out = rendered.clone();
    for _ in 0..=rng.below(3) {
        match rng.below(4) {
            0 => mutate(rng, &mut out["spec"], 3),
            1 => mutate_map(rng, &mut out["metadata"]["labels"]),
            2 => mutate_map(rng, &mut out["metadata"]["annotations"]),
            _ => out["spec"] = object(rng, 3),
        }
    }
    out
}

fn mutate(rng: &mut Rng, target: &mut Value, depth: u32) {
    let Value::Object(map) = target else {
        *target = value(rng, depth);
        return;
    };
    let key = rng.pick(SPEC_KEYS).to_string();
    match (rng.below(3), map.get_mut(&key)) {
        (0, Some(_)) => {
            map.remove(&key);
        }
        (1, Some(inner)) if depth > 0 => mutate(rng, inner, depth - 1),
        _ => {
            map.insert(key, value(rng, depth));
        }
    }
}

fn mutate_map(rng: &mut Rng, map: &mut Value) {
    let key = rng.pick(OUR_KEYS);
    let map = map.as_object_mut().unwrap();
    if map.remove(key).is_none() || rng.chance(50) {
        map.insert(key.into(), json!(rng.pick(&["1", "2", "4"])));
    }
}

/// What the API server adds: a default for some keys absent from an object, at any depth
/// (inside list items too).
fn add_defaults(rng: &mut Rng, target: &mut Value) {
    match target {
        Value::Object(map) => {
            for item in map.values_mut() {
                add_defaults(rng, item);
            }
            if rng.chance(30) {
                let key = rng.pick(SPEC_KEYS);
                if !map.contains_key(key) {
                    map.insert(key.into(), json!("default"));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| add_defaults(rng, i)),
        _ => {}
    }
}

/// A change by hand to a value the operator set (never a no-op): a label or a spec key,
/// removed or edited; false if there is none.
fn drift(rng: &mut Rng, existing: &mut Value, written: &Value) -> bool {
    let (at, edited) = if rng.chance(50) {
        ("/metadata/labels", json!("edited"))
    } else {
        ("/spec", json!("edited by hand"))
    };
    let ours: Vec<String> = written
        .pointer(at)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if ours.is_empty() {
        return false;
    }
    let key = &ours[rng.below(ours.len())];
    let map = existing.pointer_mut(at).unwrap().as_object_mut().unwrap();
    if rng.chance(50) {
        map.remove(key);
    } else {
        map.insert(key.clone(), edited);
    }
    true
}

fn stamped(mut rendered: Value) -> Value {
    stamp(&mut rendered);
    rendered
}

/// The entries of `map` whose keys pass `keep`.
fn entries(map: &Value, keep: impl Fn(&str) -> bool) -> serde_json::Map<String, Value> {
    map.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn writes_make_owned_fields_exactly_desired_keep_others_and_happen_iff_owned_fields_differ() {
    for case in 0..3000u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ case.wrapping_mul(0x1000_0001));
        // The child as the operator last wrote it (or an operator that kept no record),
        // as the API server stores it, with what others added, maybe edited by hand.
        let before = rendered(&mut rng);
        let legacy = rng.chance(10);
        let written = if legacy {
            before.clone()
        } else {
            stamped(before.clone())
        };
        let mut existing = written.clone();
        existing["metadata"]["resourceVersion"] = json!("7");
        add_defaults(&mut rng, &mut existing["spec"]);
        for (key, list) in [("labels", THEIR_KEYS), ("annotations", THEIR_KEYS)] {
            let theirs = string_map(&mut rng, list);
            let map = existing["metadata"][key].as_object_mut().unwrap();
            map.extend(theirs.as_object().unwrap().clone());
        }
        if rng.chance(50) {
            existing["metadata"]["finalizers"] = json!(["theirs", "ours"]);
            existing["metadata"]["ownerReferences"] = json!([
                { "uid": "u9", "name": "user" },
                { "uid": "u1", "name": "cp", "controller": true }
            ]);
        }
        let drifted = rng.chance(20) && drift(&mut rng, &mut existing, &written);
        // What the operator renders now.
        let now = if rng.chance(50) {
            before.clone()
        } else {
            changed(&mut rng, &before)
        };
        let desired = stamped(now.clone());
        assert_eq!(
            stamped(desired.clone()),
            desired,
            "case {case}: stamping twice"
        );

        let differs = legacy || drifted || now != before;
        assert_eq!(
            holds(&existing, &desired),
            !differs,
            "case {case}: existing {existing:#}\ndesired {desired:#}"
        );

        let patched = apply(&existing, &update_patch(&existing, &desired, &desired));
        let context =
            format!("case {case}: existing {existing:#}\ndesired {desired:#}\npatched {patched:#}");
        assert_eq!(patched["spec"], desired["spec"], "{context}");
        for key in ["labels", "annotations"] {
            let mut want = entries(&desired["metadata"][key], |_| true);
            let is_theirs = |k: &str| THEIR_KEYS.contains(&k);
            want.extend(entries(&existing["metadata"][key], is_theirs));
            if legacy {
                // Without a record, a label the operator no longer sets cannot be told
                // from one someone else set: it stays.
                let dropped = |k: &str| !is_theirs(k) && desired["metadata"][key].get(k).is_none();
                want.extend(entries(&existing["metadata"][key], dropped));
            }
            assert_eq!(
                patched["metadata"][key],
                Value::Object(want),
                "{key}: {context}"
            );
        }
        for key in ["finalizers", "ownerReferences"] {
            assert_eq!(
                patched["metadata"][key], existing["metadata"][key],
                "{key}: {context}"
            );
        }
        // Once written, and defaulted again by the server, nothing is due any more.
        assert!(holds(&patched, &desired), "{context}");
        let mut defaulted = patched.clone();
        add_defaults(&mut rng, &mut defaulted["spec"]);
        assert!(holds(&defaulted, &desired), "{context}");
    }
}

#[test]
fn a_removal_alone_is_a_change_and_the_record_names_what_was_set() {
    let before = stamped(json!({
        "metadata": { "name": "eks", "labels": { "ours/x": "1" } },
        "spec": { "terraformVariables": { "fargate_profiles": { "kube-system": {}, "karpenter": {} } } }
    }));
    let after = stamped(json!({
        "metadata": { "name": "eks" },
        "spec": { "terraformVariables": { "fargate_profiles": { "kube-system": {} } } }
    }));
    // The old comparison: every field of the new render is still there.
    assert!(is_subset(&after["spec"], &before["spec"]));
    assert!(!holds(&before, &after));
    let record = Applied::of(&before).unwrap();
    assert_eq!(record.labels, ["ours/x"]);
    assert!(record.annotations.is_empty());
    assert_eq!(record.digest.len(), 16);
    let patch = update_patch(&before, &after, &after);
    assert_eq!(
        patch["spec"],
        json!({ "terraformVariables": { "fargate_profiles": { "karpenter": null } } })
    );
    assert_eq!(patch["metadata"]["labels"], json!({ "ours/x": null }));
}

#[test]
fn a_changed_object_behind_a_digest_needs_the_live_object() {
    use crate::runtime::digest;
    let desired = json!({"forProvider": {"varmap": {"tags": {"a": "1"}, "ids": ["x"], "n": "v"}}});
    let digest_of = |v: &Value| Value::String(digest::of(v));
    // The patch a cached object with digests gives, per changed value.
    let tags = json!({"forProvider": {"varmap": {"tags": digest_of(&json!({"a": "1"}))}}});
    assert!(
        digest_over_object(&tags, &desired),
        "an object: keys to remove are hidden"
    );
    let ids = json!({"forProvider": {"varmap": {"ids": digest_of(&json!(["x"]))}}});
    assert!(
        !digest_over_object(&ids, &desired),
        "a list is replaced whole"
    );
    let scalar = json!({"forProvider": {"varmap": {"n": "v"}}});
    assert!(!digest_over_object(&scalar, &desired));
    let module = json!({"forProvider": {"module": "sha256:0123"}});
    assert!(!digest_over_object(
        &module,
        &json!({"forProvider": {"module": "text"}})
    ));
    assert!(!digest_over_object(&json!({}), &desired), "nothing changed");
}
