//! The contract between the controller and the Terraform modules it ships, checked without a
//! cluster or Terraform: every module inline in `config/workspacetemplates/*.yaml` is parsed with
//! hcl-rs, and the inputs the controller renders for the sample control plane
//! (`config/samples/captcontrolplane.yaml`, with the VPC var file of `config/samples/secrets.yaml`)
//! are compared with the `variable` blocks of the module they reach.
//!
//! How provider-terraform hands a Workspace's inputs to Terraform:
//! - `forProvider.vars` become `-var key=value`: an undeclared key fails the run
//!   ("Value for undeclared variable");
//! - `forProvider.varmap` (where `terraformVariables` end up) is written to a JSON var file:
//!   Terraform only warns about undeclared keys there, silently dropping the value the controller
//!   meant to set, so they are treated as errors as well;
//! - `forProvider.varFiles` are var files read from Secrets: the VPC module writes them, so an
//!   attribute the module does not declare is only worth a warning by Terraform. Every shipped
//!   module declares all of them, and that is asserted too.
//!
//! A declared variable without `default` that no input sets fails the run ("No value for
//! required variable").
//!
//! The modules must also run with the real providers: Terraform and every provider pinned to
//! versions that work with provider-terraform v1.0's Terraform 1.5.5; every name they build
//! within AWS's limits for the longest names admission accepts (name expressions are evaluated
//! with hcl-rs, with the few Terraform functions they use implemented here); no data source
//! that fails once the cluster is gone (Terraform reads them on destroy too); a VPC that works
//! with two availability zones; and the outputs the operator and other workspaces read present
//! as strings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, ObjectKey, TemplateExpr, TraversalOperator};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use capt_fargate::api::workspace::WorkspaceSpec;
use capt_fargate::api::{CAPTControlPlane, WorkspaceTemplate, WorkspaceTemplateApply};
use capt_fargate::names;
use capt_fargate::render;

// ---------------------------------------------------------------------------------------------
// Repository files
// ---------------------------------------------------------------------------------------------

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every shipped WorkspaceTemplate, by `metadata.name`, with the file it comes from.
fn shipped_templates() -> BTreeMap<String, (String, WorkspaceTemplate)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/workspacetemplates");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no WorkspaceTemplate in {}",
        dir.display()
    );
    let mut templates = BTreeMap::new();
    for path in files {
        let file = format!(
            "config/workspacetemplates/{}",
            path.file_name().unwrap().to_string_lossy()
        );
        let template: WorkspaceTemplate = serde_saphyr::from_str(&repo_file(&file))
            .unwrap_or_else(|e| panic!("{file} is not a valid WorkspaceTemplate: {e}"));
        let name = template
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| panic!("{file} has no metadata.name"));
        if let Some((other, _)) = templates.insert(name.clone(), (file.clone(), template)) {
            panic!("{file} and {other} both define WorkspaceTemplate {name}");
        }
    }
    templates
}

fn template<'a>(
    templates: &'a BTreeMap<String, (String, WorkspaceTemplate)>,
    name: &str,
) -> &'a (String, WorkspaceTemplate) {
    templates.get(name).unwrap_or_else(|| {
        panic!("the controller refers to WorkspaceTemplate {name}, but config/workspacetemplates ships only {:?}", templates.keys())
    })
}

/// The module text of a template, parsed.
fn module_body(file: &str, template: &WorkspaceTemplate) -> Body {
    let fp = &template.spec.template.spec.for_provider;
    assert_eq!(fp.source, "Inline", "{file}: the module is expected inline");
    assert_ne!(
        fp.inline_format.as_deref(),
        Some("JSON"),
        "{file}: the module is expected as HCL"
    );
    hcl::parse(&fp.module).unwrap_or_else(|e| {
        panic!("{file}: spec.template.spec.forProvider.module is not valid HCL: {e}")
    })
}

/// The sample control plane as the API server would return it.
fn sample_control_plane() -> CAPTControlPlane {
    let mut cp: CAPTControlPlane =
        serde_saphyr::from_str(&repo_file("config/samples/captcontrolplane.yaml"))
            .expect("config/samples/captcontrolplane.yaml is a valid CAPTControlPlane");
    cp.metadata.namespace = Some("default".into());
    cp.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    cp
}

fn sample_secrets() -> Vec<Secret> {
    serde_saphyr::from_multiple(&repo_file("config/samples/secrets.yaml"))
        .expect("config/samples/secrets.yaml holds valid Secrets")
}

/// The Workspace spec the controller writes for `apply` (see `controller::workspace_apply`).
fn render_workspace(apply: &WorkspaceTemplateApply, template: &WorkspaceTemplate) -> WorkspaceSpec {
    let apply_name = apply
        .metadata
        .name
        .clone()
        .expect("rendered apply has a name");
    let ns = apply
        .metadata
        .namespace
        .clone()
        .expect("rendered apply has a namespace");
    let ws_name = names::workspace_name(&ns, &apply_name);
    render::workspace::render(apply, template, &ws_name).unwrap_or_else(|e| {
        panic!("WorkspaceTemplateApply {apply_name} cannot be rendered with the shipped template {:?}: {e}", template.metadata.name)
    })
}

// ---------------------------------------------------------------------------------------------
// HCL helpers
// ---------------------------------------------------------------------------------------------

/// A `variable` block.
#[derive(Debug, Clone)]
struct Declaration {
    /// It has a `default` (possibly `null`), so Terraform does not require a value.
    has_default: bool,
    /// Its `type` constraint; `any` when absent.
    ty: Option<Expression>,
}

fn label_strs(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

/// Top-level blocks of a kind (`variable`, `resource`, ...).
fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == identifier)
}

/// The top-level block with exactly these labels.
fn find_block<'a>(body: &'a Body, identifier: &str, labels: &[&str]) -> Option<&'a Block> {
    body.blocks()
        .find(|b| b.identifier() == identifier && label_strs(b) == labels)
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// The variables a module declares, by name, with whether they have a default.
fn declared_variables(body: &Body) -> BTreeMap<String, Declaration> {
    let mut declared = BTreeMap::new();
    for block in blocks(body, "variable") {
        let labels = label_strs(block);
        assert_eq!(
            labels.len(),
            1,
            "a variable block has exactly one label, got {labels:?}"
        );
        let decl = Declaration {
            has_default: attribute(block.body(), "default").is_some(),
            ty: attribute(block.body(), "type").cloned(),
        };
        assert!(
            declared.insert(labels[0].to_string(), decl).is_none(),
            "variable {:?} is declared twice",
            labels[0]
        );
    }
    declared
}

/// Names of the `output` blocks of a module.
fn declared_outputs(body: &Body) -> BTreeSet<String> {
    blocks(body, "output")
        .filter_map(|b| b.labels().first().map(|l| l.as_str().to_string()))
        .collect()
}

/// `a.b.c` as `["a", "b", "c"]`; None for anything but a plain attribute traversal.
fn traversal_path(expr: &Expression) -> Option<Vec<String>> {
    match expr {
        Expression::Variable(v) => Some(vec![v.as_str().to_string()]),
        Expression::Traversal(t) => {
            let mut path = traversal_path(&t.expr)?;
            for op in &t.operators {
                match op {
                    TraversalOperator::GetAttr(ident) => path.push(ident.as_str().to_string()),
                    _ => return None,
                }
            }
            Some(path)
        }
        _ => None,
    }
}

fn object_key(key: &ObjectKey) -> String {
    match key {
        ObjectKey::Identifier(ident) => ident.as_str().to_string(),
        ObjectKey::Expression(Expression::String(s)) => s.clone(),
        ObjectKey::Expression(Expression::Variable(v)) => v.as_str().to_string(),
        other => other.to_string(),
    }
}

