//! Hand-written schema fragments for fields whose Rust type has no structural schema.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose values are arbitrary JSON (Terraform variables).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
