//! What an apply's decision asks to look at ([`super::decide::Lookup`]): the Workspace its
//! template renders, and the Secrets and Workspaces it waits for; all from the caches, except
//! a Secret or template outside the operator's scope.

use std::sync::Arc;

use kube::Api;

use super::State;
use super::decide::{Desired, Prerequisites};
use crate::api::conditions::READY;
use crate::api::workspace::WorkspaceSpec;
use crate::api::{Workspace, WorkspaceTemplate, WorkspaceTemplateApply};
use crate::controller::secrets::{self, Required};
use crate::error::Result;
use crate::names;
use crate::render;
use crate::runtime::write;
use crate::status::apply::mirror_workspace;

/// The Workspace the template renders for this apply, compared with the existing one.
pub(super) async fn desire(
    state: &State,
    apply: &WorkspaceTemplateApply,
    ws_name: &str,
    existing: Option<&Workspace>,
) -> Result<Desired> {
    let template_ns = apply.template_namespace();
    let Some(template) = template(state, &template_ns, &apply.spec.template_ref.name).await? else {
        return Ok(Desired::NoTemplate);
    };
    let spec = match render::workspace::render(apply, &template, ws_name) {
        Ok(spec) => spec,
        Err(e) => return Ok(Desired::Invalid(e.to_string())),
    };
    let mut workspace = render::workspace::object(apply, ws_name, spec);
    // With the record of what was rendered, so that a removal shows (`runtime::write::stamp`).
    write::stamp(&mut workspace)?;
    // Compared as the cache keeps it (module fingerprinted).
    let mut comparable = workspace.clone();
    state.workspaces.prepare(&mut comparable);
    let held = existing
        .filter(|ws| state.workspaces.holds(ws, &comparable))
        .map(|_| spec_hash(&comparable.spec));
    Ok(Desired::Rendered {
        workspace: Box::new(workspace),
        held,
    })
}

/// The Secrets and Workspaces the apply waits for, from the caches (a Secret outside the
/// operator's scope is read directly). Only key names of Secrets are read, never values.
pub(super) async fn prerequisites(
    state: &State,
    apply: &WorkspaceTemplateApply,
) -> Result<Prerequisites> {
    let ctx = &state.ctx;
    let mut missing = Vec::new();
    for req in apply.spec.wait_for_secrets.iter().flatten() {
        let keys = req.keys.clone().unwrap_or_default();
        let required = Required {
            namespace: &req.namespace,
            name: &req.name,
            keys: &keys,
        };
        let in_scope = ctx.in_scope(&req.namespace);
        missing.extend(secrets::missing(&ctx.client, &state.secrets, in_scope, required).await?);
    }
    Ok(Prerequisites {
        missing_secrets: (!missing.is_empty())
            .then(|| format!("waiting for {}", missing.join("; "))),
        unready_workspaces: unready_workspaces(state, apply),
    })
}

/// Workspaces this apply waits for that are not Ready yet, as a message.
fn unready_workspaces(state: &State, apply: &WorkspaceTemplateApply) -> Option<String> {
    let mut waiting = Vec::new();
    for r in apply.spec.wait_for_workspaces.iter().flatten() {
        let ready = match workspace(state, &r.name) {
            Some(ws) => mirror_workspace(&ws)
                .iter()
                .any(|c| c.type_ == READY && c.status),
            None => false,
        };
        if !ready {
            waiting.push(r.name.clone());
        }
    }
    (!waiting.is_empty())
        .then(|| format!("waiting for Workspaces to be Ready: {}", waiting.join(", ")))
}

/// A Workspace by name, from the cache (which holds every Workspace).
pub(super) fn workspace(state: &State, name: &str) -> Option<Arc<Workspace>> {
    state.workspaces.get_named(None, name)
}

/// The WorkspaceTemplate of an apply: from the cache, or read directly when it lives in a
/// namespace outside the operator's watch.
async fn template(
    state: &State,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<WorkspaceTemplate>>> {
    if state.ctx.in_scope(namespace) {
        return Ok(state.templates.get_named(Some(namespace), name));
    }
    let api: Api<WorkspaceTemplate> = Api::namespaced(state.ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}

fn spec_hash(spec: &WorkspaceSpec) -> String {
    names::short_hash(&serde_json::to_string(spec).unwrap_or_default(), 16)
}
