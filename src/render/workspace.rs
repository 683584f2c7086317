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
        varmap.extend(typed.iter().map(|(k, v)| (k.clone(), v.clone())));
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
mod tests {
    use super::*;
    use crate::api::WorkspaceTemplateApplySpec;
    use serde_json::json;

    fn template(spec: Value) -> WorkspaceTemplate {
        serde_json::from_value(json!({
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
            "kind": "WorkspaceTemplate",
            "metadata": { "name": "t", "namespace": "ns" },
            "spec": { "template": { "spec": spec } }
        }))
        .unwrap()
    }

    fn apply(variables: &[(&str, &str)], typed: Option<Value>) -> WorkspaceTemplateApply {
        let mut a = WorkspaceTemplateApply::new(
            "a",
            WorkspaceTemplateApplySpec {
                variables: Some(
                    variables
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                terraform_variables: typed.map(|t| serde_json::from_value(t).unwrap()),
                ..Default::default()
            },
        );
        a.metadata.namespace = Some("ns".into());
        a
    }

    fn base() -> Value {
        json!({
            "forProvider": {
                "source": "Inline",
                "module": "variable \"x\" {}\noutput \"o\" { value = [for s in var.l : \"${s}-${var.x}\"] }",
                "vars": [{ "key": "cluster_name", "value": "${cluster_name}" }],
                "varmap": { "fixed": 1, "tags": { "a": "template" } },
                "varFiles": [{ "source": "SecretKey", "secretKeyRef": { "namespace": "${ns}", "name": "${WORKSPACE_NAME}-vpc", "key": "vpc_config" } }],
                "env": [{ "name": "TF_LOG", "value": "INFO" }]
            },
            "providerConfigRef": { "name": "aws" },
            "managementPolicies": ["*"]
        })
    }

    #[test]
    fn substitutes_inside_strings_and_keeps_unknown_fields() {
        let spec = render(
            &apply(&[("cluster_name", "demo"), ("ns", "team-a")], None),
            &template(base()),
            "ws-1",
        )
        .unwrap();
        let fp = &spec.for_provider;
        assert_eq!(fp.vars.as_ref().unwrap()[0].value, "demo");
        let key = fp.var_files.as_ref().unwrap()[0]
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (key.namespace.as_str(), key.name.as_str()),
            ("team-a", "ws-1-vpc")
        );
        // Terraform's own interpolations in the module are untouched.
        assert!(fp.module.contains("\"${s}-${var.x}\""));
        assert_eq!(
            fp.extra["env"],
            json!([{ "name": "TF_LOG", "value": "INFO" }])
        );
        assert_eq!(spec.extra["managementPolicies"], json!(["*"]));
    }

    #[test]
    fn a_control_planes_workspaces_always_destroy() {
        let mut orphaning = base();
        orphaning["deletionPolicy"] = json!("Orphan");
        let vars = &[("cluster_name", "demo"), ("ns", "team-a")];
        let mut owned = apply(vars, None);
        owned.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "controlplane.cluster.x-k8s.io/v1beta1".into(),
                kind: "CAPTControlPlane".into(),
                name: "demo".into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        let spec = render(&owned, &template(orphaning.clone()), "ws").unwrap();
        assert_eq!(spec.deletion_policy.as_deref(), Some("Delete"));
        // Unset stays unset: the API server defaults it to Delete.
        let spec = render(&owned, &template(base()), "ws").unwrap();
        assert_eq!(spec.deletion_policy, None);
        // A user's own apply keeps what its template says.
        let spec = render(&apply(vars, None), &template(orphaning), "ws").unwrap();
        assert_eq!(spec.deletion_policy.as_deref(), Some("Orphan"));
    }

    #[test]
    fn values_with_quotes_cannot_change_the_structure() {
        let hostile = r#"x", "injected": "y"#;
        let spec = render(
            &apply(&[("cluster_name", hostile), ("ns", "n")], None),
            &template(base()),
            "w",
        )
        .unwrap();
        assert_eq!(spec.for_provider.vars.unwrap()[0].value, hostile);
        assert!(!spec.extra.contains_key("injected"));
    }

    #[test]
    fn unset_placeholders_outside_the_module_are_reported() {
        let err = render(
            &apply(&[("cluster_name", "demo")], None),
            &template(base()),
            "w",
        )
        .unwrap_err();
        assert_eq!(err, RenderError::UnsetVariables(vec!["ns".into()]));
        assert!(err.to_string().contains("spec.variables"));
    }

    #[test]
    fn typed_variables_override_the_template_varmap_and_the_secret_ref_is_overridden() {
        let mut a = apply(
            &[("cluster_name", "c"), ("ns", "n")],
            Some(json!({ "tags": { "b": "apply" }, "selectors": [{ "namespace": "x" }] })),
        );
        a.spec.write_connection_secret_to_ref = Some(crate::api::XpSecretReference {
            name: "out".into(),
            namespace: "n".into(),
        });
        let spec = render(&a, &template(base()), "w").unwrap();
        let varmap = spec.for_provider.varmap.unwrap();
        assert_eq!(varmap["fixed"], json!(1));
        assert_eq!(varmap["tags"], json!({ "b": "apply" }));
        assert_eq!(varmap["selectors"], json!([{ "namespace": "x" }]));
        assert_eq!(spec.write_connection_secret_to_ref.unwrap().name, "out");
    }

    #[test]
    fn the_object_is_tied_to_its_apply_and_carries_the_providers_finalizer() {
        let mut a = apply(&[], None);
        a.metadata.uid = Some("u-1".into());
        let ws = object(&a, "ws-1", WorkspaceSpec::default());
        assert_eq!(ws.metadata.name.as_deref(), Some("ws-1"));
        assert_eq!(
            ws.annotations()
                .get(names::ANNOTATION_APPLY)
                .map(String::as_str),
            Some(format!("{}/{}", a.namespace().unwrap(), a.name_any()).as_str())
        );
        assert_eq!(
            ws.labels().get(names::LABEL_APPLY_UID).map(String::as_str),
            Some("u-1")
        );
        assert_eq!(ws.finalizers(), ["finalizer.managedresource.crossplane.io"]);
        assert!(ws.status.is_none());
    }

    #[test]
    fn substitution_edge_cases() {
        let vars = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let mut unset = BTreeSet::new();
        assert_eq!(substitute("${a}${a}-${b", &vars, &mut unset), "11-${b");
        assert_eq!(substitute("$${a} ${x.y}", &vars, &mut unset), "$1 ${x.y}");
        assert!(unset.is_empty());
    }
}
