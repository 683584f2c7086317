//! Hand-written schema fragments for fields whose Rust type has no structural schema.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose values are arbitrary JSON (Terraform variables).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Labels of a Fargate selector: at most 5 (AWS quota), keys 1-127 and values 1-255 characters.
/// Sizes are declared so that the API server can bound the cost of the CEL rule.
pub fn selector_labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "maxProperties": 5,
        "additionalProperties": { "type": "string", "minLength": 1, "maxLength": 255 },
        "x-kubernetes-validations": [{
            "rule": "self.all(k, size(k) >= 1 && size(k) <= 127)",
            "message": "label keys must be 1-127 characters"
        }]
    })
}

/// Subnet IDs of a profile.
pub fn subnet_ids(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "nullable": true,
        "minItems": 1,
        "maxItems": 16,
        "items": { "type": "string", "maxLength": 64, "pattern": "^subnet-[0-9a-f]+$" }
    })
}

/// AWS tags: at most 50, keys up to 127 characters and not starting with `aws:` in any letter
/// case (AWS reserves the prefix case-insensitively: "Tag naming limits and requirements" in
/// the AWS Tagging guide), values up to 255 characters.
pub fn aws_tags(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "maxProperties": 50,
        "additionalProperties": { "type": "string", "maxLength": 255 },
        "x-kubernetes-validations": [{
            "rule": "self.all(k, size(k) >= 1 && size(k) <= 127 && !k.lowerAscii().startsWith('aws:'))",
            "message": "tag keys must be 1-127 characters and must not start with 'aws:' in any letter case (reserved by AWS)"
        }]
    })
}
