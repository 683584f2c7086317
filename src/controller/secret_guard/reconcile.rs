//! The guard's reconcile of one Secret: counts its readers in the caches and puts or removes
//! the finalizer as `decide` says.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::decide::{Change, decide};
use super::{CONTROLLER, RESYNC, State};
use crate::error::{Error, Result};
use crate::names::SECRET_FINALIZER;
use crate::runtime::finalizer::{ensure_finalizer, remove_finalizer};

/// Protects or releases `secret` as its readers call for.
pub(super) async fn reconcile(secret: Arc<Secret>, state: Arc<State>) -> Result<Action> {
    let caches = [
        state.secrets.is_ready(),
        state.workspaces.is_ready(),
        state.applies.is_ready(),
    ];
    if caches.contains(&false) {
        return Ok(Action::requeue(crate::controller::CACHES_FILLING));
    }
    let _timer = state.ctx.metrics.reconcile(CONTROLLER);
    let secret = state.secrets.latest(secret);
    let ns = secret
        .namespace()
        .ok_or_else(|| Error::MissingMetadata(secret.name_any()))?;
    let api: Api<Secret> = Api::namespaced(state.ctx.client.clone(), &ns);
    match decide(&secret, state.readers(&secret)) {
        Some(Change::Protect) => {
            ensure_finalizer(&api, &state.secrets, secret, SECRET_FINALIZER).await?;
        }
        Some(Change::Release) => remove_finalizer(&api, secret.as_ref(), SECRET_FINALIZER).await?,
        None => {}
    }
    // A Workspace deletion missed while a watch relisted would leave the finalizer: look again
    // now and then (in memory; nothing is written unless something changed).
    Ok(Action::requeue(RESYNC))
}
