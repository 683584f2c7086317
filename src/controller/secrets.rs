//! Which keys the connection secrets hold, read once per secret version.
//!
//! The controllers watch Secrets as metadata only (values never enter the process's caches);
//! the key names of a secret are read with one GET when its resourceVersion changes. Values
//! are never kept, logged or put into messages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::{Api, Client, ResourceExt};

use super::cache::Cache;
use crate::error::Result;

/// Key names per secret, with the resourceVersion they were read at.
#[derive(Default)]
pub struct SecretKeys {
    known: Mutex<HashMap<(String, String), (String, BTreeSet<String>)>>,
}

/// A secret to check: where it is and the keys it must have.
pub struct Required<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub keys: &'a [String],
}

impl SecretKeys {
    /// What is missing of `required`, or None when the secret has every key. `watched` holds
    /// the secrets' metadata; a secret outside it (another namespace than the operator's) is
    /// read directly.
    pub async fn missing(
        &self,
        client: &Client,
        watched: &Cache<PartialObjectMeta<Secret>>,
        in_scope: bool,
        required: Required<'_>,
    ) -> Result<Option<String>> {
        let Required {
            namespace,
            name,
            keys,
        } = required;
        let key = (namespace.to_string(), name.to_string());
        let version = if in_scope {
            let Some(meta) = watched.get_named(Some(namespace), name) else {
                return Ok(Some(format!("secret {namespace}/{name} does not exist")));
            };
            let version = meta.resource_version().unwrap_or_default();
            let known = self
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .filter(|(v, _)| *v == version)
                .map(|(_, k)| k.clone());
            if let Some(present) = known {
                return Ok(describe_missing(namespace, name, keys, &present));
            }
            Some(version)
        } else {
            None
        };
        let Some(secret) = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
        else {
            return Ok(Some(format!("secret {namespace}/{name} does not exist")));
        };
        let present: BTreeSet<String> = secret.data.unwrap_or_default().into_keys().collect();
        let message = describe_missing(namespace, name, keys, &present);
        if version.is_some() {
            let read_at = secret.metadata.resource_version.unwrap_or_default();
            self.known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (read_at, present));
        }
        Ok(message)
    }
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