/// Whether `value` converts to the Terraform type constraint `ty` (primitive conversions as
/// Terraform makes them; object attributes not in the type are reported, since Terraform would
/// drop them silently). Problems are pushed to `errors` with their path.
fn check_type(ty: &Expression, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        return; // variables are nullable unless they say otherwise, and so are attributes
    }
    let mut mismatch = |what: &str| errors.push(format!("{path}: {what}, got {value}"));
    match ty {
        Expression::Variable(v) => match v.as_str() {
            "any" => {}
            "string" if value.is_string() || value.is_number() || value.is_boolean() => {}
            "number"
                if value.is_number()
                    || value.as_str().is_some_and(|s| s.parse::<f64>().is_ok()) => {}
            "bool" if value.is_boolean() || matches!(value.as_str(), Some("true" | "false")) => {}
            "string" | "number" | "bool" => mismatch(&format!("expected {}", v.as_str())),
            other => errors.push(format!("{path}: unknown type {other}")),
        },
        Expression::FuncCall(call) => {
            let name = call.name.name.as_str();
            let arg = |i: usize| call.args.get(i);
            match (name, value) {
                ("optional", _) => match arg(0) {
                    Some(inner) => check_type(inner, value, path, errors),
                    None => errors.push(format!("{path}: optional() without a type")),
                },
                ("list" | "set", Value::Array(items)) => {
                    let Some(elem) = arg(0) else {
                        return errors.push(format!("{path}: {name}() without a type"));
                    };
                    for (i, item) in items.iter().enumerate() {
                        check_type(elem, item, &format!("{path}[{i}]"), errors);
                    }
                }
                ("map", Value::Object(entries)) => {
                    let Some(elem) = arg(0) else {
                        return errors.push(format!("{path}: map() without a type"));
                    };
                    for (k, v) in entries {
                        check_type(elem, v, &format!("{path}[{k:?}]"), errors);
                    }
                }
                ("tuple", Value::Array(items)) => match arg(0) {
                    Some(Expression::Array(types)) if types.len() == items.len() => {
                        for (i, (t, item)) in types.iter().zip(items).enumerate() {
                            check_type(t, item, &format!("{path}[{i}]"), errors);
                        }
                    }
                    _ => mismatch(&format!("expected {ty}")),
                },
                ("object", Value::Object(entries)) => {
                    let Some(Expression::Object(attrs)) = arg(0) else {
                        return errors.push(format!("{path}: object() without an attribute map"));
                    };
                    let mut known = BTreeSet::new();
                    for (key, attr_ty) in attrs.iter() {
                        let key = object_key(key);
                        match entries.get(&key) {
                            Some(v) => check_type(attr_ty, v, &format!("{path}.{key}"), errors),
                            None if matches!(attr_ty, Expression::FuncCall(c) if c.name.name.as_str() == "optional") =>
                                {}
                            None => errors
                                .push(format!("{path}: required attribute {key:?} is missing")),
                        }
                        known.insert(key);
                    }
                    for key in entries.keys().filter(|k| !known.contains(*k)) {
                        errors.push(format!("{path}.{key}: attribute not in the type constraint (Terraform would drop it)"));
                    }
                }
                _ => mismatch(&format!("expected {ty}")),
            }
        }
        other => errors.push(format!("{path}: unsupported type expression {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The contract check
// ---------------------------------------------------------------------------------------------

/// What Terraform receives for one Workspace.
#[derive(Debug, Default)]
struct Inputs {
    /// `forProvider.vars`: passed as `-var key=value`.
    vars: BTreeMap<String, String>,
    /// `forProvider.varmap`: passed as a JSON var file.
    varmap: BTreeMap<String, Value>,
    /// `forProvider.varFiles`, with where each comes from and the attributes it sets.
    var_files: Vec<(String, BTreeMap<String, Value>)>,
}

/// What is wrong between a module and its inputs.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    /// Keys of `vars`/`varmap` the module does not declare (Terraform fails, or drops the value).
    undeclared: Vec<String>,
    /// Variables without default that no input sets ("No value for required variable").
    missing_required: Vec<String>,
    /// Var-file attributes the module does not declare (Terraform warns).
    undeclared_in_var_files: Vec<String>,
    /// Values that do not convert to the declared type.
    type_errors: Vec<String>,
}

impl Findings {
    /// The findings that make Terraform fail or lose a value.
    fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.undeclared.iter().map(|v| {
            format!("variable {v:?} is passed by the controller but not declared by the module")
        }));
        out.extend(
            self.missing_required
                .iter()
                .map(|v| format!("variable {v:?} has no default and no input sets it")),
        );
        out.extend(
            self.type_errors
                .iter()
                .map(|e| format!("type mismatch: {e}")),
        );
        out
    }
}

/// The Terraform inputs of a Workspace spec; var files are looked up among `secrets`.
fn inputs_of(spec: &WorkspaceSpec, secrets: &[Secret]) -> Inputs {
    let fp = &spec.for_provider;
    let mut inputs = Inputs {
        vars: BTreeMap::new(),
        varmap: fp.varmap.clone().unwrap_or_default(),
        var_files: Vec::new(),
    };
    for var in fp.vars.iter().flatten() {
        assert!(
            inputs
                .vars
                .insert(var.key.clone(), var.value.clone())
                .is_none(),
            "forProvider.vars sets {:?} twice",
            var.key
        );
    }
    for file in fp.var_files.iter().flatten() {
        assert_eq!(
            file.source, "SecretKey",
            "only Secret var files are shipped; got {file:?}"
        );
        let r = file
            .secret_key_ref
            .as_ref()
            .expect("a SecretKey var file has secretKeyRef");
        let origin = format!("Secret {}/{} key {}", r.namespace, r.name, r.key);
        let secret = secrets
            .iter()
            .find(|s| s.metadata.namespace.as_deref() == Some(&r.namespace) && s.metadata.name.as_deref() == Some(&r.name))
            .unwrap_or_else(|| panic!("the Workspace reads a var file from {origin}, which config/samples/secrets.yaml does not define"));
        let text = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(&r.key).cloned())
            .or_else(|| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|b| String::from_utf8(b.0.clone()).expect("UTF-8 var file"))
            })
            .unwrap_or_else(|| panic!("the sample {origin} does not exist"));
        let attrs: BTreeMap<String, Value> = match file.format.as_deref() {
            None | Some("HCL") => hcl::from_str(&text)
                .unwrap_or_else(|e| panic!("{origin} is not an HCL var file: {e}")),
            Some("JSON") => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{origin} is not a JSON var file: {e}")),
            Some(other) => panic!("{origin}: unknown var file format {other}"),
        };
        inputs.var_files.push((origin, attrs));
    }
    inputs
}

/// Compares a module's `variable` blocks with the inputs Terraform gets.
fn check_inputs(module: &Body, inputs: &Inputs) -> Findings {
    let declared = declared_variables(module);
    let mut findings = Findings::default();
    let string_type: Expression = Expression::Variable(hcl::Variable::unchecked("string"));

    for (key, raw) in &inputs.vars {
        let Some(decl) = declared.get(key) else {
            findings.undeclared.push(key.clone());
            continue;
        };
        // Terraform takes -var values verbatim for string (and untyped) variables and parses
        // them as HCL expressions otherwise.
        let ty = decl.ty.as_ref().unwrap_or(&string_type);
        let value = if ty == &string_type {
            Value::String(raw.clone())
        } else {
            match hcl::from_str::<BTreeMap<String, Value>>(&format!("v = {raw}")) {
                Ok(mut m) => m.remove("v").unwrap_or(Value::Null),
                Err(e) => {
                    findings.type_errors.push(format!(
                        "-var {key}={raw:?}: not an HCL expression for type {ty}: {e}"
                    ));
                    continue;
                }
            }
        };
        check_type(
            ty,
            &value,
            &format!("-var {key}"),
            &mut findings.type_errors,
        );
    }
    for (key, value) in &inputs.varmap {
        match declared.get(key) {
            None => findings.undeclared.push(key.clone()),
            Some(decl) => {
                if let Some(ty) = &decl.ty {
                    check_type(
                        ty,
                        value,
                        &format!("varmap.{key}"),
                        &mut findings.type_errors,
                    );
                }
            }
        }
    }
    for (origin, attrs) in &inputs.var_files {
        for (key, value) in attrs {
            match declared.get(key) {
                None => findings
                    .undeclared_in_var_files
                    .push(format!("{key} (from {origin})")),
                Some(decl) => {
                    if let Some(ty) = &decl.ty {
                        check_type(
                            ty,
                            value,
                            &format!("{origin}: {key}"),
                            &mut findings.type_errors,
                        );
                    }
                }
            }
        }
    }
    for (name, decl) in &declared {
        let provided = inputs.vars.contains_key(name)
            || inputs.varmap.contains_key(name)
            || inputs
                .var_files
                .iter()
                .any(|(_, attrs)| attrs.contains_key(name));
        if !decl.has_default && !provided {
            findings.missing_required.push(name.clone());
        }
    }
    findings
}

