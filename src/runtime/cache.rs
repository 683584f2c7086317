//! Watch caches that the controllers read instead of the API server.
//!
//! Two properties make them safe to reconcile from:
//! - a watch feeds its cache and *then* triggers reconciles (one stream does both), so a
//!   reconcile never reads an object older than the event that woke it;
//! - objects this process wrote are remembered until the watch delivers that version or a
//!   later one (read-your-writes; resourceVersions compare as integers, KEP-5504), so a
//!   reconcile that runs before the echo of its predecessor's write neither repeats the write
//!   nor misses a child it just created, and a write recorded after newer versions arrived
//!   does not hide them.
//!
//! Builds on kube-runtime's `reflector` store, which only ever shows what the watch delivered,
//! and lays this process's own writes over it. Neither kube-runtime nor controller-runtime
//! offers that (controller-runtime declined a write-back cache, kubernetes-sigs/
//! controller-runtime#1622): without it a reconcile that runs before the echo of its own write
//! creates the child a second time (AlreadyExists) or writes it again. Do not replace it with a
//! plain `Store`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::lock;

use futures::{Stream, TryStreamExt};
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backoff::WatchBackoff;
use super::index::{Index, Keys};
use super::packed::{Backing, Packed, PackedStore, Packing};
use super::version::{compared_version, hash_serialized, is_at_or_after, resource_version_order};

/// How many delivered resourceVersions are remembered per object whose versions are opaque.
/// Comparable versions (KEP-5504) need no record: the store holds the newest delivered version
/// of each object. Opaque ones only compare equal, so recognising a write whose echo arrived
/// before the writer recorded it needs the echo itself: a few are kept.
const SEEN_VERSIONS: usize = 4;

/// How long the uid of a deleted object is remembered: a write's answer recorded after the
/// watch delivered the object's deletion (the write removed its last finalizer, or a delete
/// raced a provider's) must not bring it back. The writer records its answer within moments;
/// a minute is ample, and bounds the map to the deletions of the last minute.
const DELETED_FOR: Duration = Duration::from_secs(60);

