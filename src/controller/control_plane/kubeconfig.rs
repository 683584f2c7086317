//! The step that keeps what Cluster API needs from the EKS cluster's connection secret:
//! `spec.controlPlaneEndpoint` (`endpoint`), the `<cluster>-kubeconfig` Secret (a bearer
//! token, no exec plugin) and `<cluster>-user-kubeconfig` (an `aws eks get-token` exec entry).
//!
//! The cluster name is the control plane's `cluster.x-k8s.io/cluster-name` label (Cluster API
//! sets it), else its owning Cluster, else its own name (`render::cluster_name`). Both Secrets
//! are in the control plane's namespace (a Cluster's control plane is in the Cluster's).
//! Decisions are pure (`status::kubeconfig`, `render::kubeconfig`); the Secrets come observed
//! (`observe`); this module mints the token and writes. Secret values are never logged.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};
use tracing::warn;

use super::kubeconfig_write::SecretWriter;
use super::observe::KubeconfigSecrets;
use super::{CONTROLLER, State, endpoint};
use crate::api::CAPTControlPlane;
use crate::aws::token::{REFRESH_BEFORE_EXPIRY, TokenError, TokenRequest};
use crate::error::Result;
use crate::names;
use crate::render::{self, kubeconfig as kc};
use crate::status::kubeconfig::{KubeconfigState, SecretAction, foreign_message, secret_action};
use crate::status::reason;

/// How soon a token that could not be minted for a transient reason is tried again.
const TOKEN_RETRY: Duration = Duration::from_secs(30);
/// How soon the operator looks again for AWS credentials it does not have (they come with a
/// restart or a mounted web identity token; nothing else wakes it).
const NO_CREDENTIALS_RETRY: Duration = Duration::from_secs(300);

/// The outcome of the step: the state for the status, and when to look again (a token's
/// refresh, or a retry).
pub(super) struct Outcome {
    /// For the status builder.
    pub state: KubeconfigState,
    /// When to reconcile again, if a time (not a watch event) calls for it.
    pub requeue: Option<Duration>,
}

impl Outcome {
    fn waiting(state: KubeconfigState) -> Self {
        Outcome {
            state,
            requeue: None,
        }
    }
}

/// The Secrets `cp` keeps (token kubeconfig, user kubeconfig) and the connection secret it
/// reads, as `(namespace, name)`, for the Secret watch's index.
pub(super) fn secrets_of(cp: &CAPTControlPlane) -> [(String, String); 2] {
    let ns = render::namespace(cp);
    let cluster = render::cluster_name(cp);
    [
        (ns.clone(), kc::secret_name(&cluster)),
        (ns, kc::user_secret_name(&cluster)),
    ]
}

/// Keeps the endpoint and both kubeconfig Secrets of `cp` current.
/// `secrets` are the Secrets it reads, as observed (`observe`).
pub(super) async fn reconcile(
    cp: &CAPTControlPlane,
    state: &State,
    secrets: &KubeconfigSecrets,
) -> Result<Outcome> {
    let ns = render::namespace(cp);
    let connection_name = names::eks_connection_secret(&cp.name_any());
    let Some(connection_secret) = secrets.connection.as_deref() else {
        return Ok(Outcome::waiting(KubeconfigState::not_ready(
            reason::WAITING_FOR_CONNECTION,
            format!("waiting for the EKS cluster's connection secret {ns}/{connection_name}"),
        )));
    };
    let empty = Default::default();
    let data = connection_secret.data.as_ref().unwrap_or(&empty);
    let conn = match kc::connection(data, &cp.name_any()) {
        Ok(conn) => conn,
        Err(error) => {
            // The secret's next change wakes this control plane; nothing to retry before.
            return Ok(Outcome::waiting(KubeconfigState::not_ready(
                reason::INVALID_CONNECTION,
                format!("secret {ns}/{connection_name}: {error}"),
            )));
        }
    };
    endpoint::ensure(cp, state, &conn.endpoint.api_endpoint()).await?;

    let region = cp
        .spec
        .control_plane_config
        .as_ref()
        .map(|c| c.region.clone())
        .unwrap_or_default();
    if region.is_empty() {
        return Ok(Outcome::waiting(KubeconfigState::not_ready(
            reason::REGION_NOT_SET,
            "spec.controlPlaneConfig.region is not set: the kubeconfig's token is signed for STS in the cluster's region",
        )));
    }
    keep_secrets(cp, state, secrets, &conn, &region).await
}

