//! Which keys the connection secrets hold.
//!
//! The shared Secret watch keeps key names only (see `shared`), so a secret in the operator's
//! scope is checked without a request; one outside it (another namespace than the operator's)
//! is read directly. Values are never kept, logged or put into messages.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::Result;
use crate::runtime::shared::SecretCache;

/// A secret to check: where it is and the keys it must have.
pub struct Required<'a> {
    /// The Secret's namespace.
    pub namespace: &'a str,
    /// The Secret's name.
    pub name: &'a str,
    /// Key names it must hold (values are never read).
    pub keys: &'a [String],
}

/// What is missing of `required`, or None when the secret has every key. `watched` holds the
/// secrets in the operator's scope (`in_scope`: whether the secret's namespace is in it).
pub async fn missing(
    client: &Client,
    watched: &SecretCache,
    in_scope: bool,
    required: Required<'_>,
) -> Result<Option<String>> {
    let Required {
        namespace,
        name,
        keys,
    } = required;
    let secret = if in_scope {
        watched.get_named(Some(namespace), name)
    } else {
        Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(std::sync::Arc::new)
    };
    let Some(secret) = secret else {
        return Ok(Some(format!("secret {namespace}/{name} does not exist")));
    };
    let present: BTreeSet<String> = secret.data.iter().flat_map(|d| d.keys().cloned()).collect();
    Ok(describe_missing(namespace, name, keys, &present))
}

/// The message for the keys of `keys` absent from `present`, or None.
fn describe_missing(
    namespace: &str,
    name: &str,
    keys: &[String],
    present: &BTreeSet<String>,
) -> Option<String> {
    let absent: Vec<&str> = keys
        .iter()
        .filter(|k| !present.contains(*k))
        .map(String::as_str)
        .collect();
    (!absent.is_empty())
        .then(|| format!("secret {namespace}/{name} lacks keys {}", absent.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::describe_missing;

    #[test]
    fn names_only_the_absent_keys() {
        let present = ["a".to_string(), "c".to_string()].into();
        let keys = ["a".to_string(), "b".to_string(), "d".to_string()];
        assert_eq!(
            describe_missing("ns", "s", &keys, &present).as_deref(),
            Some("secret ns/s lacks keys b, d")
        );
        assert_eq!(describe_missing("ns", "s", &keys[..1], &present), None);
    }
}
