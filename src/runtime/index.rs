//! A secondary index of a watch cache: which objects answer to a key (an owner's uid, a Secret
//! they read), so that a reconcile or a watch mapper finds them without a pass over every
//! cached object. At 200 control planes the passes over all applies were about 7 % of the
//! operator's CPU, and they grow with the product of objects and events.
//!
//! kube-runtime's `Store` has no secondary index (only `get` by name and `state()`, a pass
//! over every object), and a mapper built on `state()` is what cost that CPU. The index follows
//! the cache's relists: entries of objects a relist no longer returns are dropped with it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

/// The keys an object is found under.
pub type Keys<K> = fn(&K) -> Vec<String>;

/// Objects (by reference `R`) per key, kept in step with a cache's store.
pub struct Index<K, R> {
    keys: Keys<K>,
    live: Entries<R>,
    /// Built from a relist's objects, and swapped in when the relist is complete: until then
    /// the store still holds the old state, which `live` describes.
    relisting: Option<Entries<R>>,
}

/// Each reference is allocated once (`Arc<R>`) and each key text once (`Arc<str>`), however
/// many keys an object has and however many objects share a key: an apply is filed under four
/// or five keys, most of them shared by a cluster's ten applies. With a `String` per key and a
/// clone of the reference per entry (a kube `ObjectRef` is 96 bytes and two strings), the
/// index of 2,000 applies and 2,000 Workspaces took about 8 MiB of the operator's heap at its
/// peak (200 × 8, heaptrack; BENCHMARKS.md).
struct Entries<R> {
    by_key: HashMap<Arc<str>, HashSet<Arc<R>>>,
    keys_of: HashMap<Arc<R>, Box<[Arc<str>]>>,
}

impl<R> Default for Entries<R> {
    fn default() -> Self {
        Entries {
            by_key: HashMap::new(),
            keys_of: HashMap::new(),
        }
    }
}

impl<R: Hash + Eq> Entries<R> {
    fn set(&mut self, at: R, keys: Vec<String>) {
        let unchanged = self.keys_of.get(&at).is_some_and(|old| {
            old.len() == keys.len() && old.iter().zip(&keys).all(|(a, b)| **a == **b)
        });
        if unchanged {
            return;
        }
        // The reference already held, if any, is reused.
        let at = match self.keys_of.get_key_value(&at) {
            Some((held, _)) => Arc::clone(held),
            None => Arc::new(at),
        };
        self.remove(&at);
        let mut filed = Vec::with_capacity(keys.len());
        for key in keys {
            let key: Arc<str> = match self.by_key.get_key_value(key.as_str()) {
                Some((held, _)) => Arc::clone(held),
                None => Arc::from(key),
            };
            let refs = self.by_key.entry(Arc::clone(&key)).or_default();
            refs.insert(Arc::clone(&at));
            filed.push(key);
        }
        self.keys_of.insert(at, filed.into_boxed_slice());
    }

    fn remove(&mut self, at: &R) {
        let Some(keys) = self.keys_of.remove(at) else {
            return;
        };
        for key in keys.iter() {
            if let Some(refs) = self.by_key.get_mut(&**key) {
                refs.remove(at);
                if refs.is_empty() {
                    self.by_key.remove(&**key);
                }
            }
        }
    }
}

impl<K, R: Hash + Eq> Index<K, R> {
    /// An empty index that files each object under `keys` of it.
    pub fn new(keys: Keys<K>) -> Self {
        Index {
            keys,
            live: Entries::default(),
            relisting: None,
        }
    }

    /// An object was added or changed (a watch event, or this process's own write).
    pub fn update(&mut self, at: R, obj: &K) {
        self.live.set(at, (self.keys)(obj));
    }

    /// An object was deleted.
    pub fn remove(&mut self, at: &R) {
        self.live.remove(at);
    }

    /// A relist begins: its objects arrive with [`Index::relisted`].
    pub fn relist(&mut self) {
        self.relisting = Some(Entries::default());
    }

    /// One object of the relist begun by [`Index::relist`].
    pub fn relisted(&mut self, at: R, obj: &K) {
        let keys = (self.keys)(obj);
        self.relisting
            .get_or_insert_with(Entries::default)
            .set(at, keys);
    }