/// Asserts the module and its inputs agree; the soft var-file check is printed, then asserted,
/// since every shipped module declares what the VPC var file sets.
fn assert_contract(what: &str, module: &Body, inputs: &Inputs) {
    let findings = check_inputs(module, inputs);
    if !findings.undeclared_in_var_files.is_empty() {
        eprintln!(
            "{what}: var-file attributes the module does not declare (Terraform warns): {:?}",
            findings.undeclared_in_var_files
        );
    }
    let errors = findings.errors();
    assert!(
        errors.is_empty(),
        "{what}: the controller's inputs and the module disagree:\n  - {}\ninputs: vars {:?}, varmap keys {:?}, var files {:?}\ndeclared: {:?}",
        errors.join("\n  - "),
        inputs.vars.keys().collect::<Vec<_>>(),
        inputs.varmap.keys().collect::<Vec<_>>(),
        inputs
            .var_files
            .iter()
            .map(|(o, a)| (o, a.keys().collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
        declared_variables(module).keys().collect::<Vec<_>>(),
    );
    assert!(
        findings.undeclared_in_var_files.is_empty(),
        "{what}: the module does not declare these var-file attributes (Terraform warns on every run): {:?}",
        findings.undeclared_in_var_files
    );
}

/// Strings of a rendered Workspace spec, outside the module text, that still hold `${`.
fn unresolved_placeholders(spec: &WorkspaceSpec) -> Vec<String> {
    fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::String(s) if s.contains("${") => found.push(format!("{path} = {s:?}")),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, &format!("{path}[{i}]"), found)),
            Value::Object(map) => {
                for (k, v) in map {
                    if path == ".forProvider" && k == "module" {
                        continue; // Terraform's own interpolations
                    }
                    walk(v, &format!("{path}.{k}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(
        &serde_json::to_value(spec).expect("Workspace spec serialises"),
        "",
        &mut found,
    );
    found
}

/// What the eks-fargate-profile module must contain; problems as messages.
fn fargate_module_problems(module: &Body) -> Vec<String> {
    let mut problems = Vec::new();
    let profiles: Vec<&Block> = blocks(module, "resource")
        .filter(|b| b.labels().first().map(|l| l.as_str()) == Some("aws_eks_fargate_profile"))
        .collect();
    let Some(profile) = profiles.first() else {
        return vec!["no resource \"aws_eks_fargate_profile\"".into()];
    };
    // The role the profile's pods run with.
    let role_name = match attribute(profile.body(), "pod_execution_role_arn")
        .and_then(traversal_path)
    {
        Some(path) if path.len() == 3 && path[0] == "aws_iam_role" && path[2] == "arn" => {
            path[1].clone()
        }
        other => {
            problems.push(format!("aws_eks_fargate_profile.pod_execution_role_arn should be aws_iam_role.<name>.arn, got {other:?}"));
            String::new()
        }
    };
    match find_block(module, "resource", &["aws_iam_role", &role_name]) {
        None if !role_name.is_empty() => problems.push(format!(
            "resource aws_iam_role {role_name:?} is not defined"
        )),
        None => {}
        Some(role) => match attribute(role.body(), "assume_role_policy") {
            None => problems.push(format!(
                "aws_iam_role.{role_name} has no assume_role_policy"
            )),
            Some(expr) => {
                // Either inline (jsonencode(...)) or an aws_iam_policy_document data source.
                let text = match traversal_path(expr).as_deref() {
                    Some([data, kind, name, json]) if data == "data" && json == "json" => find_block(module, "data", &[kind, name])
                        .map(|b| hcl::format::to_string(b).expect("HCL formats"))
                        .unwrap_or_else(|| {
                            problems.push(format!("assume_role_policy refers to data.{kind}.{name}, which is not defined"));
                            String::new()
                        }),
                    _ => expr.to_string(),
                };
                for needle in ["eks-fargate-pods.amazonaws.com", "aws:SourceArn"] {
                    if !text.contains(needle) {
                        problems.push(format!("the assume role policy of aws_iam_role.{role_name} does not mention {needle}"));
                    }
                }
            }
        },
    }
    let attached = blocks(module, "resource")
        .filter(|b| {
            b.labels().first().map(|l| l.as_str()) == Some("aws_iam_role_policy_attachment")
        })
        .any(|b| {
            let policy = attribute(b.body(), "policy_arn")
                .map(|e| e.to_string())
                .unwrap_or_default();
            let role = attribute(b.body(), "role").and_then(traversal_path);
            policy.contains("AmazonEKSFargatePodExecutionRolePolicy")
                && role.is_some_and(|p| p.len() == 3 && p[0] == "aws_iam_role" && p[1] == role_name)
        });
    if !attached {
        problems.push(format!("no aws_iam_role_policy_attachment of AmazonEKSFargatePodExecutionRolePolicy to aws_iam_role.{role_name}"));
    }
    let outputs = declared_outputs(module);
    for output in ["fargate_profile_arn", "pod_execution_role_arn"] {
        if !outputs.contains(output) {
            problems.push(format!("no output {output:?}"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Rules for running the modules with the real providers
// ---------------------------------------------------------------------------------------------

/// The Terraform version in provider-terraform v1.0's image.
const PROVIDER_TERRAFORM_VERSION: [u64; 3] = [1, 5, 5];

/// A registry module the templates use, per major version: the oldest Terraform it supports
/// (its `required_version`) and the providers it uses.
struct RegistryModule {
    source: &'static str,
    major: u64,
    min_terraform: [u64; 3],
    providers: &'static [&'static str],
}

/// terraform-aws-eks v21 and terraform-aws-vpc v6 need Terraform 1.5.7 (their `versions.tf`);
/// a source or major missing here fails the pin check until it is added.
const REGISTRY_MODULES: &[RegistryModule] = &[
    RegistryModule {
        source: "terraform-aws-modules/eks/aws",
        major: 20,
        min_terraform: [1, 3, 2],
        providers: &["aws", "tls", "time"],
    },
    RegistryModule {
        source: "terraform-aws-modules/eks/aws",
        major: 21,
        min_terraform: [1, 5, 7],
        providers: &["aws", "tls", "time"],
    },
    RegistryModule {
        source: "terraform-aws-modules/vpc/aws",
        major: 5,
        min_terraform: [1, 0, 0],
        providers: &["aws"],
    },
    RegistryModule {
        source: "terraform-aws-modules/vpc/aws",
        major: 6,
        min_terraform: [1, 5, 7],
        providers: &["aws"],
    },
];

/// Output types of the registry modules' outputs that the templates pass on.
const REGISTRY_OUTPUT_TYPES: &[(&str, &str, &str)] = &[
    ("terraform-aws-modules/eks/aws", "cluster_name", "string"),
    (
        "terraform-aws-modules/eks/aws",
        "cluster_endpoint",
        "string",
    ),
    (
        "terraform-aws-modules/eks/aws",
        "cluster_certificate_authority_data",
        "string",
    ),
    (
        "terraform-aws-modules/eks/aws",
        "oidc_provider_arn",
        "string",
    ),
    ("terraform-aws-modules/eks/aws", "cluster_version", "string"),
    ("terraform-aws-modules/eks/aws", "fargate_profiles", "map"),
    ("terraform-aws-modules/vpc/aws", "vpc_id", "string"),
    ("terraform-aws-modules/vpc/aws", "private_subnets", "list"),
    ("terraform-aws-modules/vpc/aws", "public_subnets", "list"),
];

/// AWS's length limits for names set on resources: (resource type, argument, limit, source).
/// A `name_prefix` gets 26 characters appended by Terraform (`id.UniqueIDSuffixLength`).
const NAME_LIMITS: &[(&str, &str, usize, &str)] = &[
    ("aws_iam_role", "name", 64, "IAM CreateRole: RoleName"),
    ("aws_iam_role", "name_prefix", 38, "64 minus Terraform's 26"),
    (
        "aws_iam_role",
        "description",
        1000,
        "IAM CreateRole: Description",
    ),
    (
        "aws_iam_policy",
        "name",
        128,
        "IAM CreatePolicy: PolicyName",
    ),
    (
        "aws_iam_policy",
        "name_prefix",
        102,
        "128 minus Terraform's 26",
    ),
    ("aws_eks_cluster", "name", 100, "EKS CreateCluster: name"),
    (
        "aws_eks_fargate_profile",
        "fargate_profile_name",
        100,
        "EKS CreateFargateProfile",
    ),
    (
        "aws_cloudwatch_log_group",
        "name",
        512,
        "CloudWatch Logs CreateLogGroup",
    ),
];

/// `[major, minor, patch]`; missing parts are 0.
fn parse_version(text: &str) -> Option<[u64; 3]> {
    let mut parts = [0; 3];
    let mut count = 0;
    for (i, part) in text.trim().split('.').enumerate() {
        *parts.get_mut(i)? = part.parse().ok()?;
        count += 1;
    }
    (count > 0).then_some(parts)
}

/// The clauses of a Terraform version constraint as (operator, version), `~>` expanded into its
/// bounds: `~> 20.37` is `>= 20.37.0, < 21.0.0`, `~> 1.2.3` is `>= 1.2.3, < 1.3.0`.
fn constraint_clauses(constraint: &str) -> Result<Vec<(&'static str, [u64; 3])>, String> {
    let mut clauses = Vec::new();
    for clause in constraint.split(',') {
        let clause = clause.trim();
        let (op, rest) = ["~>", ">=", "<=", "!=", ">", "<", "="]
            .iter()
            .find_map(|op| clause.strip_prefix(op).map(|rest| (*op, rest)))
            .unwrap_or(("=", clause));
        let version = parse_version(rest)
            .ok_or_else(|| format!("{clause:?} in {constraint:?} is not a version constraint"))?;
        if op == "~>" {
            let parts = rest.trim().split('.').count();
            let upper = if parts >= 3 {
                [version[0], version[1] + 1, 0]
            } else {
                [version[0] + 1, 0, 0]
            };
            clauses.push((">=", version));
            clauses.push(("<", upper));
        } else {
            clauses.push((op, version));
        }
    }
    Ok(clauses)
}

fn satisfies(constraint: &str, version: [u64; 3]) -> Result<bool, String> {
    Ok(constraint_clauses(constraint)?
        .iter()
        .all(|(op, bound)| match *op {
            ">=" => version >= *bound,
            ">" => version > *bound,
            "<=" => version <= *bound,
            "<" => version < *bound,
            "!=" => version != *bound,
            _ => version == *bound,
        }))
}

/// The lowest version a constraint admits, and whether it admits nothing of the next major
/// (a pin to one major version).
fn pinned_major(constraint: &str) -> Result<u64, String> {
    let lower = constraint_clauses(constraint)?
        .iter()
        .filter(|(op, _)| matches!(*op, ">=" | "=" | ">"))
        .map(|(_, v)| *v)
        .max()
        .ok_or_else(|| format!("{constraint:?} has no lower bound"))?;
    if !satisfies(constraint, lower)? {
        return Err(format!("{constraint:?} admits no version"));
    }
    if satisfies(constraint, [lower[0] + 1, 0, 0])? {
        return Err(format!(
            "{constraint:?} admits {}.0.0, a major version nobody has checked",
            lower[0] + 1
        ));
    }
    Ok(lower[0])
}

fn string_attribute(body: &Body, key: &str) -> Option<String> {
    match attribute(body, key)? {
        Expression::String(s) => Some(s.clone()),
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) => Some(s.clone()),
            TemplateExpr::Heredoc(h) => Some(h.template.clone()),
        },
        _ => None,
    }
}

/// What is wrong with a module's version pins: `required_version` must admit the Terraform of
/// provider-terraform's image, every registry module must be pinned to a major that supports it,
/// and every provider the module or its registry modules use must be pinned to one major.
fn pin_problems(module: &Body) -> Vec<String> {
    let mut problems = Vec::new();
    let terraform: Vec<&Block> = blocks(module, "terraform").collect();
    let required_version = terraform
        .iter()
        .find_map(|b| string_attribute(b.body(), "required_version"));
    let tf = PROVIDER_TERRAFORM_VERSION;
    match &required_version {
        None => problems.push("no terraform { required_version }".into()),
        Some(c) => match satisfies(c, tf) {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "required_version {c:?} refuses Terraform {}.{}.{}",
                tf[0], tf[1], tf[2]
            )),
            Err(e) => problems.push(e),
        },
    }
    let pinned: BTreeMap<String, Option<(String, String)>> = terraform
        .iter()
        .flat_map(|b| blocks(b.body(), "required_providers"))
        .flat_map(|b| b.body().attributes())
        .map(|a| {
            let entry = match a.expr() {
                Expression::Object(o) => {
                    let get = |k: &str| {
                        o.iter()
                            .find(|(key, _)| object_key(key) == k)
                            .and_then(|(_, v)| match v {
                                Expression::String(s) => Some(s.clone()),
                                Expression::TemplateExpr(t) => Some(t.to_string()),
                                _ => None,
                            })
                    };
                    get("source").zip(get("version"))
                }
                _ => None,
            };
            (a.key().to_string(), entry)
        })
        .collect();

    let mut used: BTreeSet<String> = ["resource", "data"]
        .iter()
        .flat_map(|kind| blocks(module, kind))
        .filter_map(|b| b.labels().first())
        .filter_map(|l| l.as_str().split('_').next().map(str::to_string))
        .collect();
    for block in blocks(module, "module") {
        let label = label_strs(block).join(".");
        let source = string_attribute(block.body(), "source").unwrap_or_default();
        let Some(version) = string_attribute(block.body(), "version") else {
            problems.push(format!("module {label:?} ({source}) has no version"));
            continue;
        };
        let major = match pinned_major(&version) {
            Ok(major) => major,
            Err(e) => {
                problems.push(format!("module {label:?} ({source}): {e}"));
                continue;
            }
        };
        match REGISTRY_MODULES
            .iter()
            .find(|m| m.source == source && m.major == major)
        {
            None => problems.push(format!(
                "module {label:?}: {source} v{major} is not in REGISTRY_MODULES (its Terraform requirement is unchecked)"
            )),
            Some(m) => {
                if m.min_terraform > tf {
                    problems.push(format!(
                        "module {label:?}: {source} v{major} needs Terraform {:?}, provider-terraform runs {tf:?}",
                        m.min_terraform
                    ));
                }
                used.extend(m.providers.iter().map(|p| p.to_string()));
            }
        }
    }
    for provider in used {
        match pinned.get(&provider) {
            None => problems.push(format!(
                "provider {provider:?} is used but not in terraform {{ required_providers }}"
            )),
            Some(None) => problems.push(format!(
                "required_providers.{provider} needs a source and a version"
            )),
            Some(Some((source, version))) => {
                if source != &format!("hashicorp/{provider}") {
                    problems.push(format!("required_providers.{provider}: source {source:?}"));
                }
                if let Err(e) = pinned_major(version) {
                    problems.push(format!("required_providers.{provider}: {e}"));
                }
            }
        }
    }
    problems
}

// Terraform functions the modules' name expressions use, as Terraform defines them.

fn tf_str(v: &hcl::Value) -> Result<String, String> {
    match v {
        hcl::Value::String(s) => Ok(s.clone()),
        hcl::Value::Number(n) => Ok(n.to_string()),
        hcl::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a string")),
    }
}

fn tf_index(v: &hcl::Value) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{v} is not a whole number"))
}

fn tf_format(args: FuncArgs) -> Result<hcl::Value, String> {
    let spec = tf_str(&args[0])?;
    let mut values = args.iter().skip(1);
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('s') | Some('d') => {
                out.push_str(&tf_str(values.next().ok_or("format: too few arguments")?)?)
            }
            other => return Err(format!("format: unsupported verb %{other:?}")),
        }
    }
    Ok(out.into())
}

