//! Which Secrets a Workspace reads (pure): what the guard protects, and the keys it indexes
//! Workspaces by.

use kube::ResourceExt;

use crate::api::Workspace;
use crate::names;
use crate::runtime::index;

/// The Secrets (namespace, name) a Workspace reads: its var files' and its environment's
/// Secret references, sorted, without duplicates.
pub fn secrets_read(ws: &Workspace) -> Vec<(String, String)> {
    let fp = &ws.spec.for_provider;
    let var_files = fp
        .var_files
        .iter()
        .flatten()
        .filter_map(|f| f.secret_key_ref.as_ref())
        .map(|r| (r.namespace.clone(), r.name.clone()));
    // `env[].secretKeyRef` is not typed here (`extra`); it names a Secret the same way.
    let env = fp
        .extra
        .get("env")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let r = e.get("secretKeyRef")?;
            Some((
                r.get("namespace")?.as_str()?.to_string(),
                r.get("name")?.as_str()?.to_string(),
            ))
        });
    let mut read: Vec<_> = var_files.chain(env).collect();
    read.sort();
    read.dedup();
    read
}

/// Index keys of a Workspace in the Workspace cache: the Secrets it reads, for Workspaces this
/// operator created (labelled with their apply's uid) only.
pub fn workspace_index_keys(ws: &Workspace) -> Vec<String> {
    if !ws.labels().contains_key(names::LABEL_APPLY_UID) {
        return Vec::new();
    }
    secrets_read(ws)
        .iter()
        .map(|(ns, name)| index::secret(ns, name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace::{KeyReference, VarFile};
    use serde_json::json;

    fn var_file(ns: &str, name: &str) -> VarFile {
        VarFile {
            source: "SecretKey".into(),
            format: Some("JSON".into()),
            secret_key_ref: Some(KeyReference {
                namespace: ns.into(),
                name: name.into(),
                key: "k".into(),
            }),
            config_map_key_ref: None,
        }
    }

    fn workspace(labelled: bool) -> Workspace {
        let mut ws: Workspace = serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": { "name": "w" },
            "spec": { "forProvider": { "source": "Inline", "module": "",
                "env": [
                    { "name": "A", "secretKeyRef": { "namespace": "ns", "name": "creds", "key": "a" } },
                    { "name": "B", "value": "plain" }
                ] } }
        }))
        .unwrap();
        ws.spec.for_provider.var_files = Some(vec![
            var_file("ns", "vpc"),
            var_file("ns", "eks"),
            var_file("ns", "vpc"),
        ]);
        if labelled {
            ws.metadata.labels = Some([(names::LABEL_APPLY_UID.to_string(), "u".into())].into());
        }
        ws
    }

    #[test]
    fn a_workspace_reads_its_var_file_and_env_secrets_once_each() {
        let pair = |n: &str| ("ns".to_string(), n.to_string());
        assert_eq!(
            secrets_read(&workspace(false)),
            [pair("creds"), pair("eks"), pair("vpc")]
        );
    }

    #[test]
    fn only_the_operators_workspaces_are_indexed() {
        assert!(workspace_index_keys(&workspace(false)).is_empty());
        assert_eq!(
            workspace_index_keys(&workspace(true)),
            ["secret:ns/creds", "secret:ns/eks", "secret:ns/vpc"]
        );
    }
}