/// The reference of `obj` that the maps of this module and `echo` are keyed by: its name and
/// namespace only. `ObjectRef::from_obj` also carries the uid and resourceVersion, which
/// neither equality nor hashing reads (`ObjectRef::extra`), two more strings per entry.
pub(crate) fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectRef<K> {
    let meta = obj.meta();
    key_named(
        meta.namespace.as_deref(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// The reference of the object `name` in `namespace` (None for cluster-scoped), as [`key_of`]
/// builds it.
pub(crate) fn key_named<K: Resource<DynamicType = ()>>(
    namespace: Option<&str>,
    name: &str,
) -> ObjectRef<K> {
    let key = ObjectRef::new(name);
    match namespace {
        Some(ns) => key.within(ns),
        None => key,
    }
}

/// Whether `version` is a comparable resourceVersion (KEP-5504), which the store's newest
/// version can be compared with.
fn comparable(version: &str) -> bool {
    resource_version_order(version, version).is_some()
}

/// A watch cache of `K` with this process's own writes laid over it, its objects kept in `B`:
/// kube-runtime's store of them, or of their packed form ([`watch_packed`]).
pub struct Cache<K: Resource<DynamicType = ()> + 'static, B = Store<K>> {
    store: B,
    written: Arc<Mutex<Written<K>>>,
    trim: fn(&mut K),
    /// Set once the first list is complete.
    ready: Arc<AtomicBool>,
}

impl<K: Resource<DynamicType = ()> + 'static, B: Clone> Clone for Cache<K, B> {
    fn clone(&self) -> Self {
        Cache {
            store: self.store.clone(),
            written: self.written.clone(),
            trim: self.trim,
            ready: self.ready.clone(),
        }
    }
}

struct Written<K: Resource<DynamicType = ()> + 'static> {
    /// Objects written by this process whose version the watch has not delivered yet.
    pending: HashMap<ObjectRef<K>, Arc<K>>,
    /// The last [`SEEN_VERSIONS`] opaque resourceVersions the watch delivered, per object that
    /// has them (none where versions are comparable, as etcd's are: one map entry per object
    /// less, about 300 bytes each).
    seen: HashMap<ObjectRef<K>, VecDeque<String>>,
    /// Per object, the version (`compared_version`) found to hold every field of a desired
    /// object, and that desired object's digest: a reconcile that renders the same again skips
    /// the comparison.
    verified: HashMap<ObjectRef<K>, (u64, u64)>,
    /// Objects by key (see `Cache::indexed`), for caches that have one.
    index: Option<Index<K, ObjectRef<K>>>,
    /// The objects a relist in progress returned so far: at its end, the others are gone.
    relisted: Option<HashSet<ObjectRef<K>>>,
    /// The uids of objects whose deletion the watch delivered, with the deletion's version and
    /// when it came (for [`DELETED_FOR`]). A label-filtered watch also reports an object that
    /// stopped matching as deleted: a later write of it (a newer version) is kept.
    deleted: HashMap<String, (String, Instant)>,
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Written<K> {
    fn default() -> Self {
        Written {
            pending: HashMap::new(),
            seen: HashMap::new(),
            verified: HashMap::new(),
            index: None,
            relisted: None,
            deleted: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Written<K> {
    /// Takes in one event of the watch, after the store took it: `store` holds an `Apply` and a
    /// `Delete` already, a relist's objects only from its `InitDone` on (kube-runtime's writer
    /// keeps them aside until then).
    fn observe(&mut self, event: &watcher::Event<K>, store: &impl Backing<K>) {
        match event {
            // A relisted object is not in the store yet: a write it makes old stays laid over
            // the store's older object until `InitDone`.
            watcher::Event::InitApply(obj) => {
                let key = key_of(obj);
                if let Some(index) = &mut self.index {
                    index.relisted(key.clone(), obj);
                }
                self.relisted.get_or_insert_default().insert(key);
            }
            watcher::Event::Apply(obj) => {
                let key = key_of(obj);
                let version = obj.resource_version().unwrap_or_default();
                // The write's own version or a later one: the store is as new as the write.
                if self.pending.get(&key).is_some_and(|p| {
                    is_at_or_after(&version, p.meta().resource_version.as_deref().unwrap_or(""))
                }) {
                    self.pending.remove(&key);
                }
                // An older version than a write still laid over it does not index the object:
                // reads return the write, so lookups go by the write's keys.
                if let Some(index) = &mut self.index
                    && !self.pending.contains_key(&key)
                {
                    index.update(key.clone(), obj);
                }
                if !comparable(&version) {
                    let recent = self.seen.entry(key).or_default();
                    if recent.len() == SEEN_VERSIONS {
                        recent.pop_front();
                    }
                    recent.push_back(version);
                }
            }
            watcher::Event::Delete(obj) => {
                self.forget(&key_of(obj));
                if let Some(uid) = obj.uid() {
                    let now = Instant::now();
                    self.deleted
                        .retain(|_, (_, at)| now.duration_since(*at) < DELETED_FOR);
                    let version = obj.resource_version().unwrap_or_default();
                    self.deleted.insert(uid, (version, now));
                }
            }
            // After a relist the store holds the current state. A write stays only where the
            // store's object is older by comparable versions: then it came after the list
            // (the list would have returned it), and the watch delivers it. Otherwise it may
            // never be delivered on its own (an opaque version, or the object gone), so it
            // goes; objects the relist did not return were deleted meanwhile.
            watcher::Event::InitDone => {
                self.pending.retain(|key, written| {
                    let written = written.resource_version().unwrap_or_default();
                    store
                        .version(key)
                        .and_then(|s| resource_version_order(&s, &written))
                        .is_some_and(|o| o.is_lt())
                });
                self.verified.clear();
                if let Some(listed) = self.relisted.take() {
                    self.seen.retain(|key, _| listed.contains(key));
                }
                if let Some(index) = &mut self.index {
                    index.relist_done();
                    for (key, obj) in &self.pending {
                        index.update(key.clone(), obj);
                    }
                }
            }
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                if let Some(index) = &mut self.index {
                    index.relist();
                }
            }
        }
    }

    /// Forgets everything about a deleted object.
    fn forget(&mut self, key: &ObjectRef<K>) {
        self.pending.remove(key);
        self.seen.remove(key);
        self.verified.remove(key);
        if let Some(index) = &mut self.index {
            index.remove(key);
        }
    }

    /// Records `obj`, written by this process, unless the watch already delivered its version
    /// or a later one: `stored` is the version of the store's object of the same key, read
    /// while this map is locked (the store takes each event before `observe` does, so it is
    /// never older than what `observe` saw).
    fn remember(&mut self, obj: K, stored: Option<String>) {
        // The watch delivered its deletion at this version or a later one already: nothing
        // would ever clear it.
        let version = obj.resource_version().unwrap_or_default();
        if obj.uid().is_some_and(|uid| {
            self.deleted
                .get(&uid)
                .is_some_and(|(deleted, _)| is_at_or_after(deleted, &version))
        }) {
            return;
        }
        let key = key_of(&obj);
        // Two writes of one object answered out of order: the newer one stays.
        if self.pending.get(&key).is_some_and(|p| {
            p.resource_version()
                .and_then(|p| resource_version_order(&p, &version))
                .is_some_and(|o| o.is_gt())
        }) {
            return;
        }
        // Its echo, or a later version, came first: a write recorded late (the watch may
        // deliver several newer versions before the writer gets the API server's answer) must
        // not hide them for good.
        let delivered = stored.is_some_and(|s| is_at_or_after(&s, &version))
            || self
                .seen
                .get(&key)
                .is_some_and(|recent| recent.iter().any(|s| is_at_or_after(s, &version)));
        if delivered {
            return;
        }
        if let Some(index) = &mut self.index {
            index.update(key.clone(), &obj);
        }
        self.pending.insert(key, Arc::new(obj));
    }
}

impl<K, B> Cache<K, B>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    B: Backing<K>,
{
    fn written(&self) -> MutexGuard<'_, Written<K>> {
        lock(&self.written)
    }

    /// The newest version of an object known to this process.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        if let Some(obj) = self.written().pending.get(key) {
            return Some(obj.clone());
        }
        self.store.get(key)
    }

    /// The newest version of the object `name` in `namespace` (None for cluster-scoped).
    pub fn get_named(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        self.get(&key_named(namespace, name))
    }

    /// The newest version of `obj` (the cache may hold a write newer than `obj`).
    pub fn latest(&self, obj: Arc<K>) -> Arc<K> {
        let key = key_of(obj.as_ref());
        if let Some(written) = self.written().pending.get(&key) {
            return written.clone();
        }
        // The store holds this very version: nothing to read again (or, packed, to decode).
        let version = self.store.version(&key);
        if version.is_some() && version == obj.meta().resource_version {
            return obj;
        }
        self.store.get(&key).unwrap_or(obj)
    }

    /// Every object matching `keep`, with this process's writes laid over the store. A packed
    /// cache decodes every object for it: there, see [`Cache::filter_by_meta`].
    pub fn filter(&self, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        self.filtered(|_| true, keep)
    }

    /// Every object whose metadata passes `keep`, with this process's writes laid over the
    /// store. A packed cache reads the metadata it keeps decoded ([`Packing::meta`]) and decodes
    /// only the objects that pass.
    pub fn filter_by_meta(&self, keep: impl Fn(&ObjectMeta) -> bool) -> Vec<Arc<K>> {
        self.filtered(&keep, |o| keep(o.meta()))
    }

    fn filtered(
        &self,
        stored: impl Fn(&ObjectMeta) -> bool,
        keep: impl Fn(&K) -> bool,
    ) -> Vec<Arc<K>> {
        let written = self.written();
        let pending = &written.pending;
        // `keep` first: it is cheap, and most objects fail it; the key is only built when
        // there are writes to lay over.
        let mut out: Vec<Arc<K>> = self
            .store
            .filter_by_meta(&stored)
            .into_iter()
            .filter(|o| keep(o))
            .filter(|o| pending.is_empty() || !pending.contains_key(&key_of(o.as_ref())))
            .collect();
        out.extend(pending.values().filter(|o| keep(o)).cloned());
        out
    }

    /// The objects found under `key` in the cache's index (empty for a cache without one),
    /// with this process's writes laid over the store.
    pub fn indexed(&self, key: &str) -> Vec<Arc<K>> {
        let written = self.written();
        let Some(index) = &written.index else {
            return Vec::new();
        };
        index
            .get(key)
            .filter_map(|at| {
                written
                    .pending
                    .get(at)
                    .cloned()
                    .or_else(|| self.store.get(at))
            })
            .collect()
    }

    /// How many objects found under `key` in the cache's index have metadata that passes
    /// `keep` (this process's writes laid over the store); a packed cache reads the metadata
    /// it keeps decoded ([`Packing::meta`]) and decodes nothing.
    pub fn count_indexed(&self, key: &str, keep: impl Fn(&ObjectMeta) -> bool) -> usize {
        let written = self.written();
        let Some(index) = &written.index else {
            return 0;
        };
        index
            .get(key)
            .filter(|at| match written.pending.get(*at) {
                Some(obj) => keep(obj.meta()),
                None => self.store.meta_passes(at, &keep),
            })
            .count()
    }

    /// References to the objects found under `key` in the cache's index, for watch mappers
    /// (which only name the objects to reconcile).
    pub fn indexed_refs(&self, key: &str) -> Vec<ObjectRef<K>> {
        let written = self.written();
        written
            .index
            .as_ref()
            .map(|index| index.get(key).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `existing` needs no write to become `desired` (`write::contains`),
    /// remembered per object version (`compared_version`): most reconciles render what they
    /// rendered before, for children whose spec and metadata have not changed since.
    pub fn holds(&self, existing: &K, desired: &K) -> bool
    where
        K: serde::Serialize,
    {
        use std::hash::{DefaultHasher, Hasher};
        let mut hasher = DefaultHasher::new();
        if !hash_serialized(desired, &mut hasher) {
            return false;
        }
        let verdict = (compared_version(existing), hasher.finish());
        let key = key_of(existing);
        if self.written().verified.get(&key) == Some(&verdict) {
            return true;
        }
        let holds = super::write::contains(existing, desired);
        if holds {
            self.written().verified.insert(key, verdict);
        }
        holds
    }

    /// Records an object as written by this process (the API server's answer to the write),
    /// trimmed like the watched ones.
    pub fn remember(&self, mut obj: K) {
        self.prepare(&mut obj);
        // The store is read under the lock of the written objects (the order `filter` and
        // `indexed` take them in too), so no event can pass between the two reads.
        let mut written = self.written();
        let stored = self.store.version(&key_of(&obj));
        written.remember(obj, stored);
    }

    /// Trims an object the way this cache stores it, e.g. a desired object before it is
    /// compared with a cached one.
    pub fn prepare(&self, obj: &mut K) {
        prepare(obj, self.trim);
    }

    /// Whether the first list is complete. Before that an absent object may well exist, so
    /// nothing may be created or cleaned up on the cache's word.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Cache<K, PackedStore<K>> {
    /// kube-runtime's store of the packed objects, for a controller that schedules from it.
    pub fn packed_store(&self) -> Store<Packed<K>> {
        self.store.packed()
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    /// The underlying store (for the controller, which reads its scheduled objects from it; a
    /// packed cache has none).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }
}

/// Feeds a watch (kube's `watcher`) into a new cache. Objects lose their
/// managed fields and pass through `trim` before they are stored; the returned events come
/// after the cache holds them, a relist's all at its end (`runtime::relist::after_store`).
///
/// Every watch retries with [`WatchBackoff`] here, not at its callers: kube's `watcher` retries
/// as soon as it is polled after an error, and a stream polled outside a controller (the
/// fan-out of `runtime::shared`, which has no `trigger_backoff`) then reconnected about 2,400
/// times a second to an API server that was gone (a Workspace watch built without a backoff;
/// `a_watch_that_cannot_connect_retries_with_backoff`). The delay starts over once the watch
/// delivers anything but the start of a list.
pub fn watch<K, S>(
    source: S,
    trim: fn(&mut K),
    index: Option<Keys<K>>,
) -> (
    Cache<K>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (store, mut writer) = reflector::store();
    build(source, trim, index, store, move |event| {
        writer.apply_watcher_event(event)
    })
}

/// [`watch`] into a packed cache: each object is kept as compact JSON text with the metadata
/// `packing` keeps (`runtime::packed`), and decoded when read: for kinds read a few objects at a
/// time. A controller schedules from its [`Cache::packed_store`] and decodes its object.
pub fn watch_packed<K, S>(
    source: S,
    trim: fn(&mut K),
    index: Option<Keys<K>>,
    packing: Packing,
) -> (
    Cache<K, PackedStore<K>>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
    K: Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (store, mut writer) = reflector::store::<Packed<K>>();
    build(source, trim, index, PackedStore::new(store), move |event| {
        let pack = |obj: &K| Packed::pack(obj, packing);
        let packed = match event {
            watcher::Event::Apply(obj) => pack(obj).map(watcher::Event::Apply),
            watcher::Event::InitApply(obj) => pack(obj).map(watcher::Event::InitApply),
            // The store removes it by its key.
            watcher::Event::Delete(obj) => Some(watcher::Event::Delete(Packed::reference(obj))),
            watcher::Event::Init => Some(watcher::Event::Init),
            watcher::Event::InitDone => Some(watcher::Event::InitDone),
        };
        match packed {
            Some(packed) => writer.apply_watcher_event(&packed),
            None => {
                tracing::error!(kind = %K::kind(&()), "an object does not serialize; not cached")
            }
        }
    })
}

/// The pipeline of [`watch`] and [`watch_packed`]: `reflect` puts each event into `store`.
fn build<K, S, B>(
    source: S,
    trim: fn(&mut K),
    index: Option<Keys<K>>,
    store: B,
    mut reflect: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> (
    Cache<K, B>,
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    B: Backing<K>,
{
    let written = Arc::new(Mutex::new(Written {
        index: index.map(Index::new),
        ..Written::default()
    }));
    let ready = Arc::new(AtomicBool::new(false));
    let (observed, listed, stored) = (written.clone(), ready.clone(), store.clone());
    super::startup::cache_created();
    let backoff = WatchBackoff::for_watch();
    let progress = backoff.clone();
    let events = source
        .backoff(backoff)
        .inspect_ok(move |event| {
            // Anything but the start of a list: the API server answers again.
            if !matches!(event, watcher::Event::Init) {
                progress.progressed();
            }
        })
        .modify(move |obj: &mut K| prepare(obj, trim))
        .inspect_ok(move |event| {
            reflect(event);
            lock(&observed).observe(event, &stored);
            if matches!(event, watcher::Event::InitDone) && !listed.swap(true, Ordering::AcqRel) {
                super::startup::cache_filled(&K::kind(&()));
            }
        });
    // Consumers see a relist once the store holds it, and its deletions (`runtime::relist`).
    let events = super::relist::after_store(events, store.clone());
    (
        Cache {
            store,
            written,
            trim,
            ready,
        },
        events,
    )
}

/// Drops managed fields (never read here, often the larger part of an object) and trims: an
/// object as every cache keeps it (`examples/bench.rs` measures what that keeps).
pub fn prepare<K: Resource>(obj: &mut K, trim: fn(&mut K)) {
    obj.meta_mut().managed_fields = None;
    trim(obj);
}

/// Leaves an object as it is.
pub fn keep_all<K>(_: &mut K) {}

#[cfg(test)]
#[path = "cache_tests.rs"]
pub(crate) mod tests;
