//! WorkspaceTemplate + WorkspaceTemplateApply → provider-terraform Workspace spec.
//!
//! Unlike CAPT, which replaces `${key}` in the JSON text of the template (so a quote in a value
//! breaks or rewrites the document), placeholders are replaced inside string values only, in a
//! fixed order, and typed values travel in `varmap`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use kube::ResourceExt;
use kube::api::ObjectMeta;

use crate::api::workspace::WorkspaceSpec;
use crate::api::{Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use crate::names;

/// Built-in placeholder: the name of the Workspace being created.
pub const WORKSPACE_NAME: &str = "WORKSPACE_NAME";

/// Why a template could not be turned into a Workspace.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// Placeholders that no variable sets.
    #[error("template references variables the WorkspaceTemplateApply does not set: {}; add them to spec.variables", .0.join(", "))]
    UnsetVariables(Vec<String>),
    /// The substituted template is not a valid Workspace spec.
    #[error(
        "template does not produce a valid Workspace spec: {0}; fix spec.template.spec of the WorkspaceTemplate"
    )]
    InvalidSpec(String),
}

/// Replaces each `${name}` whose name is in `vars`; collects the names of simple placeholders
/// (`${identifier}`) that are not set.
fn substitute(text: &str, vars: &BTreeMap<String, String>, unset: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                if let Some(value) = vars.get(name) {
                    out.push_str(value);
                } else {
                    if is_identifier(name) {
                        unset.insert(name.to_string());
                    }
                    out.push_str(&rest[start..start + 2 + end + 1]);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Walks a JSON value and substitutes inside every string. `module_text` marks the inline
/// module, where unset `${...}` are Terraform's own (for-expressions use bare names).
fn walk(
    value: &mut Value,
    vars: &BTreeMap<String, String>,
    unset: &mut BTreeSet<String>,
    module_text: bool,
) {
    match value {
        Value::String(s) => {
            let mut ignored = BTreeSet::new();
            let sink = if module_text {
                &mut ignored
            } else {
                &mut *unset
            };
            *s = substitute(s, vars, sink);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, vars, unset, false)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                walk(v, vars, unset, key == "module");
            }
        }
        _ => {}
    }
}

/// The Workspace spec for `apply`, built from `template`.
pub fn render(
    apply: &WorkspaceTemplateApply,
    template: &WorkspaceTemplate,
    workspace_name: &str,
) -> Result<WorkspaceSpec, RenderError> {
    let mut vars = apply.spec.variables.clone().unwrap_or_default();
    vars.insert(WORKSPACE_NAME.to_string(), workspace_name.to_string());

    let mut value = serde_json::to_value(&template.spec.template.spec)
        .map_err(|e| RenderError::InvalidSpec(e.to_string()))?;
    let mut unset = BTreeSet::new();
    walk(&mut value, &vars, &mut unset, false);
    if !unset.is_empty() {
        return Err(RenderError::UnsetVariables(unset.into_iter().collect()));
    }
    let mut spec: WorkspaceSpec =
        serde_json::from_value(value).map_err(|e| RenderError::InvalidSpec(e.to_string()))?;

    if let Some(typed) = &apply.spec.terraform_variables {
        let varmap = spec.for_provider.varmap.get_or_insert_with(BTreeMap::new);
        varmap.extend(typed.iter().map(|(k, v)| (k.clone(), v.to_value())));
    }
    if let Some(secret) = &apply.spec.write_connection_secret_to_ref {
        spec.write_connection_secret_to_ref = Some(secret.clone());
    }
    // A control plane replaces its applies (a Fargate profile's immutable settings) and
    // removes them: under `Orphan` the old profile would stay in AWS, make its replacement's
    // create fail ("already exists") and block the cluster's deletion. Its Workspaces always
    // destroy; unset, the API server defaults to `Delete`.
    let by_control_plane = apply
        .owner_references()
        .iter()
        .any(|o| o.kind == "CAPTControlPlane" && o.controller == Some(true));
    if by_control_plane && spec.deletion_policy.as_deref().is_some_and(|p| p != DELETE) {
        spec.deletion_policy = Some(DELETE.into());
    }
    Ok(spec)
}

/// crossplane-runtime's `deletionPolicy` that destroys the external resource.
const DELETE: &str = "Delete";

/// The Workspace object for `apply`: its spec, labels and annotations that tie it to the apply
/// (Workspaces are cluster-scoped, so no owner reference can), and the provider's finalizer,
/// which the provider would otherwise add with a write of its own.
pub fn object(apply: &WorkspaceTemplateApply, name: &str, spec: WorkspaceSpec) -> Workspace {
    let ns = apply.namespace().unwrap_or_default();
    Workspace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                (
                    names::LABEL_APPLY_NAMESPACE.to_string(),
                    names::label_value(&ns),
                ),
                (
                    names::LABEL_APPLY_NAME.to_string(),
                    names::label_value(&apply.name_any()),
                ),
                (
                    names::LABEL_APPLY_UID.to_string(),
                    apply.uid().unwrap_or_default(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                names::ANNOTATION_APPLY.to_string(),
                format!("{ns}/{}", apply.name_any()),
            )])),
            finalizers: Some(vec![names::PROVIDER_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

#[cfg(test)]
#[path = "workspace_tests.rs"]
mod tests;
