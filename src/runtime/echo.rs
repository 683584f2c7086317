//! Recognises watch events that bring a controller nothing new: the echo of its own write to a
//! child, and versions that change only what it does not read.
//!
//! A reconcile that creates or updates a child is woken again when the watch delivers that
//! very version, with nothing new to see: it already read the child as written (the cache
//! remembers writes). Such echoes were about 40 % of the control-plane reconciles in
//! `tests/bench`. The apply watch is shared with the apply controller, which must see the same
//! event, so an echo is dropped from the writer's trigger stream only, never from the cache.
//!
//! Replaces kube-runtime's `predicate_filter` where deletions matter: it keeps one hash per
//! object and drops a deletion whose hash matches the last version seen, and it never forgets
//! an object missed by a relist. [`Changes`] lets every deletion through, and both types here
//! follow the raw watch events ([`OwnWrites::follow`], [`Changes::follow`]) so that a deleted
//! object, or one a relist no longer returns, leaves no entry behind.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::lock;

/// A value per watched object that follows the watch: a deletion drops the object's entry,
/// and so does a relist that no longer returns it (its deletion happened while the watch was
/// down).
struct PerObject<K: Resource<DynamicType = ()>, V> {
    entries: HashMap<ObjectRef<K>, V>,
    /// The objects a relist in progress returned so far.
    relisted: Option<HashSet<ObjectRef<K>>>,
}

impl<K: Resource<DynamicType = ()>, V> Default for PerObject<K, V> {
    fn default() -> Self {
        PerObject {
            entries: HashMap::new(),
            relisted: None,
        }
    }
}

impl<K: Resource<DynamicType = ()>, V> PerObject<K, V> {
    fn follow(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                self.relisted
                    .get_or_insert_default()
                    .insert(super::cache::key_of(obj));
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.relisted.take() {
                    self.entries.retain(|at, _| listed.contains(at));
                }
            }
            watcher::Event::Delete(obj) => {
                self.entries.remove(&super::cache::key_of(obj));
            }
            watcher::Event::Apply(_) => {}
        }
    }
}

/// The last version of each child that one controller wrote and has not seen echoed yet.
/// Owned by the controller that writes; its watch of the children calls [`OwnWrites::follow`]
/// with every event.
pub struct OwnWrites<K: Resource<DynamicType = ()>> {
    last: Mutex<PerObject<K, String>>,
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
            lock(&self.last)
                .entries
                .insert(super::cache::key_of(written), version);
        }
    }

    /// Whether a watched version of a child is the echo of this controller's last write to
    /// it. Any delivered version ends the wait: one newer than the write means its echo has
    /// passed (or was folded into a relist), and an older one arriving late is rare enough to
    /// cost at most one extra reconcile.
    pub fn is_echo(&self, obj: &K) -> bool {
        let written = lock(&self.last).entries.remove(&super::cache::key_of(obj));
        written.is_some() && written == obj.meta().resource_version
    }

    /// Follows a watch event: forgets deleted objects and those a relist did not return.
    pub fn follow(&self, event: &watcher::Event<K>) {
        lock(&self.last).follow(event);
    }

    /// Forgets an object that is gone.
    pub fn forget(&self, obj: &K) {
        lock(&self.last).entries.remove(&super::cache::key_of(obj));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.last).entries.len()
    }
}

/// Digests of what one controller reads of each watched object: a new version passes only
/// when its digest moved. Unlike a predicate on applied objects, deletions always pass. The
/// controller's watch calls [`Changes::follow`] with every event.
pub struct Changes<K: Resource<DynamicType = ()>> {
    digest: fn(&K) -> u64,
    seen: Mutex<PerObject<K, u64>>,
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
        lock(&self.seen)
            .entries
            .insert(super::cache::key_of(obj), digest)
            != Some(digest)
    }

    /// Follows a watch event: forgets deleted objects (whose deletion is always news) and
    /// those a relist did not return.
    pub fn follow(&self, event: &watcher::Event<K>) {
        lock(&self.seen).follow(event);
    }

    /// Forgets a deleted object.
    pub fn forget(&self, obj: &K) {
        lock(&self.seen).entries.remove(&super::cache::key_of(obj));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.seen).entries.len()
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

    #[test]
    fn deleting_or_relisting_without_an_object_leaves_no_entry_behind() {
        let own = OwnWrites::default();
        let changes = Changes::new(|_: &ConfigMap| 1);
        for name in ["a", "b"] {
            own.record(&cm(name, "5"));
            changes.moved(&cm(name, "5"));
        }
        let deleted = watcher::Event::Delete(cm("a", "6"));
        own.follow(&deleted);
        changes.follow(&deleted);
        assert_eq!((own.len(), changes.len()), (1, 1), "only b is left");
        // "b" was deleted while the watch was down: the relist does not return it.
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(cm("c", "7")),
            watcher::Event::InitDone,
        ] {
            own.follow(&event);
            changes.follow(&event);
        }
        assert_eq!((own.len(), changes.len()), (0, 0));
        // Objects the relist returned are kept.
        own.record(&cm("c", "8"));
        changes.moved(&cm("c", "8"));
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(cm("c", "8")),
            watcher::Event::InitDone,
        ] {
            own.follow(&event);
            changes.follow(&event);
        }
        assert_eq!((own.len(), changes.len()), (1, 1));
        own.forget(&cm("c", "8"));
        changes.forget(&cm("c", "8"));
        assert_eq!((own.len(), changes.len()), (0, 0));
    }
}