/// Keeps both kubeconfig Secrets of `cp` current for the EKS cluster `conn` in `region`.
async fn keep_secrets(
    cp: &CAPTControlPlane,
    state: &State,
    secrets: &KubeconfigSecrets,
    conn: &kc::Connection,
    region: &str,
) -> Result<Outcome> {
    let ns = render::namespace(cp);
    let cluster = render::cluster_name(cp);
    let uid = cp.uid().unwrap_or_default();
    let source = kc::source_digest(&cluster, conn, region);
    let now = Timestamp::now();
    let user_value = kc::render(&cluster, conn, &kc::Credential::AwsCli { region });
    let decide = |existing: Option<&Arc<Secret>>, expected: Option<&str>| {
        secret_action(
            existing.map(|s| s.as_ref()),
            &uid,
            &cluster,
            &source,
            expected,
            REFRESH_BEFORE_EXPIRY,
            now,
        )
    };
    let token_action = decide(secrets.token.as_ref(), None);
    let user_digest = kc::digest(user_value.as_bytes());
    let user_action = decide(secrets.user.as_ref(), Some(&user_digest));

    // The token first: without one, no kubeconfig is written at all.
    let mut token_secret = None;
    if let SecretAction::Write(why) = token_action {
        match mint(state, conn, region, &cluster).await {
            Ok((value, expires)) => token_secret = Some((why, value, expires)),
            Err(error) => return Ok(token_failure(cp, state, error)),
        }
    }

    let writer = SecretWriter {
        cp,
        state,
        api: Api::namespaced(state.ctx.client.clone(), &ns),
        ns: &ns,
        cluster: &cluster,
        source: &source,
    };
    let token_name = kc::secret_name(&cluster);
    let user_name = kc::user_secret_name(&cluster);
    let mut refresh = None;
    let mut conflicts = Vec::new();
    match (token_action, token_secret) {
        (SecretAction::Write(_), Some((why, value, expires))) => {
            let expires_text = expires.map(|t| t.to_string());
            let (existing, text) = (secrets.token.as_deref(), expires_text.as_deref());
            writer
                .write(&token_name, value, text, existing, why)
                .await?;
            refresh = refresh_after(now, expires);
        }
        (SecretAction::Keep { refresh_in }, _) => refresh = refresh_in,
        (SecretAction::Foreign, _) => {
            conflicts.push(foreign_message(&ns, &token_name, &cp.name_any()))
        }
        (SecretAction::Write(_), None) => unreachable!("a token was minted for every write"),
    }
    match user_action {
        SecretAction::Write(why) => {
            let existing = secrets.user.as_deref();
            writer
                .write(&user_name, user_value, None, existing, why)
                .await?;
        }
        SecretAction::Keep { .. } => {}
        SecretAction::Foreign => conflicts.push(foreign_message(&ns, &user_name, &cp.name_any())),
    }
    Ok(Outcome {
        state: kubeconfig_state(&ns, &token_name, &user_name, &conflicts),
        requeue: refresh,
    })
}

/// The kubeconfig state once both Secrets were looked after: ready, or the Secrets whose names
/// others' Secrets hold (`conflicts`, one message each).
fn kubeconfig_state(
    ns: &str,
    token_name: &str,
    user_name: &str,
    conflicts: &[String],
) -> KubeconfigState {
    if conflicts.is_empty() {
        KubeconfigState::ready(&format!("{ns}/{token_name}"), &format!("{ns}/{user_name}"))
    } else {
        KubeconfigState::not_ready(reason::KUBECONFIG_SECRET_CONFLICT, conflicts.join("; "))
    }
}

/// How long after `now` a token that expires at `expires` is refreshed.
fn refresh_after(now: Timestamp, expires: Option<Timestamp>) -> Option<Duration> {
    expires
        .and_then(|t| Duration::try_from(now.duration_until(t)).ok())
        .map(|d| d.saturating_sub(REFRESH_BEFORE_EXPIRY))
}

/// A token kubeconfig for the EKS cluster `conn` in `region` (`cluster`: the Cluster API
/// cluster name) with a freshly minted token, and when the token expires.
async fn mint(
    state: &State,
    conn: &kc::Connection,
    region: &str,
    cluster: &str,
) -> std::result::Result<(String, Option<Timestamp>), TokenError> {
    let request = TokenRequest {
        eks_cluster: &conn.eks_cluster,
        region,
    };
    let token = state.ctx.token_source.token(request).await?;
    let value = kc::render(cluster, conn, &kc::Credential::Token(&token.value));
    let expires = token.expires.and_then(|at| Timestamp::try_from(at).ok());
    Ok((value, expires))
}

/// The outcome when no token could be had: nothing is written, the condition says why.
fn token_failure(cp: &CAPTControlPlane, state: &State, error: TokenError) -> Outcome {
    state.ctx.metrics.failure(CONTROLLER, "token");
    warn!(control_plane = %cp.name_any(), %error, "cannot mint the kubeconfig token");
    let (why, retry) = if error.is_no_credentials() {
        (reason::NO_CREDENTIALS, NO_CREDENTIALS_RETRY)
    } else {
        (reason::TOKEN_ERROR, TOKEN_RETRY)
    };
    Outcome {
        state: KubeconfigState::not_ready(why, format!("no kubeconfig Secret is written: {error}")),
        requeue: Some(retry),
    }
}
