//! Recognises watch events that bring a controller nothing new: the echo of its own write to a
//! child, and versions that change only what it does not read.
//!
//! A reconcile that creates or updates a child is woken again when the watch delivers that
//! very version, with nothing new to see: it already read the child as written (the cache
//! remembers writes). Such echoes were about 40 % of the control-plane reconciles in
//! `tests/bench`. The apply watch is shared with the apply controller, which must see the same
//! event, so an echo is dropped from the writer's trigger stream only, never from the cache.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// The last version of each child that one controller wrote and has not seen echoed yet.
pub struct OwnWrites<K: Resource<DynamicType = ()>> {
    last: Mutex<HashMap<ObjectRef<K>, String>>,
}

impl<K: Resource<DynamicType = ()>> Default for OwnWrites<K> {
    fn default() -> Self {
        OwnWrites {
            last: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> OwnWrites<K> {
    /// Records `written`, the API server's answer to this controller's write.
    pub fn record(&self, written: &K) {
        if let Some(version) = written.meta().resource_version.clone() {
            lock(&self.last).insert(ObjectRef::from_obj(written), version);
        }
    }

    /// Whether a watched version of a child is the echo of this controller's last write to
    /// it. Any delivered version ends the wait: one newer than the write means its echo has
    /// passed (or was folded into a relist), and an older one arriving late is rare enough to
    /// cost at most one extra reconcile.
    pub fn is_echo(&self, obj: &K) -> bool {
        let written = lock(&self.last).remove(&ObjectRef::from_obj(obj));
        written.is_some() && written == obj.meta().resource_version
    }
}

/// Locks one of this module's maps, which are only ever inserted into or removed from whole:
/// a panicked holder left nothing half-written.
fn lock<T>(map: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Digests of what one controller reads of each watched object: a new version passes only
/// when its digest moved. Unlike a predicate on applied objects, deletions always pass.
pub struct Changes<K: Resource<DynamicType = ()>> {
    digest: fn(&K) -> u64,
    seen: Mutex<HashMap<ObjectRef<K>, u64>>,
}

impl<K: Resource<DynamicType = ()>> Changes<K> {
    /// A filter that lets an object through when `digest` of it differs from the last one seen.
    pub fn new(digest: fn(&K) -> u64) -> Self {
        Changes {
            digest,
            seen: Mutex::default(),
        }
    }

    /// Whether this version of `obj` differs in what the controller reads from the last one
    /// seen (every version must be shown, in watch order).
    pub fn moved(&self, obj: &K) -> bool {
        let digest = (self.digest)(obj);
        lock(&self.seen).insert(ObjectRef::from_obj(obj), digest) != Some(digest)
    }

    /// Forgets a deleted object (whose deletion is always news).
    pub fn forget(&self, obj: &K) {
        lock(&self.seen).remove(&ObjectRef::from_obj(obj));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cache::tests::cm;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn the_echo_of_a_write_is_recognised_once() {
        let own = OwnWrites::default();
        own.record(&cm("a", "5"));
        assert!(!own.is_echo(&cm("b", "5")), "another object");
        assert!(own.is_echo(&cm("a", "5")));
        assert!(!own.is_echo(&cm("a", "5")), "only once");
    }

    #[test]
    fn a_version_not_written_here_passes_and_ends_the_wait() {
        let own = OwnWrites::default();
        own.record(&cm("a", "5"));
        assert!(!own.is_echo(&cm("a", "6")), "someone else's change");
        assert!(!own.is_echo(&cm("a", "5")), "no longer waited for");
        // A later write is recognised again.
        own.record(&cm("a", "7"));
        assert!(own.is_echo(&cm("a", "7")));
    }

    #[test]
    fn only_versions_whose_digest_moved_are_changes() {
        // Reads only the labels.
        let changes = Changes::new(|c: &ConfigMap| c.metadata.labels.iter().count() as u64);
        let mut a = cm("a", "1");
        assert!(changes.moved(&a), "first sight");
        a.metadata.resource_version = Some("2".into());
        a.metadata.finalizers = Some(vec!["x".into()]);
        assert!(!changes.moved(&a), "only what is not read changed");
        assert!(changes.moved(&cm("b", "3")), "another object");
        a.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
        assert!(changes.moved(&a));
        changes.forget(&a);
        assert!(changes.moved(&a), "a recreated object is new again");
    }

    #[test]
    fn objects_never_written_are_not_echoes() {
        let own: OwnWrites<ConfigMap> = OwnWrites::default();
        assert!(!own.is_echo(&cm("a", "1")));
        let mut unversioned = cm("a", "1");
        unversioned.metadata.resource_version = None;
        own.record(&unversioned);
        assert!(!own.is_echo(&unversioned));
    }
}
