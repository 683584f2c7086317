//! Pure: whether a kubeconfig Secret is current or must be (re)written, and the
//! `KubeconfigReady` condition that reports it.
//!
//! A Secret is current when this control plane controls it, it has the contract's type and
//! label, it was rendered from today's endpoint, CA, names and region (its source annotation),
//! its `value` is what was written (the cache keeps a digest of it, compared with the digest
//! annotation: a hand edit shows), and its token, if it expires, is not due for refresh. So a
//! converged cluster writes nothing, except the token Secret once per refresh interval
//! (`aws::token::REFRESH_BEFORE_EXPIRY` before its 15 minutes end); a static test token never
//! expires, so tests see zero writes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

use crate::names;
use crate::render::kubeconfig::{
    ANNOTATION_SOURCE, ANNOTATION_TOKEN_EXPIRES, ANNOTATION_VALUE_DIGEST, KEY_VALUE, SECRET_TYPE,
};
use crate::status::conditions::WantedCondition;
use crate::status::reason;

/// Condition type on the control plane: the kubeconfig Secrets are written and current.
pub const KUBECONFIG_READY: &str = "KubeconfigReady";

/// What the kubeconfig step says to the status builder.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeconfigState {
    /// Both Secrets are this control plane's, written and current (for `Available`).
    pub current: bool,
    /// The `KubeconfigReady` condition.
    pub condition: WantedCondition,
}

impl KubeconfigState {
    /// Not current, for `reason` and `message`.
    pub fn not_ready(reason: &str, message: impl Into<String>) -> Self {
        KubeconfigState {
            current: false,
            condition: WantedCondition::new(KUBECONFIG_READY, false, reason, message),
        }
    }

    /// Both Secrets current.
    pub fn ready(token_secret: &str, user_secret: &str) -> Self {
        KubeconfigState {
            current: true,
            condition: WantedCondition::new(
                KUBECONFIG_READY,
                true,
                reason::KUBECONFIG_AVAILABLE,
                format!(
                    "Secret {token_secret} holds a kubeconfig with a token for Cluster API, Secret {user_secret} one with an aws eks get-token entry for people"
                ),
            ),
        }
    }
}

/// Why a Secret is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
    /// It does not exist (never written, or deleted).
    Missing,
    /// Its type, label, source annotation or value is not what was written: edited by hand.
    Edited,
    /// The endpoint, CA, names or region it was rendered from changed.
    SourceChanged,
    /// Its token is due for refresh.
    Refresh,
}

impl WriteReason {
    /// How an event or log says it.
    pub fn describe(self) -> &'static str {
        match self {
            WriteReason::Missing => "it did not exist",
            WriteReason::Edited => "it was changed by someone else",
            WriteReason::SourceChanged => {
                "the EKS cluster's endpoint, CA, name or region it was made from changed"
            }
            WriteReason::Refresh => "its token was due for refresh",
        }
    }
}

/// What to do with one kubeconfig Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretAction {
    /// It is current; a token that expires is looked at again after `refresh_in`.
    Keep {
        /// When its token is due for refresh, if it expires.
        refresh_in: Option<Duration>,
    },
    /// Write it.
    Write(WriteReason),
    /// A Secret of that name exists and is not controlled by this control plane: left alone.
    Foreign,
}

/// Decides for `existing` (as the Secret cache holds it: values replaced by their SHA-256),
/// which control plane `owner_uid` should control, rendered from `source` (its source digest)
/// for Cluster API cluster `cluster`, at `now`. `expected_value` is the digest of the value it
/// should hold when that is known in advance (the user kubeconfig, which has no token).
pub fn secret_action(
    existing: Option<&Secret>,
    owner_uid: &str,
    cluster: &str,
    source: &str,
    expected_value: Option<&str>,
    refresh_before: Duration,
    now: Timestamp,
) -> SecretAction {
    let Some(secret) = existing else {
        return SecretAction::Write(WriteReason::Missing);
    };
    let controlled = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == owner_uid);
    if !controlled {
        return SecretAction::Foreign;
    }
    let annotation = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    };
    let label = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(names::LABEL_CLUSTER_NAME));
    let value_digest = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_VALUE))
        .map(|v| hex(&v.0));
    let written_digest = annotation(ANNOTATION_VALUE_DIGEST);
    if secret.type_.as_deref() != Some(SECRET_TYPE)
        || label.map(String::as_str) != Some(names::label_value(cluster).as_str())
        || written_digest.is_none()
        || value_digest.as_deref() != written_digest
    {
        return SecretAction::Write(WriteReason::Edited);
    }
    if annotation(ANNOTATION_SOURCE) != Some(source)
        || expected_value.is_some_and(|d| Some(d) != written_digest)
    {
        return SecretAction::Write(WriteReason::SourceChanged);
    }
    let Some(expires) = annotation(ANNOTATION_TOKEN_EXPIRES) else {
        return SecretAction::Keep { refresh_in: None };
    };
    // An expiry that does not parse was not written by this operator.
    let Ok(expires) = expires.parse::<Timestamp>() else {
        return SecretAction::Write(WriteReason::Edited);
    };
    let due = expires - refresh_before;
    match Duration::try_from(now.duration_until(due)) {
        Ok(wait) if !wait.is_zero() => SecretAction::Keep {
            refresh_in: Some(wait),
        },
        _ => SecretAction::Write(WriteReason::Refresh),
    }
}