    /// The relist is complete: objects it did not return are gone.
    pub fn relist_done(&mut self) {
        if let Some(entries) = self.relisting.take() {
            self.live = entries;
        }
    }

    /// The objects found under `key`.
    pub fn get(&self, key: &str) -> impl Iterator<Item = &R> {
        self.live
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .map(|at| &**at)
    }
}

/// The index key of an owner, by its uid.
pub fn owner(uid: &str) -> String {
    format!("owner:{uid}")
}

/// The index key of a Secret an object reads.
pub fn secret(namespace: &str, name: &str) -> String {
    format!("secret:{namespace}/{name}")
}

/// The index key of `secret` itself, matching [`secret`].
pub fn secret_of(secret: &k8s_openapi::api::core::v1::Secret) -> String {
    use kube::ResourceExt;
    self::secret(&secret.namespace().unwrap_or_default(), &secret.name_any())
}

/// The index key of the Cluster API Cluster an object belongs to.
pub fn cluster(namespace: &str, name: &str) -> String {
    format!("cluster:{namespace}/{name}")
}

/// The index key of the control planes whose profiles are on their way
/// (`status::pacing::rolling_out`), which the pacing of progress writes counts.
pub const ROLLING_OUT: &str = "rolling-out";

/// The index key of a WorkspaceTemplate an object uses.
pub fn template(namespace: &str, name: &str) -> String {
    format!("template:{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test objects: a name and the keys it answers to.
    type Obj = (&'static str, Vec<&'static str>);

    fn keys(obj: &Obj) -> Vec<String> {
        obj.1.iter().map(|k| k.to_string()).collect()
    }

    fn found(index: &Index<Obj, &'static str>, key: &str) -> Vec<&'static str> {
        let mut v: Vec<&str> = index.get(key).copied().collect();
        v.sort();
        v
    }

    #[test]
    fn objects_are_found_under_their_current_keys() {
        let mut index = Index::new(keys);
        index.update("a", &("a", vec!["x", "y"]));
        index.update("b", &("b", vec!["x"]));
        assert_eq!(found(&index, "x"), ["a", "b"]);
        assert_eq!(found(&index, "y"), ["a"]);
        // A changed object moves; a removed one is gone.
        index.update("a", &("a", vec!["z"]));
        assert_eq!(found(&index, "x"), ["b"]);
        assert!(found(&index, "y").is_empty());
        assert_eq!(found(&index, "z"), ["a"]);
        index.remove(&"b");
        assert!(found(&index, "x").is_empty());
        assert!(
            index.live.by_key.keys().all(|k| &**k == "z"),
            "no empty entries left"
        );
    }

    #[test]
    fn a_key_and_a_reference_are_held_once() {
        let mut index = Index::new(keys);
        index.update("a", &("a", vec!["x", "y"]));
        index.update("b", &("b", vec!["x"]));
        let (x, refs) = index.live.by_key.get_key_value("x").unwrap();
        // `by_key` and the two objects' `keys_of` share the one text of "x".
        assert_eq!(Arc::strong_count(x), 3);
        assert_eq!(refs.len(), 2);
        // "a" is held by `keys_of` and its two keys' sets.
        let (a, _) = index.live.keys_of.get_key_value(&"a").unwrap();
        assert_eq!(Arc::strong_count(a), 3);
        // Moving "a" to other keys reuses its reference and drops what no object uses.
        index.update("a", &("a", vec!["y"]));
        let (a, _) = index.live.keys_of.get_key_value(&"a").unwrap();
        assert_eq!(Arc::strong_count(a), 2);
        assert_eq!(found(&index, "x"), ["b"]);
        assert_eq!(
            Arc::strong_count(index.live.by_key.get_key_value("x").unwrap().0),
            2
        );
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_is_complete() {
        let mut index = Index::new(keys);
        index.update("old", &("old", vec!["x"]));
        index.relist();
        index.relisted("new", &("new", vec!["x"]));
        assert_eq!(
            found(&index, "x"),
            ["old"],
            "the store is unchanged until the relist ends"
        );
        index.relist_done();
        assert_eq!(
            found(&index, "x"),
            ["new"],
            "objects the relist did not return are gone"
        );
    }
}
