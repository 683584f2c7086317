//! What the apply controller's Workspace cache keeps of each Workspace, and the digest of
//! what an apply reads of one (which decides whether a Workspace event wakes its apply).

use kube::api::ObjectMeta;

use crate::api::Workspace;
use crate::names;
use crate::runtime::packed::{Packing, identity};
use crate::runtime::version;

/// What a packed cached Workspace keeps decoded besides its name and versions: the pause
/// annotation of a handed-over Workspace, which the release sweep filters by
/// (`release::sweep`, over every cached Workspace).
pub const WORKSPACE_PACKING: Packing = Packing {
    meta: |meta| ObjectMeta {
        annotations: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get_key_value(names::WORKSPACE_PAUSED_ANNOTATION))
            .map(|(k, v)| [(k.clone(), v.clone())].into()),
        ..identity(meta)
    },
};

/// Cached Workspaces keep what the operator reads: the spec it compares (the module, and each
/// list or object of `varmap`, as a digest: [`fingerprint_module`], `runtime::digest`), the
/// conditions it reports and the outputs an apply reports (`status.outputs`, which give the
/// control plane its `status.version`); not the provider's checksum, nor the annotations
/// crossplane-runtime keeps (`crossplane.io/…`) except its pause, which the pause of an apply
/// reads (`handover`).
pub fn trim_workspace(ws: &mut Workspace) {
    fingerprint_module(ws);
    if let Some(varmap) = ws.spec.for_provider.varmap.as_mut() {
        crate::runtime::digest::containers(varmap);
    }
    if let Some(a) = ws.metadata.annotations.as_mut() {
        a.retain(|k, _| {
            !k.starts_with("crossplane.io/") || k == names::CROSSPLANE_PAUSED_ANNOTATION
        });
    }
    if let Some(at_provider) = ws.status.as_mut().and_then(|s| s.at_provider.as_mut()) {
        at_provider.checksum = None;
    }
}

/// Cached Workspaces keep a digest of their Terraform module instead of its text: the cache
/// only compares it, and 1,000s of modules would dominate the operator's memory.
fn fingerprint_module(ws: &mut Workspace) {
    let module = &mut ws.spec.for_provider.module;
    if !module.starts_with(MODULE_DIGEST) {
        *module = format!("{MODULE_DIGEST}{}", names::short_hash(module, 64));
    }
}

/// Digest of what an apply reads of its Workspace: its generation (which every spec change
/// moves), lifecycle metadata and status; not the version fields.
pub(super) fn workspace_digest(ws: &Workspace) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    version::spec_or_lifecycle(ws).hash(&mut hasher);
    version::hash_serialized(&ws.status, &mut hasher);
    hasher.finish()
}

/// Prefix of a fingerprinted module (not valid HCL, so never mistaken for a module).
const MODULE_DIGEST: &str = "sha256:";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Workspace;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn cached_workspaces_keep_a_module_digest_conditions_and_outputs() {
        let mut ws: Workspace = serde_json::from_value(json!({
            "apiVersion": "tf.upbound.io/v1beta1",
            "kind": "Workspace",
            "metadata": { "name": "ws", "generation": 2, "annotations": {
                "crossplane.io/external-name": "ws",
                "crossplane.io/external-create-succeeded": "2026-01-01T00:00:00Z",
                "crossplane.io/paused": "true",
                "fargate.capt.cluster.x-k8s.io/paused-for-cluster": "",
            } },
            "spec": { "forProvider": { "source": "Inline", "module": "resource \"x\" \"y\" {}" } },
            "status": {
                "atProvider": { "outputs": { "cluster_name": "c" }, "checksum": "abc" },
                "conditions": [{ "type": "Ready", "status": "True", "reason": "Available",
                                 "lastTransitionTime": "2026-01-01T00:00:00Z" }]
            }
        }))
        .expect("a Workspace");
        let mut again = ws.clone();
        trim_workspace(&mut ws);
        let module = &ws.spec.for_provider.module;
        assert!(module.starts_with(MODULE_DIGEST) && !module.contains("resource"));
        let status = ws.status.as_ref().expect("status kept");
        let at_provider = status.at_provider.as_ref().expect("outputs kept");
        assert_eq!(at_provider.checksum, None);
        assert_eq!(at_provider.outputs.as_ref().map(|o| o.len()), Some(1));
        assert_eq!(status.conditions.len(), 1);
        // Of crossplane's annotations only the pause, which the pause of an apply reads.
        let kept: Vec<&String> = ws.annotations().keys().collect();
        assert_eq!(
            kept,
            [
                "crossplane.io/paused",
                "fargate.capt.cluster.x-k8s.io/paused-for-cluster"
            ]
        );
        // Trimming is idempotent: a desired object trimmed for comparison matches the cache.
        trim_workspace(&mut again);
        trim_workspace(&mut again);
        let json = |w: &Workspace| serde_json::to_value(w).expect("serializes");
        assert_eq!(json(&again), json(&ws));
        // Packed for the cache, it reads back the same, and keeps only the Workspace's pause
        // decoded for the release sweep.
        let packed = crate::runtime::packed::Packed::pack(&ws, WORKSPACE_PACKING).expect("packs");
        assert_eq!(json(&packed.unpack().expect("unpacks")), json(&ws));
        let meta = kube::Resource::meta(&packed);
        assert_eq!(meta.name.as_deref(), Some("ws"));
        assert!(meta.labels.is_none());
        let paused: Vec<&String> = meta.annotations.iter().flat_map(|a| a.keys()).collect();
        assert_eq!(paused, [names::WORKSPACE_PAUSED_ANNOTATION]);
    }
}
