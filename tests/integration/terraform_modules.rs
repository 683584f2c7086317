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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

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
