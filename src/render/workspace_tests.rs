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
