//! Which version of an object a reconcile or a comparison depends on: hashes of the parts a
//! controller reads, so that status-only changes wake nobody and a verified comparison is not
//! repeated.
//!
//! Builds on kube-runtime's `predicate_filter` (for a controller's own objects, which kube
//! delivers as applied objects only) and replaces its `predicates::generation`: metadata the
//! renderers read (labels, annotations, owners, finalizers, deletion) does not move the
//! generation, so a generation-only predicate would miss those changes. Do not use
//! `predicate_filter` for watches whose deletions matter: it drops a deletion whose hash
//! matches the last version seen (use `echo::Changes`, which lets every deletion pass).

use kube::Resource;

/// The version of an object that a comparison with a desired object depends on. Desired
/// objects carry metadata and a spec, never a status, and a custom resource's generation moves
/// with every change outside its metadata and status: so the generation and the metadata a
/// desired object can set, not the resourceVersion, which every status write of the child's
/// controller moves too. Kinds without a generation fall back to the resourceVersion.
pub(crate) fn compared_version<K: Resource>(obj: &K) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let meta = obj.meta();
    if meta.generation.is_some() {
        // What the predicate of a controller's own objects hashes, for the same reason.
        return spec_or_lifecycle(obj).unwrap_or_default();
    }
    let mut hasher = DefaultHasher::new();
    (&meta.uid, &meta.resource_version).hash(&mut hasher);
    hasher.finish()
}

/// Orders two resourceVersions of objects of the same resource, as Kubernetes 1.35 defines it
/// (KEP-5504, comparable resource versions; client-go's `CompareResourceVersion`): decimal
/// positive integers without leading zeros, of any length. None when either is not one (an
/// aggregated API server may serve opaque versions): then only equality means anything.
pub(crate) fn resource_version_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn valid(v: &str) -> bool {
        !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit())
    }
    // Without leading zeros, a longer number is a larger one.
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// Whether `delivered` is `written` or a later version of the same object: equal, or newer
/// by [`resource_version_order`] when both are comparable.
pub(crate) fn is_at_or_after(delivered: &str, written: &str) -> bool {
    delivered == written || resource_version_order(delivered, written).is_some_and(|o| o.is_gt())
}

/// Feeds `value`'s JSON serialization to `hasher` as it streams, without a copy of the text;
/// false if it cannot be serialized.
pub fn hash_serialized(value: &impl serde::Serialize, hasher: &mut impl std::hash::Hasher) -> bool {
    struct HashWriter<'a, H>(&'a mut H);
    impl<H: std::hash::Hasher> std::io::Write for HashWriter<'_, H> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(HashWriter(hasher), value).is_ok()
}

/// Predicate for a controller's own objects: everything but the status this controller writes
/// itself. Spec changes move the generation; metadata (labels, annotations, owners such as the
/// Cluster API Cluster, finalizers, deletion) does not, and rendering depends on it too.
pub fn spec_or_lifecycle<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    meta.uid.hash(&mut hasher);
    hash_generation_and_lifecycle(meta, &mut hasher);
    Some(hasher.finish())
}

/// Hashes an object's generation and the metadata controllers render from or set: deletion,
/// finalizers, labels, annotations and owner references (every field of them).
fn hash_generation_and_lifecycle(
    meta: &kube::api::ObjectMeta,
    hasher: &mut impl std::hash::Hasher,
) {
    use std::hash::Hash;
    let owners: Vec<_> = meta
        .owner_references
        .iter()
        .flatten()
        .map(|o| {
            let flags = (o.controller, o.block_owner_deletion);
            (&o.api_version, &o.kind, &o.name, &o.uid, flags)
        })
        .collect();
    (
        meta.generation,
        meta.deletion_timestamp.is_some(),
        meta.finalizers.as_deref(),
        &meta.labels,
        &meta.annotations,
        owners,
    )
        .hash(hasher);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cache::tests::cm;

    #[test]
    fn resource_versions_order_as_integers_of_any_length() {
        use std::cmp::Ordering::*;
        assert_eq!(resource_version_order("9", "10"), Some(Less), "not as text");
        assert_eq!(resource_version_order("123", "123"), Some(Equal));
        assert_eq!(
            resource_version_order("184467440737095516160", "18446744073709551615"),
            Some(Greater),
            "beyond u64"
        );
        for opaque in ["", "0", "012", "a1", "-1"] {
            assert_eq!(resource_version_order(opaque, "5"), None, "{opaque:?}");
        }
        assert!(is_at_or_after("12", "9") && is_at_or_after("x", "x"));
        assert!(!is_at_or_after("9", "12") && !is_at_or_after("y", "x"));
    }

    #[test]
    fn status_only_changes_do_not_pass_the_predicate() {
        let mut a = cm("a", "1");
        a.metadata.generation = Some(1);
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        b.data = Some([("k".to_string(), "v".to_string())].into());
        assert_eq!(spec_or_lifecycle(&a), spec_or_lifecycle(&b));
        b.metadata.finalizers = Some(vec!["f".into()]);
        assert_ne!(spec_or_lifecycle(&a), spec_or_lifecycle(&b));
        let mut c = a.clone();
        c.metadata.labels =
            Some([("cluster.x-k8s.io/cluster-name".to_string(), "c".to_string())].into());
        assert_ne!(
            spec_or_lifecycle(&a),
            spec_or_lifecycle(&c),
            "labels feed the rendering"
        );
        let mut d = a.clone();
        d.metadata.owner_references = Some(vec![Default::default()]);
        assert_ne!(
            spec_or_lifecycle(&a),
            spec_or_lifecycle(&d),
            "so does the owning Cluster"
        );
    }
}