fn tf_substr(args: FuncArgs) -> Result<hcl::Value, String> {
    let s: Vec<char> = tf_str(&args[0])?.chars().collect();
    let offset = usize::try_from(tf_index(&args[1])?).map_err(|_| "substr: negative offset")?;
    let length = tf_index(&args[2])?;
    let start = offset.min(s.len());
    let end = if length < 0 {
        s.len()
    } else {
        (start + length as usize).min(s.len())
    };
    Ok(s[start..end].iter().collect::<String>().into())
}

fn tf_sha256(args: FuncArgs) -> Result<hcl::Value, String> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(tf_str(&args[0])?.as_bytes());
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into())
}

fn tf_length(args: FuncArgs) -> Result<hcl::Value, String> {
    let n = match &args[0] {
        hcl::Value::String(s) => s.chars().count(),
        hcl::Value::Array(a) => a.len(),
        hcl::Value::Object(o) => o.len(),
        other => return Err(format!("length: {other} has no length")),
    };
    Ok((n as u64).into())
}

fn tf_trimsuffix(args: FuncArgs) -> Result<hcl::Value, String> {
    let (s, suffix) = (tf_str(&args[0])?, tf_str(&args[1])?);
    Ok(s.strip_suffix(suffix.as_str())
        .unwrap_or(&s)
        .to_string()
        .into())
}

fn tf_startswith(args: FuncArgs) -> Result<hcl::Value, String> {
    Ok(tf_str(&args[0])?.starts_with(&tf_str(&args[1])?).into())
}

fn tf_min(args: FuncArgs) -> Result<hcl::Value, String> {
    let mut least: Option<i64> = None;
    for v in args.iter() {
        let n = tf_index(v)?;
        least = Some(least.map_or(n, |l| l.min(n)));
    }
    least
        .map(hcl::Value::from)
        .ok_or_else(|| "min: no arguments".into())
}

/// `slice(list, start, end)`: Terraform fails when `end` is past the list.
fn tf_slice(args: FuncArgs) -> Result<hcl::Value, String> {
    let list = args[0].as_array().ok_or("slice: not a list")?;
    let (start, end) = (tf_index(&args[1])?, tf_index(&args[2])?);
    if start < 0 || end < start || end as usize > list.len() {
        return Err(format!(
            "slice: invalid indices {start}..{end} for a list of {}",
            list.len()
        ));
    }
    Ok(hcl::Value::Array(
        list[start as usize..end as usize].to_vec(),
    ))
}

/// Stands for `can(regex(pattern, string))`: `regex` fails when nothing matches.
fn tf_regex_matches(args: FuncArgs) -> Result<hcl::Value, String> {
    let re = regex::Regex::new(&tf_str(&args[0])?).map_err(|e| e.to_string())?;
    Ok(re.is_match(&tf_str(&args[1])?).into())
}

/// `can(regex(...))` as [`tf_regex_matches`]; `can` needs lazy evaluation, which hcl-rs's
/// function calls do not have.
fn rewrite_can(expr: &Expression) -> Expression {
    use hcl::expr::{BinaryOp, Conditional, FuncCall, Operation, UnaryOp};
    match expr {
        Expression::FuncCall(call) => {
            if call.name.name.as_str() == "can"
                && let [Expression::FuncCall(inner)] = call.args.as_slice()
                && inner.name.name.as_str() == "regex"
            {
                let mut f = FuncCall::new("regex_matches");
                f.args = inner.args.iter().map(rewrite_can).collect();
                return Expression::FuncCall(Box::new(f));
            }
            let mut f = call.as_ref().clone();
            f.args = f.args.iter().map(rewrite_can).collect();
            Expression::FuncCall(Box::new(f))
        }
        Expression::Parenthesis(inner) => Expression::Parenthesis(Box::new(rewrite_can(inner))),
        Expression::Conditional(c) => Expression::Conditional(Box::new(Conditional::new(
            rewrite_can(&c.cond_expr),
            rewrite_can(&c.true_expr),
            rewrite_can(&c.false_expr),
        ))),
        Expression::Operation(op) => Expression::Operation(Box::new(match op.as_ref() {
            Operation::Unary(u) => Operation::Unary(UnaryOp::new(u.operator, rewrite_can(&u.expr))),
            Operation::Binary(b) => Operation::Binary(BinaryOp::new(
                rewrite_can(&b.lhs_expr),
                b.operator,
                rewrite_can(&b.rhs_expr),
            )),
        })),
        other => other.clone(),
    }
}

/// An evaluation context with the functions above and `var` set to `vars`.
fn tf_context(vars: hcl::Map<String, hcl::Value>) -> Context<'static> {
    let mut ctx = Context::new();
    let any = || ParamType::Any;
    let funcs: [(&str, hcl::eval::Func, usize, bool); 9] = [
        ("format", tf_format, 1, true),
        ("substr", tf_substr, 3, false),
        ("sha256", tf_sha256, 1, false),
        ("length", tf_length, 1, false),
        ("trimsuffix", tf_trimsuffix, 2, false),
        ("startswith", tf_startswith, 2, false),
        ("min", tf_min, 0, true),
        ("slice", tf_slice, 3, false),
        ("regex_matches", tf_regex_matches, 2, false),
    ];
    for (name, func, params, variadic) in funcs {
        let mut def = FuncDef::builder().params((0..params).map(|_| any()));
        if variadic {
            def = def.variadic_param(any());
        }
        ctx.declare_func(name, def.build(func));
    }
    ctx.declare_var("var", hcl::Value::Object(vars));
    ctx
}

fn tf_eval(expr: &Expression, ctx: &Context) -> Result<hcl::Value, String> {
    rewrite_can(expr).evaluate(ctx).map_err(|e| e.to_string())
}

/// Declares `local` with every local value that can be evaluated in `ctx` (those reading
/// resources or unknown functions are left out; whatever needs them fails to evaluate).
fn declare_locals(module: &Body, ctx: &mut Context) {
    let attrs: Vec<&hcl::Attribute> = blocks(module, "locals")
        .flat_map(|b| b.body().attributes())
        .collect();
    let mut locals = hcl::Map::new();
    loop {
        let before = locals.len();
        for attr in &attrs {
            if !locals.contains_key(attr.key())
                && let Ok(v) = tf_eval(attr.expr(), ctx)
            {
                locals.insert(attr.key().to_string(), v);
            }
        }
        ctx.declare_var("local", hcl::Value::Object(locals.clone()));
        if locals.len() == before {
            break;
        }
    }
}

