//! Writes a control plane's kubeconfig Secrets (`kubeconfig` decides what and when): a create,
//! or a merge patch of labels, annotations and the value at the version read; an Event for
//! every write people would want to know of. Secret values are never logged.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::State;
use crate::api::CAPTControlPlane;
use crate::error::Result;
use crate::names::FIELD_MANAGER;
use crate::render::{self, kubeconfig as kc};
use crate::status::kubeconfig::WriteReason;

/// What both kubeconfig Secrets of one control plane are written with.
pub(super) struct SecretWriter<'a> {
    pub(super) cp: &'a CAPTControlPlane,
    pub(super) state: &'a State,
    pub(super) api: Api<Secret>,
    pub(super) ns: &'a str,
    pub(super) cluster: &'a str,
    /// The digest of what the Secrets are rendered from (`kc::source_digest`).
    pub(super) source: &'a str,
}

impl SecretWriter<'_> {
    /// Writes the kubeconfig Secret `name` holding `value` (a token's expiry `expires`, RFC 3339)
    /// over `existing`, for the reason `why`.
    pub(super) async fn write(
        &self,
        name: &str,
        value: String,
        expires: Option<&str>,
        existing: Option<&Secret>,
        why: WriteReason,
    ) -> Result<()> {
        let owner = render::controller_owner_ref(self.cp);
        let desired = kc::secret(
            name,
            self.ns,
            self.cluster,
            owner,
            value,
            self.source,
            expires,
        );
        write(self.cp, self.state, &self.api, desired, existing, why).await
    }
}

/// Creates `desired`, or merge-patches `existing` (at the version read) to it: labels,
/// annotations and `value` (the type of a Secret cannot change, and others' keys and
/// metadata are kept). Remembers the result in the Secret cache (values as digests).
async fn write(
    cp: &CAPTControlPlane,
    state: &State,
    api: &Api<Secret>,
    desired: Secret,
    existing: Option<&Secret>,
    why: WriteReason,
) -> Result<()> {
    let name = desired.name_any();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let written = match existing {
        None => {
            let post = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            api.create(&post, &desired).await?
        }
        Some(existing) => {
            let value = desired
                .data
                .as_ref()
                .and_then(|d| d.get(kc::KEY_VALUE))
                .cloned()
                .unwrap_or(ByteString(Vec::new()));
            let body = json!({
                "metadata": {
                    "resourceVersion": existing.resource_version(),
                    "labels": desired.metadata.labels,
                    "annotations": desired.metadata.annotations,
                },
                "data": { kc::KEY_VALUE: value },
            });
            api.patch(&name, &params, &Patch::Merge(&body)).await?
        }
    };
    state.secrets.remember(written);
    info!(control_plane = %cp.name_any(), secret = %name, reason = why.describe(), "wrote kubeconfig Secret");
    // A refresh is routine and frequent: logged only. The rest says what happened to a Secret
    // people rely on.
    if why != WriteReason::Refresh {
        let note = match why {
            WriteReason::Missing if existing.is_none() => {
                format!("wrote kubeconfig Secret {name}")
            }
            _ => format!("rewrote kubeconfig Secret {name}: {}", why.describe()),
        };
        state
            .ctx
            .event(
                cp,
                EventType::Normal,
                crate::status::events::KUBECONFIG_WRITTEN,
                note,
            )
            .await;
    }
    Ok(())
}
