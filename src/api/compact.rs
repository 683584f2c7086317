//! A JSON value kept as its compact text, for values the operator stores many of and reads
//! rarely.
//!
//! A `serde_json::Value` object is a `BTreeMap` whose nodes take about 600 bytes even for one
//! entry, so a fargate profile's `terraformVariables` (selectors, their labels, tags) took
//! 3.5 KB of heap as `Value`s against about 0.4 KB of JSON, more than a third of a cached
//! WorkspaceTemplateApply (9.3 KB; `examples/bench.rs`'s per-kind table has the totals).
//! `serde_json::value::RawValue` keeps text too, but serializes as itself only into serde_json
//! (into YAML it becomes a map holding a string, so `capt-fargate render` printed that), and it
//! neither compares by value nor decodes from YAML: this type serializes and deserializes
//! through `Value`, which costs a transient tree per write, comparison or hash.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON value (any type) held as compact JSON text, keys sorted as `serde_json::Value` sorts
/// them. Serializes as the value itself, into any format; compares by value.
#[derive(Clone, PartialEq, Eq)]
pub struct CompactValue(Box<str>);

impl CompactValue {
    /// The value, decoded (allocates a `Value` tree: read it where it is needed, keep this).
    pub fn to_value(&self) -> Value {
        // The text was written by serde_json from a `Value`, so it always decodes.
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The compact JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// `map` with each value kept compact (for rendering `terraformVariables`).
pub fn compact_values(map: BTreeMap<String, Value>) -> BTreeMap<String, CompactValue> {
    map.into_iter()
        .map(|(k, v)| (k, CompactValue::from(v)))
        .collect()
}

impl From<Value> for CompactValue {
    fn from(value: Value) -> Self {
        CompactValue::from(&value)
    }
}

impl From<&Value> for CompactValue {
    fn from(value: &Value) -> Self {
        // Serializing a `Value` cannot fail (its keys are strings). The text is canonical
        // (compact, keys sorted), so equal values have equal texts: `PartialEq` compares them.
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
        CompactValue(text.into_boxed_str())
    }
}

impl PartialEq<Value> for CompactValue {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl fmt::Debug for CompactValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl Serialize for CompactValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CompactValue {
    /// Decodes any value through `Value` (so from YAML too, and canonical whatever the input's
    /// key order and spacing).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(CompactValue::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_value_as_canonical_text_and_round_trips() {
        let value = json!({ "tags": { "b": "2", "a": "1" }, "n": 1.5, "list": [1, "x", null] });
        let compact: CompactValue = serde_json::from_str(
            r#"{ "n": 1.5, "list": [1, "x", null], "tags": {"b":"2","a":"1"} }"#,
        )
        .unwrap();
        assert_eq!(
            compact.as_json(),
            r#"{"list":[1,"x",null],"n":1.5,"tags":{"a":"1","b":"2"}}"#
        );
        assert_eq!(compact, value);
        assert_eq!(compact, CompactValue::from(&value));
        assert_eq!(serde_json::to_value(&compact).unwrap(), value);
        assert_eq!(serde_json::to_string(&compact).unwrap(), compact.as_json());
        assert_ne!(CompactValue::from(json!({ "n": 2 })), compact);
    }

    #[test]
    fn yaml_reads_and_writes_the_value_itself() {
        let compact = CompactValue::from(json!({ "tags": { "a": "1" }, "list": [1, "x"] }));
        let yaml = serde_saphyr::to_string(&compact).unwrap();
        assert!(!yaml.contains('{') && yaml.contains("tags:"), "{yaml}");
        let back: CompactValue = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, compact);
    }
}