/// The values Terraform's `var` holds for a module: the declared defaults overlaid with the
/// inputs of a rendered Workspace spec.
fn module_vars(module: &Body, spec: &WorkspaceSpec) -> hcl::Map<String, hcl::Value> {
    let empty = tf_context(hcl::Map::new());
    let mut vars: hcl::Map<String, hcl::Value> = blocks(module, "variable")
        .map(|b| {
            let default = attribute(b.body(), "default")
                .and_then(|e| tf_eval(e, &empty).ok())
                .unwrap_or(hcl::Value::Null);
            (label_strs(b)[0].to_string(), default)
        })
        .collect();
    for var in spec.for_provider.vars.iter().flatten() {
        vars.insert(var.key.clone(), var.value.clone().into());
    }
    for (key, value) in spec.for_provider.varmap.iter().flatten() {
        vars.insert(
            key.clone(),
            hcl::to_value(value).expect("JSON converts to HCL"),
        );
    }
    vars
}

/// The `validation` error messages a module gives for `value` of variable `name` (empty when
/// the value is accepted).
fn validation_errors(module: &Body, name: &str, value: &str) -> Result<Vec<String>, String> {
    let Some(variable) = find_block(module, "variable", &[name]) else {
        return Err(format!("no variable {name:?}"));
    };
    let ctx = tf_context(hcl::Map::from([(name.to_string(), value.into())]));
    let mut errors = Vec::new();
    for validation in blocks(variable.body(), "validation") {
        let condition =
            attribute(validation.body(), "condition").ok_or("validation without condition")?;
        match tf_eval(condition, &ctx)? {
            hcl::Value::Bool(true) => {}
            hcl::Value::Bool(false) => errors
                .push(string_attribute(validation.body(), "error_message").unwrap_or_default()),
            other => return Err(format!("validation of {name} gives {other}, not a bool")),
        }
    }
    Ok(errors)
}

/// Names AWS will see, with their limit, for one module and its inputs: the arguments in
/// [`NAME_LIMITS`] of its own resources, and the names the registry modules build from their
/// inputs (terraform-aws-eks v20 `main.tf` and `modules/fargate-profile`, terraform-aws-vpc v5).
fn built_names(module: &Body, vars: hcl::Map<String, hcl::Value>) -> Vec<(String, String, usize)> {
    let mut ctx = tf_context(vars);
    declare_locals(module, &mut ctx);
    let mut names = Vec::new();
    let eval_str = |what: &str, expr: &Expression, names: &mut Vec<(String, String, usize)>| {
        match tf_eval(expr, &ctx).and_then(|v| tf_str(&v)) {
            Ok(s) => Some(s),
            Err(e) => {
                // An unknown length is a failure: the limit cannot be shown to hold.
                names.push((
                    format!("{what} (cannot be evaluated: {e})"),
                    String::new(),
                    0,
                ));
                None
            }
        }
    };
    for block in blocks(module, "resource") {
        let labels = label_strs(block);
        for (ty, arg, limit, _) in NAME_LIMITS.iter().filter(|l| l.0 == labels[0]) {
            if let Some(expr) = attribute(block.body(), arg) {
                let what = format!("{}.{}.{arg}", labels[0], labels[1]);
                if let Some(s) = eval_str(&what, expr, &mut names) {
                    names.push((format!("{what} ({ty})"), s, *limit));
                }
            }
        }
    }
    for block in blocks(module, "module") {
        let source = string_attribute(block.body(), "source").unwrap_or_default();
        let body = block.body();
        let input = |key: &str, names: &mut Vec<(String, String, usize)>| {
            attribute(body, key).and_then(|e| eval_str(&format!("module input {key}"), e, names))
        };
        let flag = |key: &str, default: bool| match attribute(body, key) {
            Some(Expression::Bool(b)) => *b,
            _ => default,
        };
        match source.as_str() {
            "terraform-aws-modules/eks/aws" => {
                let Some(cluster) = input("cluster_name", &mut names) else {
                    continue;
                };
                let role = input("iam_role_name", &mut names)
                    .unwrap_or_else(|| format!("{cluster}-cluster"));
                if flag("iam_role_use_name_prefix", true) {
                    names.push((
                        "cluster IAM role name_prefix".into(),
                        format!("{role}-"),
                        38,
                    ));
                } else {
                    names.push(("cluster IAM role name".into(), role.clone(), 64));
                }
                names.push((
                    "cluster encryption IAM policy name_prefix".into(),
                    format!("{role}-ClusterEncryption"),
                    102,
                ));
                names.push(("EKS cluster name".into(), cluster.clone(), 100));
                names.push((
                    "control plane log group".into(),
                    format!("/aws/eks/{cluster}/cluster"),
                    512,
                ));
                names.push(("KMS alias".into(), format!("alias/eks/{cluster}"), 256));
                let profiles = attribute(body, "fargate_profiles").map(|e| tf_eval(e, &ctx));
                match profiles {
                    None => {}
                    Some(Ok(hcl::Value::Object(profiles))) => {
                        for (key, profile) in profiles {
                            let field = |k: &str| {
                                profile
                                    .as_object()
                                    .and_then(|o| o.get(k))
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string)
                            };
                            let name = field("name").unwrap_or(key.clone());
                            let role = field("iam_role_name").unwrap_or(name.clone());
                            names.push((format!("default profile {key:?} name"), name, 100));
                            names.push((
                                format!("default profile {key:?} IAM role name_prefix"),
                                format!("{role}-"),
                                38,
                            ));
                        }
                    }
                    Some(other) => names.push((
                        format!("module input fargate_profiles: {other:?}"),
                        String::new(),
                        0,
                    )),
                }
            }
            "terraform-aws-modules/vpc/aws" => {
                let Some(name) = input("name", &mut names) else {
                    continue;
                };
                // Subnet Name tags are "<name>-private-<zone>"; tag values have at most 256
                // characters, and zone names stay below 20.
                names.push((
                    "private subnet Name tag".into(),
                    format!("{name}-private-{}", "z".repeat(20)),
                    256,
                ));
            }
            other => names.push((
                format!("module source {other} (its names are unknown)"),
                String::new(),
                0,
            )),
        }
    }
    names
}

/// The names in `built` that do not fit (limit 0 marks a name that could not be evaluated).
fn too_long(built: &[(String, String, usize)]) -> Vec<String> {
    built
        .iter()
        .filter(|(_, name, limit)| *limit == 0 || name.chars().count() > *limit)
        .map(|(what, name, limit)| match limit {
            0 => what.clone(),
            _ => format!(
                "{what}: {name:?} has {} characters, AWS allows {limit}",
                name.chars().count()
            ),
        })
        .collect()
}

/// A name of `len` characters from `alphabet`, starting with a letter and ending with a letter
/// or digit, with a separator where the modules cut names (after 28 and 37 characters).
fn long_name(len: usize, alphabet: &str, separator: char) -> String {
    let letters: Vec<char> = alphabet.chars().collect();
    (0..len)
        .map(|i| match i {
            _ if i == 0 || i + 1 == len => 'x',
            27 | 28 | 36 => separator,
            _ => letters[i % letters.len()],
        })
        .collect()
}

/// Control plane names the CRD admits that reach the modules as cluster names: Kubernetes object
/// names (lower case, digits, '-') within EKS's 100 characters.
fn admitted_cluster_names() -> Vec<String> {
    [1, 28, 29, 30, 37, 38, 39, 63, 64, 100]
        .iter()
        .map(|len| long_name(*len, "abcdefghijklmnopqrstuvwxyz0123456789", '-'))
        .collect()
}

/// Fargate profile names the CRD admits: letters, digits, '-' and '_', up to 100.
fn admitted_profile_names() -> Vec<String> {
    [1, 37, 38, 100]
        .iter()
        .map(|len| long_name(*len, "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-", '_'))
        .collect()
}

/// The control plane `name` with one additional profile `profile`, as the API server returns it.
fn control_plane_named(name: &str, profile: &str) -> CAPTControlPlane {
    let mut cp = sample_control_plane();
    cp.metadata.name = Some(name.to_string());
    let mut profiles = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap_or_default();
    profiles.truncate(1);
    profiles[0].name = profile.to_string();
    cp.spec.additional_fargate_profiles = Some(profiles);
    cp
}

/// The Terraform type of an output's value, as far as the connection secret cares: "string"
/// (stored raw), "list" or "map" (stored as JSON); None when it cannot be told.
fn output_type(module: &Body, expr: &Expression) -> Option<&'static str> {
    match expr {
        Expression::String(_) | Expression::TemplateExpr(_) => Some("string"),
        Expression::FuncCall(call) => match call.name.name.as_str() {
            "format" | "join" | "jsonencode" | "base64encode" | "lower" | "trimsuffix" => {
                Some("string")
            }
            "tolist" => Some("list"),
            "tomap" => Some("map"),
            _ => None,
        },
        Expression::Array(_) => Some("list"),
        Expression::Object(_) => Some("map"),
        Expression::ForExpr(f) => Some(if f.key_expr.is_some() { "map" } else { "list" }),
        _ => match traversal_path(expr)?.as_slice() {
            [m, label, output] if m == "module" => {
                let source = find_block(module, "module", &[label])
                    .and_then(|b| string_attribute(b.body(), "source"))?;
                REGISTRY_OUTPUT_TYPES
                    .iter()
                    .find(|(s, o, _)| *s == source && o == output)
                    .map(|(_, _, t)| *t)
            }
            // Identifiers and names of AWS resources are strings.
            [ty, _, attr]
                if ty.starts_with("aws_")
                    && ["arn", "id", "name", "status", "fargate_profile_name"]
                        .contains(&attr.as_str()) =>
            {
                Some("string")
            }
            _ => None,
        },
    }
}

