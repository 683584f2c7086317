//! Step 1 of a control plane's reconcile: what the caches hold about it (its applies and the
//! Secrets its kubeconfig step reads), read once into one [`Observed`] value. No request is made here, except [`missing_secrets`], which the plan asks
//! for only when a profile is about to be created (a secret outside the operator's scope is
//! read from the API server).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::State;
use crate::api::{CAPTControlPlane, WorkspaceTemplateApply};
use crate::controller::secrets::{self, Required};
use crate::error::Result;
use crate::names;
use crate::render::{self, eks, fargate, kubeconfig};
use crate::runtime::index;
use crate::status::apply::{ChildState, child_state};
use crate::status::profiles::ObservedProfile;
use crate::status::reason;

/// A control plane's children as the caches hold them.
#[derive(Clone, Debug, Default)]
pub(super) struct Observed {
    /// The name of its EKS cluster apply (`<cp>-eks-controlplane-apply` unless set).
    pub eks_name: String,
    /// Its EKS cluster apply, if there is one.
    pub eks: Option<Arc<WorkspaceTemplateApply>>,
    /// The profile applies it owns (component label `fargate-profile`, same namespace).
    pub profile_applies: Vec<Arc<WorkspaceTemplateApply>>,
    /// The same applies as the plan sees them, in the same order.
    pub profiles: Vec<ObservedProfile>,
    /// The Secrets the kubeconfig step reads.
    pub kubeconfig: KubeconfigSecrets,
}

/// The Secrets the kubeconfig step (`kubeconfig`) reads, as the Secret cache holds them (key
/// names and value digests, and the public values of the connection secret).
#[derive(Clone, Debug, Default)]
pub(super) struct KubeconfigSecrets {
    /// The EKS cluster's connection secret `<cp>-eks-connection`.
    pub connection: Option<Arc<Secret>>,
    /// The token kubeconfig `<cluster>-kubeconfig`.
    pub token: Option<Arc<Secret>>,
    /// The user kubeconfig `<cluster>-user-kubeconfig`.
    pub user: Option<Arc<Secret>>,
}

/// The state of an EKS apply (None: not there yet, so being created).
pub(super) fn eks_state(eks: Option<&WorkspaceTemplateApply>) -> ChildState {
    match eks {
        Some(a) => child_state(a),
        None => ChildState::Creating {
            reason: reason::CREATING.into(),
            message: String::new(),
        },
    }
}

/// Reads `cp`'s children from the caches of `state`.
pub(super) fn observe(cp: &CAPTControlPlane, state: &State) -> Observed {
    let eks_name = eks::apply_name(cp);
    let eks = state
        .applies
        .get_named(Some(&render::namespace(cp)), &eks_name);
    let profile_applies = owned_profile_applies(cp, state);
    let profiles = profile_applies.iter().map(|a| observed(a)).collect();
    Observed {
        eks_name,
        eks,
        profile_applies,
        profiles,
        kubeconfig: kubeconfig_secrets(cp, state),
    }
}

/// The EKS connection secret and the kubeconfig Secrets of `cp`, from the Secret cache.
fn kubeconfig_secrets(cp: &CAPTControlPlane, state: &State) -> KubeconfigSecrets {
    let ns = render::namespace(cp);
    let secret = |name: &str| state.secrets.get_named(Some(&ns), name);
    let cluster = render::cluster_name(cp);
    KubeconfigSecrets {
        connection: secret(&names::eks_connection_secret(&cp.name_any())),
        token: secret(&kubeconfig::secret_name(&cluster)),
        user: secret(&kubeconfig::user_secret_name(&cluster)),
    }
}

/// The profile applies owned by `cp`.
fn owned_profile_applies(cp: &CAPTControlPlane, state: &State) -> Vec<Arc<WorkspaceTemplateApply>> {
    let (Some(ns), Some(uid)) = (cp.metadata.namespace.as_deref(), cp.metadata.uid.as_deref())
    else {
        return Vec::new();
    };
    let component = Some(names::COMPONENT_FARGATE_PROFILE);
    let mut owned = state.applies.indexed(&index::owner(uid));
    owned.retain(|a| {
        a.metadata.namespace.as_deref() == Some(ns)
            && a.labels().get(names::LABEL_COMPONENT).map(String::as_str) == component
    });
    owned
}

/// A profile apply as the plan sees it: its profile, name, immutable hash and state.
fn observed(apply: &WorkspaceTemplateApply) -> ObservedProfile {
    let annotation = |key: &str| apply.annotations().get(key).cloned().unwrap_or_default();
    ObservedProfile {
        profile: annotation(names::ANNOTATION_PROFILE_NAME),
        apply_name: apply.name_any(),
        hash: annotation(names::ANNOTATION_PROFILE_HASH),
        state: child_state(apply),
    }
}

/// What the EKS and VPC connection secrets lack of the keys the profile workspaces read, one
/// message per secret (empty: both are complete). Secrets in the operator's scope come from
/// the cache; one outside it is read (`controller::secrets`).
pub(super) async fn missing_secrets(cp: &CAPTControlPlane, state: &State) -> Result<Vec<String>> {
    let eks = (
        render::namespace(cp),
        names::eks_connection_secret(&cp.name_any()),
        fargate::EKS_SECRET_KEYS,
    );
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    missing_of(state, [eks, (vpc_ns, vpc_name, eks::VPC_SECRET_KEYS)]).await
}

/// What the VPC connection secret lacks of the keys the EKS workspace reads (empty: it is
/// complete), as [`missing_secrets`] says it.
pub(super) async fn missing_vpc_secret(
    cp: &CAPTControlPlane,
    state: &State,
) -> Result<Vec<String>> {
    let (vpc_ns, vpc_name) = eks::vpc_secret(cp);
    missing_of(state, [(vpc_ns, vpc_name, eks::VPC_SECRET_KEYS)]).await
}

/// What each of `required` (namespace, name, keys) lacks, one message per secret.
async fn missing_of<const N: usize>(
    state: &State,
    required: [(String, String, &[&str]); N],
) -> Result<Vec<String>> {
    let ctx = &state.ctx;
    let mut missing = Vec::new();
    for (ns, name, keys) in required {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        let required = Required {
            namespace: &ns,
            name: &name,
            keys: &keys,
        };
        missing.extend(
            secrets::missing(&ctx.client, &state.secrets, ctx.in_scope(&ns), required).await?,
        );
    }
    Ok(missing)
}
