//! `spec.controlPlaneEndpoint` from the EKS cluster's endpoint: set once it exists (Cluster API
//! copies it into the Cluster), and changed only when the EKS endpoint differs from it, with
//! an event saying so.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::State;
use crate::api::{ApiEndpoint, CAPTControlPlane};
use crate::error::Result;
use crate::names::FIELD_MANAGER;
use crate::render;

/// What to do with `spec.controlPlaneEndpoint`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum EndpointChange {
    /// It already is the EKS endpoint.
    Unchanged,
    /// It is not set yet (absent, or an empty host as CAPT's samples leave it).
    Set,
    /// It holds another endpoint than the EKS cluster's.
    Changed {
        /// What it held.
        from: ApiEndpoint,
    },
}

/// Pure: how `have` (the spec's endpoint) compares with `want` (the EKS cluster's).
pub(super) fn endpoint_change(have: Option<&ApiEndpoint>, want: &ApiEndpoint) -> EndpointChange {
    match have {
        Some(h) if h == want => EndpointChange::Unchanged,
        Some(h) if !h.host.is_empty() => EndpointChange::Changed { from: h.clone() },
        _ => EndpointChange::Set,
    }
}

/// Makes `spec.controlPlaneEndpoint` of `cp` the EKS endpoint `want` (a merge patch of that
/// field only), saying why in an event when it replaces another endpoint.
pub(super) async fn ensure(cp: &CAPTControlPlane, state: &State, want: &ApiEndpoint) -> Result<()> {
    let change = endpoint_change(cp.spec.control_plane_endpoint.as_ref(), want);
    if change == EndpointChange::Unchanged {
        return Ok(());
    }
    let ctx = &state.ctx;
    let api: Api<CAPTControlPlane> = Api::namespaced(ctx.client.clone(), &render::namespace(cp));
    let body =
        json!({ "spec": { "controlPlaneEndpoint": { "host": want.host, "port": want.port } } });
    let written = api
        .patch(
            &cp.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&body),
        )
        .await?;
    state.control_planes.remember(written);
    let to = format!("{}:{}", want.host, want.port);
    info!(control_plane = %cp.name_any(), endpoint = %to, "set spec.controlPlaneEndpoint from the EKS cluster");
    let (type_, note) = match change {
        EndpointChange::Changed { from } => (
            EventType::Warning,
            format!(
                "spec.controlPlaneEndpoint was {}:{}, but the EKS cluster's endpoint (key cluster_endpoint of its connection secret) is {to}; set it to the EKS endpoint",
                from.host, from.port
            ),
        ),
        _ => (
            EventType::Normal,
            format!("set spec.controlPlaneEndpoint to the EKS cluster's endpoint {to}"),
        ),
    };
    ctx.event(
        cp,
        type_,
        crate::status::events::CONTROL_PLANE_ENDPOINT_SET,
        note,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: i32) -> ApiEndpoint {
        ApiEndpoint {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_endpoint_is_set_once_and_changed_only_when_it_differs() {
        let want = ep("a.example", 443);
        assert_eq!(endpoint_change(None, &want), EndpointChange::Set);
        assert_eq!(
            endpoint_change(Some(&ep("", 0)), &want),
            EndpointChange::Set
        );
        assert_eq!(
            endpoint_change(Some(&want.clone()), &want),
            EndpointChange::Unchanged
        );
        assert_eq!(
            endpoint_change(Some(&ep("a.example", 6443)), &want),
            EndpointChange::Changed {
                from: ep("a.example", 6443)
            }
        );
        assert_eq!(
            endpoint_change(Some(&ep("b.example", 443)), &want),
            EndpointChange::Changed {
                from: ep("b.example", 443)
            }
        );
    }
}