/// Outputs that are missing or not strings among `keys` (connection secret keys the operator
/// and the other workspaces read as text).
fn string_output_problems(module: &Body, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|key| {
            let Some(output) = find_block(module, "output", &[key]) else {
                return Some(format!("no output {key:?}"));
            };
            let value = attribute(output.body(), "value");
            match value.and_then(|v| output_type(module, v)) {
                Some("string") => None,
                other => Some(format!(
                    "output {key:?} is {}, but its connection secret key is read as text",
                    other.unwrap_or("of an unknown type")
                )),
            }
        })
        .collect()
}

/// An HCL object value.
fn object<const N: usize>(entries: [(&str, hcl::Value); N]) -> hcl::Value {
    hcl::Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_shipped_module_parses_and_declares_outputs() {
    let templates = shipped_templates();
    for required in ["eks-controlplane", "eks-fargate-profile", "vpc"] {
        assert!(
            templates.contains_key(required),
            "WorkspaceTemplate {required} is not shipped; found {:?}",
            templates.keys()
        );
    }
    for (name, (file, template)) in &templates {
        let module = module_body(file, template);
        assert!(
            !declared_outputs(&module).is_empty(),
            "{file} ({name}): the module declares no output"
        );
        assert!(
            !declared_variables(&module).is_empty(),
            "{file} ({name}): the module declares no variable"
        );
    }

    // The VPC template is instantiated by the user, not by the controller: its own vars must be
    // declared, and it must produce what the EKS and profile workspaces wait for.
    let (file, vpc) = template(&templates, "vpc");
    let module = module_body(file, vpc);
    assert_contract(
        &format!("{file} (its own static inputs)"),
        &module,
        &inputs_of(&vpc.spec.template.spec, &[]),
    );
    let outputs = declared_outputs(&module);
    for output in ["vpc_id", "private_subnets", "public_subnets"]
        .iter()
        .chain(render::eks::VPC_SECRET_KEYS)
    {
        assert!(
            outputs.contains(*output),
            "{file}: no output {output:?}; declared: {outputs:?}"
        );
    }
}

#[test]
fn vpc_module_writes_the_var_file_the_sample_secret_stands_in_for() {
    let templates = shipped_templates();
    let (file, vpc) = template(&templates, "vpc");
    let module = module_body(file, vpc);
    // output "vpc_config" = format(local.vpc_config_format, ...): the heredoc's attribute names
    // are the var file's.
    let output = find_block(&module, "output", &["vpc_config"])
        .unwrap_or_else(|| panic!("{file}: no output vpc_config"));
    let value = attribute(output.body(), "value")
        .unwrap_or_else(|| panic!("{file}: output vpc_config has no value"));
    let Expression::FuncCall(call) = value else {
        panic!(
            "{file}: output vpc_config is expected to be format(local.vpc_config_format, ...), got {value}"
        )
    };
    let local = call.args.first().and_then(traversal_path);
    let Some([locals, local_name]) = local.as_deref() else {
        panic!(
            "{file}: output vpc_config formats {:?}, expected local.<name>",
            call.args.first()
        )
    };
    assert_eq!(
        locals, "local",
        "{file}: output vpc_config should format a local"
    );
    let format = blocks(&module, "locals")
        .find_map(|b| attribute(b.body(), local_name))
        .unwrap_or_else(|| panic!("{file}: local {local_name} is not defined"));
    let template_text = match format {
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::Heredoc(h) => h.template.clone(),
            TemplateExpr::QuotedString(s) => s.clone(),
        },
        Expression::String(s) => s.clone(),
        other => panic!("{file}: local {local_name} should be a string, got {other}"),
    };
    let written: BTreeSet<String> = hcl::parse(&template_text.replace("%s", "null"))
        .unwrap_or_else(|e| {
            panic!("{file}: local {local_name} does not format an HCL var file: {e}")
        })
        .attributes()
        .map(|a| a.key().to_string())
        .collect();
    assert_eq!(
        call.args.len() - 1,
        written.len(),
        "{file}: output vpc_config fills {} values into {} attributes",
        call.args.len() - 1,
        written.len()
    );

    let secrets = sample_secrets();
    let cp = sample_control_plane();
    let (ns, name) = render::eks::vpc_secret(&cp);
    let sample = secrets
        .iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(&ns) && s.metadata.name.as_deref() == Some(&name))
        .unwrap_or_else(|| panic!("config/samples/secrets.yaml has no Secret {ns}/{name}, the VPC secret of the sample control plane"));
    let text = &sample.string_data.as_ref().expect("stringData")["vpc_config"];
    let sample_attrs: BTreeSet<String> = hcl::parse(text)
        .expect("sample vpc_config is HCL")
        .attributes()
        .map(|a| a.key().to_string())
        .collect();
    assert_eq!(
        written, sample_attrs,
        "the VPC module's vpc_config and the sample secret's set different attributes"
    );
}

#[test]
fn eks_workspace_inputs_match_the_eks_module() {
    let templates = shipped_templates();
    let cp = sample_control_plane();
    let apply = render::eks::render(&cp);
    let (file, template) = template(&templates, &apply.spec.template_ref.name);
    let spec = render_workspace(&apply, template);

    let leftover = unresolved_placeholders(&spec);
    assert!(
        leftover.is_empty(),
        "{file}: placeholders left in the rendered Workspace spec: {leftover:?}"
    );

    let module = module_body(file, template);
    let inputs = inputs_of(&spec, &sample_secrets());
    assert!(
        !inputs.var_files.is_empty(),
        "{file}: the EKS workspace is expected to read the VPC var file"
    );
    assert_contract(file, &module, &inputs);

    // The default profiles travel typed and reach the eks module unchanged.
    assert_eq!(
        inputs.varmap.get("fargate_profiles"),
        Some(&json!({
            "kube-system": { "name": "kube-system", "selectors": [{ "namespace": "kube-system" }] },
            "karpenter": { "name": "karpenter", "selectors": [{ "namespace": "karpenter" }] },
        })),
        "fargate_profiles rendered for the sample (no defaultFargateProfiles: both defaults)"
    );
    let eks = find_block(&module, "module", &["eks"])
        .unwrap_or_else(|| panic!("{file}: no module \"eks\" block"));
    let passed = attribute(eks.body(), "fargate_profiles").map(|e| e.to_string());
    assert_eq!(
        passed.as_deref(),
        Some("var.fargate_profiles"),
        "{file}: module \"eks\" should get fargate_profiles = var.fargate_profiles"
    );

    // The profile workspaces wait for these keys of the EKS connection secret.
    let outputs = declared_outputs(&module);
    for key in render::fargate::EKS_SECRET_KEYS {
        assert!(
            outputs.contains(*key),
            "{file}: no output {key:?}, which the controller waits for in the EKS connection secret"
        );
    }
}

#[test]
fn fargate_profile_workspace_inputs_match_the_profile_module() {
    let templates = shipped_templates();
    let secrets = sample_secrets();
    let cp = sample_control_plane();
    let profiles = cp
        .spec
        .additional_fargate_profiles
        .clone()
        .unwrap_or_default();
    assert!(
        !profiles.is_empty(),
        "the sample control plane has additional Fargate profiles"
    );
    for profile in &profiles {
        let apply = render::fargate::render(&cp, profile);
        let (file, template) = template(&templates, &apply.spec.template_ref.name);
        let spec = render_workspace(&apply, template);
        let what = format!("{file} for profile {}", profile.name);

        let leftover = unresolved_placeholders(&spec);
        assert!(
            leftover.is_empty(),
            "{what}: placeholders left in the rendered Workspace spec: {leftover:?}"
        );

        let module = module_body(file, template);
        let inputs = inputs_of(&spec, &secrets);
        assert_contract(&what, &module, &inputs);

        let problems = fargate_module_problems(&module);
        assert!(
            problems.is_empty(),
            "{what}:\n  - {}",
            problems.join("\n  - ")
        );
    }
}