/// The message of a Secret left alone because another object controls it.
pub fn foreign_message(namespace: &str, name: &str, control_plane: &str) -> String {
    format!(
        "Secret {namespace}/{name} exists and is not controlled by CAPTControlPlane {control_plane}; it is left as it is. Delete it (or rename the Cluster) so that the operator can write the kubeconfig"
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::kubeconfig::{digest, secret};
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use sha2::Digest;

    const REFRESH: Duration = Duration::from_secs(300);

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "controlplane.cluster.x-k8s.io/v1beta1".into(),
            kind: "CAPTControlPlane".into(),
            name: "demo".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// A Secret as written, then as the cache holds it (value replaced by its digest).
    fn cached(value: &str, source: &str, expires: Option<&str>) -> Secret {
        let mut s = secret(
            "demo-kubeconfig",
            "ns",
            "demo",
            Some(owner("uid")),
            value.into(),
            source,
            expires,
        );
        for v in s.data.iter_mut().flat_map(|d| d.values_mut()) {
            *v = ByteString(sha2::Sha256::digest(&v.0).to_vec());
        }
        s
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn decide(existing: Option<&Secret>, expected: Option<&str>, now: &str) -> SecretAction {
        secret_action(existing, "uid", "demo", "src", expected, REFRESH, at(now))
    }

    #[test]
    fn a_missing_secret_is_written() {
        assert_eq!(
            decide(None, None, "2026-11-30T12:00:00Z"),
            SecretAction::Write(WriteReason::Missing)
        );
    }

    #[test]
    fn a_token_is_kept_until_five_minutes_before_it_expires() {
        let s = cached("v", "src", Some("2026-11-30T12:15:00Z"));
        assert_eq!(
            decide(Some(&s), None, "2026-11-30T12:00:00Z"),
            SecretAction::Keep {
                refresh_in: Some(Duration::from_secs(600))
            }
        );
        assert_eq!(
            decide(Some(&s), None, "2026-11-30T12:10:00Z"),
            SecretAction::Write(WriteReason::Refresh)
        );
        assert_eq!(
            decide(Some(&s), None, "2026-11-30T13:00:00Z"),
            SecretAction::Write(WriteReason::Refresh)
        );
    }

    #[test]
    fn a_token_that_does_not_expire_is_kept() {
        let s = cached("v", "src", None);
        assert_eq!(
            decide(Some(&s), None, "2030-01-01T00:00:00Z"),
            SecretAction::Keep { refresh_in: None }
        );
    }

    #[test]
    fn a_changed_source_or_expected_value_rewrites() {
        let s = cached("v", "old", None);
        assert_eq!(
            decide(Some(&s), None, "2026-11-30T12:00:00Z"),
            SecretAction::Write(WriteReason::SourceChanged)
        );
        let s = cached("v", "src", None);
        assert_eq!(
            decide(Some(&s), Some(&digest(b"v")), "2026-11-30T12:00:00Z"),
            SecretAction::Keep { refresh_in: None }
        );
        assert_eq!(
            decide(Some(&s), Some(&digest(b"w")), "2026-11-30T12:00:00Z"),
            SecretAction::Write(WriteReason::SourceChanged)
        );
    }

    #[test]
    fn hand_edits_are_seen() {
        let now = "2026-11-30T12:00:00Z";
        let mut edited_value = cached("v", "src", None);
        edited_value.data.as_mut().unwrap().insert(
            KEY_VALUE.into(),
            ByteString(sha2::Sha256::digest(b"other").to_vec()),
        );
        let mut no_value = cached("v", "src", None);
        no_value.data = None;
        let mut relabelled = cached("v", "src", None);
        relabelled.metadata.labels = None;
        let mut retyped = cached("v", "src", None);
        retyped.type_ = Some("Opaque".into());
        let mut bad_expiry = cached("v", "src", Some("soon"));
        bad_expiry
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove("none");
        for s in [edited_value, no_value, relabelled, retyped, bad_expiry] {
            assert_eq!(
                decide(Some(&s), None, now),
                SecretAction::Write(WriteReason::Edited),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_secret_someone_else_controls_is_foreign() {
        let now = "2026-11-30T12:00:00Z";
        let mut theirs = cached("v", "src", None);
        theirs.metadata.owner_references = Some(vec![owner("other")]);
        assert_eq!(decide(Some(&theirs), None, now), SecretAction::Foreign);
        let mut not_controller = cached("v", "src", None);
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert_eq!(
            decide(Some(&not_controller), None, now),
            SecretAction::Foreign
        );
        let mut unowned = cached("v", "src", None);
        unowned.metadata.owner_references = None;
        assert_eq!(decide(Some(&unowned), None, now), SecretAction::Foreign);
        assert!(foreign_message("ns", "demo-kubeconfig", "demo").contains("not controlled"));
    }
}
