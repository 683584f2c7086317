//! Finalizer patches. kube-runtime's `finalizer()` helper is not used: it wraps a whole
//! reconcile in its own event type and writes with a JSON patch test-and-replace, while these
//! controllers decide cleanup themselves, remember the written object in their cache
//! (read-your-writes) and guard against a concurrent change with the resourceVersion.

use std::sync::Arc;

use kube::api::Patch;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::cache;
use super::packed::Backing;
use super::write::patch_params;
use crate::error::{Error, Result};

/// Adds `finalizer` to `obj` if missing and returns the newest `obj`: the one written, which
/// `cache` then remembers, or `obj` itself. The resourceVersion in the patch makes a concurrent
/// change fail with a conflict (retried) instead of dropping someone else's finalizer.
pub async fn ensure_finalizer<K, B: Backing<K>>(
    api: &Api<K>,
    cache: &cache::Cache<K, B>,
    obj: Arc<K>,
    finalizer: &str,
) -> Result<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(obj);
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(finalizer.to_string());
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    let written = api
        .patch(&obj.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    cache.remember(written.clone());
    Ok(Arc::new(written))
}

/// Removes `finalizer` from `obj` once its cleanup is complete.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    if !obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let finalizers: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() } });
    match api
        .patch(&obj.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}