#[test]
fn the_checks_report_broken_contracts() {
    // A required variable nobody sets, a -var the module lacks, a var-file attribute the module
    // lacks and a value of the wrong type.
    let module = hcl::parse(
        r#"
        variable "x" {}
        variable "n" { type = list(string) }
        variable "o" {
          type    = object({ name = string, selectors = list(object({ namespace = string, labels = optional(map(string), {}) })) })
          default = null
        }
        variable "d" { default = null }
        "#,
    )
    .unwrap();
    let inputs = Inputs {
        vars: BTreeMap::from([
            ("y".to_string(), "1".to_string()),
            ("n".to_string(), r#"["a", "b"]"#.to_string()),
        ]),
        varmap: BTreeMap::from([(
            "o".to_string(),
            json!({ "name": "p", "selectors": [{ "labels": { "a": 1 } }], "extra": true }),
        )]),
        var_files: vec![(
            "file".to_string(),
            BTreeMap::from([("z".to_string(), json!("v"))]),
        )],
    };
    let findings = check_inputs(&module, &inputs);
    assert_eq!(findings.undeclared, vec!["y"]);
    assert_eq!(
        findings.missing_required,
        vec!["x"],
        "x has no default and is not set; d has a (null) default"
    );
    assert_eq!(findings.undeclared_in_var_files, vec!["z (from file)"]);
    assert_eq!(
        findings.type_errors,
        vec![
            r#"varmap.o.selectors[0]: required attribute "namespace" is missing"#,
            "varmap.o.extra: attribute not in the type constraint (Terraform would drop it)",
        ],
        "-var n parses as list(string); labels.a = 1 converts to string"
    );
    assert_eq!(findings.errors().len(), 4);

    // The same module with everything set is accepted.
    let ok = Inputs {
        vars: BTreeMap::from([("x".to_string(), "1".to_string())]),
        varmap: BTreeMap::from([("n".to_string(), json!(["a"]))]),
        var_files: vec![],
    };
    assert_eq!(check_inputs(&module, &ok), Findings::default());

    // A -var that is not valid for its type.
    let bad = Inputs {
        vars: BTreeMap::from([
            ("x".to_string(), "v".to_string()),
            ("n".to_string(), "{".to_string()),
        ]),
        ..Default::default()
    };
    assert_eq!(check_inputs(&module, &bad).type_errors.len(), 1);

    // A placeholder left outside the module is found, one inside the module is not.
    let mut spec = WorkspaceSpec::default();
    spec.for_provider.module = "output \"o\" { value = \"${var.x}\" }".into();
    spec.for_provider.vars = Some(vec![capt_fargate::api::workspace::Var {
        key: "k".into(),
        value: "${missing}".into(),
    }]);
    assert_eq!(
        unresolved_placeholders(&spec),
        vec![r#".forProvider.vars[0].value = "${missing}""#]
    );

    // The Fargate module checks fail on a module without the confused-deputy condition and
    // without the managed policy.
    let weak = hcl::parse(
        r#"
        resource "aws_iam_role" "r" {
          assume_role_policy = jsonencode({ Statement = [{ Principal = { Service = "eks-fargate-pods.amazonaws.com" } }] })
        }
        resource "aws_eks_fargate_profile" "p" { pod_execution_role_arn = aws_iam_role.r.arn }
        output "fargate_profile_arn" { value = aws_eks_fargate_profile.p.arn }
        "#,
    )
    .unwrap();
    let problems = fargate_module_problems(&weak);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("aws:SourceArn"), "{problems:#?}");
    assert!(
        problems[1].contains("AmazonEKSFargatePodExecutionRolePolicy"),
        "{problems:#?}"
    );
    assert!(
        problems[2].contains("pod_execution_role_arn"),
        "{problems:#?}"
    );
}

/// `controlPlaneConfig`, its `endpointAccess` and each of `public`/`private` are optional in the
/// CRD, and the eks-controlplane module is written to tolerate their absence (defaults for the
/// endpoint flags, a region check that skips a value that is not a region). A control plane that
/// leaves them out must still get a Workspace that Terraform accepts.
#[test]
fn control_plane_without_optional_settings_renders_with_the_eks_template() {
    use capt_fargate::api::EndpointAccess;

    let templates = shipped_templates();
    let secrets = sample_secrets();
    let base = sample_control_plane();
    let region = base
        .spec
        .control_plane_config
        .clone()
        .expect("the sample sets controlPlaneConfig");

    let mut variants: Vec<(&str, CAPTControlPlane)> = Vec::new();
    let mut cp = base.clone();
    cp.spec
        .control_plane_config
        .as_mut()
        .unwrap()
        .endpoint_access = Some(EndpointAccess {
        public: Some(true),
        ..Default::default()
    });
    variants.push(("endpointAccess with only public", cp));
    let mut cp = base.clone();
    cp.spec.control_plane_config = Some(capt_fargate::api::ControlPlaneConfig {
        endpoint_access: None,
        ..region
    });
    variants.push(("controlPlaneConfig without endpointAccess", cp));
    let mut cp = base.clone();
    cp.spec.control_plane_config = None;
    variants.push(("no controlPlaneConfig", cp));

    let mut failures = Vec::new();
    for (variant, cp) in &variants {
        let apply = render::eks::render(cp);
        let (file, template) = template(&templates, &apply.spec.template_ref.name);
        match render::workspace::render(&apply, template, "ws-name") {
            Err(e) => failures.push(format!("{variant}: {file} cannot be rendered: {e}")),
            Ok(spec) => {
                let findings =
                    check_inputs(&module_body(file, template), &inputs_of(&spec, &secrets));
                for error in findings.errors() {
                    failures.push(format!("{variant}: {file}: {error}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "control planes the CRD accepts get no working EKS Workspace:\n  - {}",
        failures.join("\n  - ")
    );
}

#[test]
fn every_module_pins_terraform_and_its_providers() {
    let templates = shipped_templates();
    let mut failures = Vec::new();
    for (name, (file, template)) in &templates {
        for problem in pin_problems(&module_body(file, template)) {
            failures.push(format!("{file} ({name}): {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "modules that may not run with provider-terraform v1.0 (Terraform 1.5.5):\n  - {}",
        failures.join("\n  - ")
    );

    // The check itself: an unpinned provider, a major too new for Terraform 1.5.5, a module
    // without version and a required_version that refuses 1.5.5.
    let broken = hcl::parse(
        r#"
        terraform {
          required_version = ">= 1.5.7"
          required_providers {
            aws = { source = "hashicorp/aws", version = ">= 5.0" }
          }
        }
        module "eks" {
          source  = "terraform-aws-modules/eks/aws"
          version = "~> 21.0"
        }
        module "vpc" { source = "terraform-aws-modules/vpc/aws" }
        resource "aws_iam_role" "r" {}
        "#,
    )
    .unwrap();
    let problems = pin_problems(&broken);
    for needle in [
        "required_version \">= 1.5.7\" refuses Terraform 1.5.5",
        "eks/aws v21 needs Terraform [1, 5, 7]",
        "module \"vpc\" (terraform-aws-modules/vpc/aws) has no version",
        "required_providers.aws: \">= 5.0\" admits 6.0.0",
        "provider \"tls\" is used but not in terraform { required_providers }",
        "provider \"time\" is used",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "expected a problem containing {needle:?} in {problems:#?}"
        );
    }
    assert_eq!(satisfies("~> 20.37", [20, 99, 0]), Ok(true));
    assert_eq!(satisfies("~> 20.37", [21, 0, 0]), Ok(false));
    assert_eq!(satisfies("~> 1.2.3", [1, 3, 0]), Ok(false));
    assert_eq!(pinned_major(">= 5.95, < 6.0"), Ok(5));
}

#[test]
fn names_the_modules_build_fit_aws_for_every_admitted_name() {
    let templates = shipped_templates();
    let (eks_file, eks) = template(&templates, "eks-controlplane");
    let (profile_file, profile_template) = template(&templates, "eks-fargate-profile");
    let (vpc_file, vpc) = template(&templates, "vpc");
    let modules = [
        (eks_file, module_body(eks_file, eks)),
        (profile_file, module_body(profile_file, profile_template)),
        (vpc_file, module_body(vpc_file, vpc)),
    ];
    let [(_, eks_module), (_, profile_module), (_, vpc_module)] = &modules;

    let mut failures = Vec::new();
    let mut checked: BTreeSet<String> = BTreeSet::new();
    for cluster in admitted_cluster_names() {
        for profile in admitted_profile_names() {
            let cp = control_plane_named(&cluster, &profile);
            let eks_spec = render_workspace(&render::eks::render(&cp), eks);
            let fp = &cp.spec.additional_fargate_profiles.as_ref().unwrap()[0];
            let profile_spec =
                render_workspace(&render::fargate::render(&cp, fp), profile_template);
            let vpc_vars = hcl::Map::from([("cluster_name".to_string(), cluster.clone().into())]);
            for (file, built) in [
                (
                    eks_file,
                    built_names(eks_module, module_vars(eks_module, &eks_spec)),
                ),
                (
                    profile_file,
                    built_names(profile_module, module_vars(profile_module, &profile_spec)),
                ),
                (vpc_file, built_names(vpc_module, vpc_vars)),
            ] {
                checked.extend(built.iter().map(|(what, _, _)| format!("{file}: {what}")));
                for problem in too_long(&built) {
                    failures.push(format!(
                        "{file}, cluster {} chars, profile {} chars: {problem}",
                        cluster.len(),
                        profile.len()
                    ));
                }
            }
        }
    }
    failures.dedup();
    assert!(
        failures.is_empty(),
        "names AWS refuses, built from names admission accepts:\n  - {}",
        failures.join("\n  - ")
    );
    for expected in [
        format!("{eks_file}: cluster IAM role name_prefix"),
        format!("{eks_file}: EKS cluster name"),
        format!("{eks_file}: default profile \"kube-system\" IAM role name_prefix"),
        format!("{profile_file}: aws_iam_role.pod_execution.name_prefix (aws_iam_role)"),
        format!(
            "{profile_file}: aws_eks_fargate_profile.this.fargate_profile_name (aws_eks_fargate_profile)"
        ),
        format!("{vpc_file}: private subnet Name tag"),
    ] {
        assert!(
            checked.contains(&expected),
            "{expected:?} was not checked; checked: {checked:#?}"
        );
    }

    // The cluster role's name is stable, keeps the module's own name for short clusters (so
    // existing clusters keep their role) and tells long names apart.
    let role_of = |cluster: &str| {
        let cp = control_plane_named(cluster, "p");
        let vars = module_vars(
            eks_module,
            &render_workspace(&render::eks::render(&cp), eks),
        );
        built_names(eks_module, vars)
            .into_iter()
            .find(|(what, _, _)| what == "cluster IAM role name_prefix")
            .map(|(_, name, _)| name)
            .unwrap()
    };
    assert_eq!(role_of("demo-cluster"), "demo-cluster-cluster-");
    let long_a = format!("{}-a", "x".repeat(40));
    let long_b = format!("{}-b", "x".repeat(40));
    assert_eq!(role_of(&long_a), role_of(&long_a));
    assert_ne!(role_of(&long_a), role_of(&long_b));

    // Every module accepts each admitted name, and refuses what EKS would refuse, at plan time.
    for (file, module) in &modules {
        for cluster in admitted_cluster_names() {
            assert_eq!(
                validation_errors(module, "cluster_name", &cluster),
                Ok(vec![]),
                "{file}: {cluster}"
            );
        }
        for bad in [
            "x".repeat(101),
            "team.prod-eu".to_string(),
            "-a".to_string(),
        ] {
            let errors = validation_errors(module, "cluster_name", &bad).unwrap();
            assert!(
                !errors.is_empty(),
                "{file}: cluster_name {bad:?} is accepted"
            );
        }
    }
    for profile in admitted_profile_names() {
        assert_eq!(
            validation_errors(profile_module, "profile_name", &profile),
            Ok(vec![]),
            "{profile}"
        );
    }
    for bad in ["p".repeat(101), "eks-x".to_string()] {
        assert!(
            !validation_errors(profile_module, "profile_name", &bad)
                .unwrap()
                .is_empty(),
            "{bad}"
        );
    }

    // The check itself: the name terraform-aws-eks builds by default is too long for a
    // 30-character cluster name.
    let default_eks = hcl::parse(
        r#"module "eks" {
          source       = "terraform-aws-modules/eks/aws"
          cluster_name = var.cluster_name
        }"#,
    )
    .unwrap();
    let vars = hcl::Map::from([("cluster_name".to_string(), "c".repeat(30).into())]);
    let problems = too_long(&built_names(&default_eks, vars));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("cluster IAM role name_prefix"),
        "{problems:#?}"
    );
}

#[test]
fn vpc_module_works_with_two_availability_zones_and_refuses_one() {
    let templates = shipped_templates();
    let (file, vpc) = template(&templates, "vpc");
    let module = module_body(file, vpc);
    let zones = |n: usize| -> Vec<hcl::Value> {
        (0..n)
            .map(|i| format!("xx-test-1{}", (b'a' + i as u8) as char).into())
            .collect()
    };
    let azs_for = |n: usize| {
        let mut ctx = tf_context(hcl::Map::from([(
            "cluster_name".to_string(),
            "demo".into(),
        )]));
        let names = object([("names", hcl::Value::Array(zones(n)))]);
        let data = object([("aws_availability_zones", object([("available", names)]))]);
        ctx.declare_var("data", data);
        declare_locals(&module, &mut ctx);
        let azs = blocks(&module, "locals")
            .find_map(|b| attribute(b.body(), "azs"))
            .unwrap_or_else(|| panic!("{file}: no local azs"));
        tf_eval(azs, &ctx).map(|v| v.as_array().map(Vec::len))
    };
    assert_eq!(azs_for(2), Ok(Some(2)), "{file}: a region with two zones");
    assert_eq!(azs_for(3), Ok(Some(3)), "{file}: a region with three zones");
    assert_eq!(azs_for(6), Ok(Some(3)), "{file}: a region with six zones");

    // Fewer than two zones: EKS refuses the cluster, so the plan stops with a message.
    let data = find_block(&module, "data", &["aws_availability_zones", "available"])
        .unwrap_or_else(|| panic!("{file}: no data aws_availability_zones available"));
    let postcondition = blocks(data.body(), "lifecycle")
        .flat_map(|l| blocks(l.body(), "postcondition"))
        .find_map(|p| attribute(p.body(), "condition"))
        .unwrap_or_else(|| panic!("{file}: no postcondition on the availability zones"));
    let holds = |n: usize| {
        let mut ctx = tf_context(hcl::Map::new());
        ctx.declare_var("self", object([("names", hcl::Value::Array(zones(n)))]));
        tf_eval(postcondition, &ctx)
    };
    assert_eq!(holds(1), Ok(hcl::Value::Bool(false)));
    assert_eq!(holds(2), Ok(hcl::Value::Bool(true)));
}

#[test]
fn destroy_reads_nothing_of_the_cluster_and_the_log_group_survives_recreation() {
    let templates = shipped_templates();
    let mut failures = Vec::new();
    for (name, (file, template)) in &templates {
        let module = module_body(file, template);
        // Terraform reads data sources during destroy too: one that looks up an EKS object
        // fails once it is gone, and the workspace can never be destroyed.
        for block in blocks(&module, "data") {
            let labels = label_strs(block).join(".");
            if labels.starts_with("aws_eks_") {
                failures.push(format!(
                    "{file} ({name}): data.{labels} blocks destroy once the cluster is gone"
                ));
            }
        }
        // A log group named after the cluster in Terraform's state fails a cluster re-created
        // under the same name (EKS re-creates it after the destroy).
        for block in blocks(&module, "resource") {
            if label_strs(block)[0] == "aws_cloudwatch_log_group" {
                failures.push(format!(
                    "{file} ({name}): resource {} owns a log group",
                    label_strs(block).join(".")
                ));
            }
        }
        for block in blocks(&module, "module") {
            if string_attribute(block.body(), "source").as_deref()
                == Some("terraform-aws-modules/eks/aws")
                && attribute(block.body(), "create_cloudwatch_log_group")
                    != Some(&Expression::Bool(false))
            {
                failures.push(format!(
                    "{file} ({name}): module {:?} creates the control plane log group (its default)",
                    label_strs(block).join(".")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "destroy or re-creation would fail:\n  - {}",
        failures.join("\n  - ")
    );
}

#[test]
fn outputs_the_operator_and_the_workspaces_read_exist_as_strings() {
    let templates = shipped_templates();
    let cp = sample_control_plane();
    let eks_apply = render::eks::render(&cp);
    let (file, eks) = template(&templates, &eks_apply.spec.template_ref.name);
    let read = [
        render::fargate::EKS_SECRET_KEYS,
        &[render::eks::VERSION_OUTPUT],
    ]
    .concat();
    let problems = string_output_problems(&module_body(file, eks), &read);
    assert!(problems.is_empty(), "{file}: {problems:?}");
    let (file, vpc) = template(&templates, "vpc");
    let vpc_module = module_body(file, vpc);
    let problems = string_output_problems(&vpc_module, render::eks::VPC_SECRET_KEYS);
    assert!(problems.is_empty(), "{file}: {problems:?}");
    assert_eq!(
        output_type(
            &vpc_module,
            attribute(
                find_block(&vpc_module, "output", &["private_subnets"])
                    .unwrap()
                    .body(),
                "value"
            )
            .unwrap()
        ),
        Some("list")
    );

    // The check itself: a list where a string is read, and a missing output.
    let module = hcl::parse(
        r#"
        module "vpc" { source = "terraform-aws-modules/vpc/aws" }
        output "vpc_config" { value = module.vpc.private_subnets }
        "#,
    )
    .unwrap();
    assert_eq!(
        string_output_problems(&module, &["vpc_config", "x"]),
        vec![
            "output \"vpc_config\" is list, but its connection secret key is read as text"
                .to_string(),
            "no output \"x\"".to_string(),
        ]
    );
}

/// The ProviderConfig sample is the one the templates name, and keeps state in S3 with locking.
#[test]
fn provider_config_sample_has_a_remote_backend() {
    let text = repo_file("config/samples/provider-terraform/providerconfig.yaml");
    let pc: Value = serde_saphyr::from_str(&text).expect("the sample is YAML");
    assert_eq!(pc["apiVersion"], "tf.upbound.io/v1beta1");
    assert_eq!(pc["kind"], "ProviderConfig");
    for (name, (file, template)) in shipped_templates() {
        let wanted = template
            .spec
            .template
            .spec
            .provider_config_ref
            .as_ref()
            .map(|r| r.name.clone());
        assert_eq!(
            wanted.as_deref(),
            pc["metadata"]["name"].as_str(),
            "{file} ({name})"
        );
    }
    let config = hcl::parse(
        pc["spec"]["configuration"]
            .as_str()
            .expect("spec.configuration"),
    )
    .expect("spec.configuration is HCL");
    let backend = blocks(&config, "terraform")
        .flat_map(|t| blocks(t.body(), "backend"))
        .next()
        .expect("a backend block");
    assert_eq!(label_strs(backend), ["s3"]);
    for key in [
        "bucket",
        "key",
        "region",
        "dynamodb_table",
        "encrypt",
        "shared_credentials_file",
    ] {
        assert!(
            attribute(backend.body(), key).is_some(),
            "backend \"s3\" sets no {key}"
        );
    }
    let credentials = string_attribute(backend.body(), "shared_credentials_file").unwrap();
    assert_eq!(
        pc["spec"]["credentials"][0]["filename"],
        credentials.as_str()
    );
    assert!(
        find_block(&config, "provider", &["aws"]).is_some(),
        "no provider \"aws\" block"
    );
}

/// The CAPTCluster's VPC applies (a new VPC from the sample, and an existing VPC) render with
/// the shipped `vpc` and `existing-vpc` templates: every placeholder set, every input declared,
/// and both write the Secret keys the other workspaces and the CAPTCluster read.
#[test]
fn captcluster_vpc_inputs_match_the_vpc_modules() {
    let templates = shipped_templates();
    let mut sample: capt_fargate::api::CAPTCluster =
        serde_saphyr::from_str(&repo_file("config/samples/captcluster.yaml"))
            .expect("config/samples/captcluster.yaml is a CAPTCluster");
    sample.metadata.uid = Some("0000".into());
    let mut existing = sample.clone();
    existing.spec.vpc_template_ref = None;
    existing.spec.existing_vpc_id = Some("vpc-0a1b2c3d4e5f60718".into());
    let mut output_sets = Vec::new();
    for c in [sample, existing] {
        let apply = render::vpc::render(&c);
        let (file, template) = template(&templates, &apply.spec.template_ref.name);
        let spec = render_workspace(&apply, template);
        let leftover = unresolved_placeholders(&spec);
        assert!(
            leftover.is_empty(),
            "{file}: placeholders left: {leftover:?}"
        );
        let module = module_body(file, template);
        assert_contract(file, &module, &inputs_of(&spec, &[]));
        let outputs = declared_outputs(&module);
        for key in render::eks::VPC_SECRET_KEYS
            .iter()
            .chain(render::vpc::CONNECTION_KEYS)
            .chain(&["availability_zones", "private_subnets", "public_subnets"])
        {
            assert!(outputs.contains(*key), "{file}: no output {key:?}");
        }
        let problems = string_output_problems(&module, render::eks::VPC_SECRET_KEYS);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        output_sets.push(outputs);
    }
    assert_eq!(
        output_sets[0], output_sets[1],
        "the vpc and existing-vpc templates write different Secret keys"
    );
}
