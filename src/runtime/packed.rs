//! Objects kept as compressed compact JSON in a watch cache, decoded when read.
//!
//! A decoded object costs several times its JSON: every map of `k8s-openapi`'s `ObjectMeta`
//! and of `serde_json::Value` is a `BTreeMap` whose first node takes about 550 bytes, however
//! few its entries, and every string is an allocation of its own. A cached Workspace (trimmed,
//! `workspace_apply::trim_workspace`) is 1.6 KB of JSON and 6.0 KB decoded (the sample control
//! plane's profile Workspace, counted with the heap-counting allocator of `heap_stats`); packed
//! it is its JSON and a name-only `ObjectMeta`. Reading one decodes it (tens of microseconds),
//! so only caches read a few objects at a time are packed. A kube-runtime `Controller` can
//! schedule from a packed store (`Store<Packed<K>>`: it reads the references only); its
//! reconcile decodes the object first.
//!
//! Builds on kube-runtime's `reflector` store, which holds any `Resource`: [`Packed`] is one,
//! with the metadata kube-runtime and the cache read (name, namespace, uid, resourceVersion)
//! and whatever else the kind keeps for filtering without a decode ([`Packing::meta`]).
//!
//! The JSON is compressed with LZ4 (the `lz4_flex` crate's block format, its length first):
//! the sample profile apply's 2,533 bytes of JSON become about 1,330 (`lz4 -1`: 1,341 with
//! its frame header).
//! It costs CPU on every cached event and every read: at 200 control planes × 8 profiles the
//! operator used 11.2 s of CPU against 9.7 s without it, for 45.1 instead of 48.6 MiB at its
//! peak (one `tests/bench` run each, BENCHMARKS.md).

use std::borrow::Cow;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;

use std::future::Future;

use kube::Resource;
use kube::api::ObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cache::key_named;
use crate::error::{Error, Result};

/// The most JSON a packed object can hold: etcd's default request limit, 1.5 MiB
/// (`--max-request-bytes`), bounds an object, its JSON included, and 16 MiB leaves room.
const MAX_JSON: usize = 16 << 20;

/// An object of kind `K` as LZ4-compressed compact JSON, with part of its metadata decoded.
pub struct Packed<K> {
    metadata: ObjectMeta,
    /// The compressed JSON (`lz4_flex::block`, its decompressed length first); empty for a
    /// [`Packed::reference`].
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Packed {
            metadata: self.metadata.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("metadata", &self.metadata)
            .field("bytes", &self.json.len())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Packed<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object's JSON decodes into its packed form, keeping its name and versions decoded
/// ([`identity`]); kube-runtime's `Controller` asks its objects to be decodable, though one
/// built on a stream (`Controller::for_stream`) decodes none.
impl<'de, K> serde::Deserialize<'de> for Packed<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = K::deserialize(deserializer)?;
        Packed::pack(&obj, Packing::IDENTITY)
            .ok_or_else(|| serde::de::Error::custom("the object does not serialize"))
    }
}

/// How a kind is packed: which of its metadata stays decoded beside the JSON.
#[derive(Clone, Copy)]
pub struct Packing {
    /// The metadata kept decoded, from the object's: name, namespace, uid and resourceVersion
    /// always (what kube-runtime's store and the cache read), and what this adds (e.g. the one
    /// annotation a filter reads, [`crate::runtime::cache::Cache::filter_by_meta`]).
    pub meta: fn(&ObjectMeta) -> ObjectMeta,
}

impl Packing {
    /// Name, namespace, uid and resourceVersion decoded, nothing else ([`identity`]).
    pub const IDENTITY: Packing = Packing { meta: identity };
}

/// Name, namespace, uid and resourceVersion only.
pub fn identity(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectMeta::default()
    }
}

impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned> Packed<K> {
    /// `obj` packed; None if it does not serialize (it came from JSON, so it does).
    pub fn pack(obj: &K, packing: Packing) -> Option<Packed<K>> {
        let json = serde_json::to_vec(obj).ok()?;
        let mut metadata = (packing.meta)(obj.meta());
        // Whatever `meta` returns, the fields the store and the cache key on are kept.
        let kept = obj.meta();
        metadata.name = kept.name.clone();
        metadata.namespace = kept.namespace.clone();
        metadata.uid = kept.uid.clone();
        metadata.resource_version = kept.resource_version.clone();
        Some(Packed {
            metadata,
            json: lz4_flex::block::compress_prepend_size(&json).into_boxed_slice(),
            kind: PhantomData,
        })
    }

    /// The reference of `obj` only (name, namespace, uid, resourceVersion), with no text: for
    /// what reads nothing else of it, a controller's trigger stream (kube-runtime's
    /// `Controller` takes each triggering object's reference and reads the object from its
    /// store) or a deletion from a store. It does not decode ([`Packed::decode`] fails).
    pub fn reference(obj: &K) -> Packed<K> {
        Packed {
            metadata: identity(obj.meta()),
            json: Box::default(),
            kind: PhantomData,
        }
    }

    /// The object decoded; an error if its text does not decompress or its JSON does not
    /// decode into `K` (`pack` wrote it from a `K`: not expected), or if it is a reference.
    pub fn decode(&self) -> Result<K, serde_json::Error> {
        use serde::de::Error as _;
        let (size, compressed) =
            lz4_flex::block::uncompressed_size(&self.json).map_err(serde_json::Error::custom)?;
        // The length is read before anything is allocated for it: a damaged one must not be.
        if size > MAX_JSON {
            return Err(serde_json::Error::custom(format!(
                "a packed object claims {size} bytes of JSON, more than an object can have"
            )));
        }
        let json =
            lz4_flex::block::decompress(compressed, size).map_err(serde_json::Error::custom)?;
        serde_json::from_slice(&json)
    }

    /// The object decoded; None, logged, if it does not decode ([`Packed::decode`]).
    pub fn unpack(&self) -> Option<K> {
        match self.decode() {
            Ok(obj) => Some(obj),
            Err(error) => {
                tracing::error!(kind = %K::kind(&()), name = ?self.metadata.name, %error,
                    "a packed cached object does not decode; it reads as absent until its next event");
                None
            }
        }
    }
}

/// The reference of the packed form of the object `key` names (what a controller scheduling
/// from a packed store is given).
pub fn packed_ref<K: Resource<DynamicType = ()>>(key: &ObjectRef<K>) -> ObjectRef<Packed<K>> {
    key_named(key.namespace.as_deref(), &key.name)
}

/// [`packed_ref`] of each reference, for a watch mapper of such a controller.
pub fn packed_refs<K: Resource<DynamicType = ()>>(
    refs: Vec<ObjectRef<K>>,
) -> Vec<ObjectRef<Packed<K>>> {
    refs.iter().map(packed_ref).collect()
}

/// Decodes a packed object that a controller scheduled and runs `reconcile` on it; one that
/// does not decode fails the reconcile ([`Error::Serialization`], retried by the controller's
/// error policy). `what` names the object in that error, e.g. "a cached Secret".
pub async fn reconcile_decoded<K, S, F, Fut>(
    obj: Arc<Packed<K>>,
    state: S,
    what: &'static str,
    reconcile: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    F: FnOnce(Arc<K>, S) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let obj = obj.decode().map_err(|e| Error::Serialization(what, e))?;
    reconcile(Arc::new(obj), state).await
}

/// Where a watch cache keeps its objects: kube-runtime's store of the objects themselves
/// (`Store<K>`, which a `Controller` can read too) or of their packed form ([`PackedStore`]).
pub trait Backing<K: Resource<DynamicType = ()> + 'static>: Clone + Send + Sync + 'static {
    /// The stored object `key` names, decoded if packed.
    fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>>;
    /// The resourceVersion of the stored object `key` names, without decoding it.
    fn version(&self, key: &ObjectRef<K>) -> Option<String>;
    /// Every stored object whose (kept) metadata passes `keep`, decoded if packed.
    fn filter_by_meta(&self, keep: &dyn Fn(&ObjectMeta) -> bool) -> Vec<Arc<K>>;
    /// Whether the stored object `key` names exists and its (kept) metadata passes `keep`,
    /// without decoding it.
    fn meta_passes(&self, key: &ObjectRef<K>, keep: &dyn Fn(&ObjectMeta) -> bool) -> bool;
    /// The stored objects as they are now, for a relist to compare with its result.
    fn snapshot(&self) -> Snapshot<K>;
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Backing<K> for Store<K> {
    fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        Store::get(self, key)
    }
    fn version(&self, key: &ObjectRef<K>) -> Option<String> {
        Store::get(self, key)?.meta().resource_version.clone()
    }
    fn filter_by_meta(&self, keep: &dyn Fn(&ObjectMeta) -> bool) -> Vec<Arc<K>> {
        self.state()
            .into_iter()
            .filter(|o| keep(o.meta()))
            .collect()
    }
    fn meta_passes(&self, key: &ObjectRef<K>, keep: &dyn Fn(&ObjectMeta) -> bool) -> bool {
        Store::get(self, key).is_some_and(|o| keep(o.meta()))
    }
    fn snapshot(&self) -> Snapshot<K> {
        Snapshot::Objects(self.state())
    }
}

/// kube-runtime's store of packed objects, and how to decode one.
pub struct PackedStore<K: Resource<DynamicType = ()> + 'static> {
    store: Store<Packed<K>>,
    /// `Packed::unpack` for `K` (a pointer, so that readers need no serde bounds).
    unpack: fn(&Packed<K>) -> Option<K>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for PackedStore<K> {
    fn clone(&self) -> Self {
        PackedStore {
            store: self.store.clone(),
            unpack: self.unpack,
        }
    }
}

impl<K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + 'static> PackedStore<K> {
    /// A store for `writer`'s packed objects.
    pub fn new(store: Store<Packed<K>>) -> PackedStore<K> {
        PackedStore {
            store,
            unpack: Packed::unpack,
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> PackedStore<K> {
    /// kube-runtime's store of the packed objects, for a controller that schedules from it
    /// (its reconciles decode the object: [`Packed::unpack`]).
    pub fn packed(&self) -> Store<Packed<K>> {
        self.store.clone()
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Backing<K> for PackedStore<K> {
    fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        let packed = self.store.get(&packed_ref(key))?;
        (self.unpack)(&packed).map(Arc::new)
    }
    fn version(&self, key: &ObjectRef<K>) -> Option<String> {
        self.store
            .get(&packed_ref(key))?
            .metadata
            .resource_version
            .clone()
    }
    fn filter_by_meta(&self, keep: &dyn Fn(&ObjectMeta) -> bool) -> Vec<Arc<K>> {
        self.store
            .state()
            .into_iter()
            .filter(|p| keep(&p.metadata))
            .filter_map(|p| (self.unpack)(&p).map(Arc::new))
            .collect()
    }
    fn meta_passes(&self, key: &ObjectRef<K>, keep: &dyn Fn(&ObjectMeta) -> bool) -> bool {
        self.store
            .get(&packed_ref(key))
            .is_some_and(|p| keep(&p.metadata))
    }
    fn snapshot(&self) -> Snapshot<K> {
        Snapshot::Packed(self.store.state(), self.unpack)
    }
}

/// The objects a relist began with: shared with the store, decoded only for the few the
/// relist no longer returns ([`Snapshot::gone`]).
pub enum Snapshot<K: Resource<DynamicType = ()> + 'static> {
    /// The objects themselves.
    Objects(Vec<Arc<K>>),
    /// Packed objects, and how to decode one.
    Packed(Vec<Arc<Packed<K>>>, fn(&Packed<K>) -> Option<K>),
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Snapshot<K> {
    /// The objects whose key is not in `returned`, decoded.
    pub fn gone(self, returned: &HashSet<ObjectRef<K>>) -> Vec<K> {
        let kept = |meta: &ObjectMeta| {
            returned.contains(&key_named(
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or_default(),
            ))
        };
        match self {
            Snapshot::Objects(objs) => objs
                .into_iter()
                .filter(|o| !kept(o.meta()))
                .map(|o| K::clone(&o))
                .collect(),
            Snapshot::Packed(objs, unpack) => objs
                .into_iter()
                .filter(|o| !kept(o.meta()))
                .filter_map(|o| unpack(&o))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher};

    fn cm(name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(version.into()),
                labels: Some([("l".to_string(), "v".to_string())].into()),
                annotations: Some([("keep".to_string(), "1".to_string())].into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        }
    }

    const PACKING: Packing = Packing {
        meta: |meta| ObjectMeta {
            annotations: meta.annotations.clone(),
            ..ObjectMeta::default()
        },
    };

    #[test]
    fn a_packed_object_reads_back_whole_and_keeps_only_the_metadata_asked_for() {
        let obj = cm("a", "7");
        let packed = Packed::pack(&obj, PACKING).expect("packs");
        let meta = packed.meta();
        assert_eq!(meta.name.as_deref(), Some("a"));
        assert_eq!(meta.uid.as_deref(), Some("uid-a"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert!(meta.annotations.is_some(), "kept by the packing");
        assert!(meta.labels.is_none(), "only in the JSON");
        assert_eq!(packed.unpack(), Some(obj));
        // The identity packing keeps the keys only.
        let packed = Packed::pack(&cm("a", "7"), Packing::IDENTITY).expect("packs");
        assert!(packed.meta().annotations.is_none());
    }

    #[test]
    fn an_objects_json_decodes_into_its_packed_form() {
        let obj = cm("a", "7");
        let json = serde_json::to_string(&obj).expect("serializes");
        let packed: Packed<ConfigMap> = serde_json::from_str(&json).expect("decodes");
        assert_eq!(packed.meta(), &identity(&obj.metadata));
        assert_eq!(packed.unpack(), Some(obj));
        assert!(serde_json::from_str::<Packed<ConfigMap>>("[1]").is_err());
    }

    #[test]
    fn a_reference_names_the_object_and_has_nothing_to_decode() {
        let obj = cm("a", "7");
        let reference = Packed::reference(&obj);
        assert_eq!(reference.meta(), &identity(&obj.metadata));
        assert!(reference.decode().is_err());
    }

    #[test]
    fn a_damaged_text_is_an_error_not_a_panic() {
        let mut packed = Packed::pack(&cm("a", "7"), Packing::IDENTITY).expect("packs");
        let mut text = packed.json.to_vec();
        text.truncate(text.len() / 2);
        packed.json = text.into_boxed_slice();
        assert!(packed.decode().is_err());
        assert_eq!(packed.unpack(), None);
        // A length past any object's is refused before anything is allocated for it.
        let mut text = (u32::MAX).to_le_bytes().to_vec();
        text.extend_from_slice(b"whatever");
        packed.json = text.into_boxed_slice();
        let error = packed.decode().expect_err("refused").to_string();
        assert!(error.contains("4294967295 bytes"), "{error}");
    }

    #[test]
    fn a_profile_apply_reads_back_whole() {
        let cp: crate::api::CAPTControlPlane = serde_saphyr::from_str(
            &std::fs::read_to_string("config/samples/captcontrolplane.yaml").expect("sample"),
        )
        .expect("a control plane");
        let profiles = cp
            .spec
            .additional_fargate_profiles
            .clone()
            .unwrap_or_default();
        let apply = crate::render::fargate::render(&cp, &profiles[0]);
        let packed = Packed::pack(&apply, Packing::IDENTITY).expect("packs");
        // Kept compressed: well under its JSON's length.
        let json = serde_json::to_vec(&apply).expect("serializes");
        assert!(
            packed.json.len() * 10 < json.len() * 7,
            "{} bytes packed for {} of JSON",
            packed.json.len(),
            json.len()
        );
        let back = packed.unpack().expect("unpacks");
        assert_eq!(back.metadata, apply.metadata);
        assert_eq!(back.spec, apply.spec);
        assert!(
            back.spec.terraform_variables.is_some(),
            "the typed values too"
        );
        // And the control plane itself.
        let packed = Packed::pack(&cp, Packing::IDENTITY).expect("packs");
        assert_eq!(
            serde_json::to_value(packed.unpack().expect("unpacks")).expect("serializes"),
            serde_json::to_value(&cp).expect("serializes")
        );
    }

    #[test]
    fn a_packed_store_answers_by_the_objects_key() {
        let (store, mut writer) = reflector::store::<Packed<ConfigMap>>();
        let backing = PackedStore::new(store);
        for name in ["a", "b"] {
            let packed = Packed::pack(&cm(name, "3"), PACKING).expect("packs");
            writer.apply_watcher_event(&watcher::Event::Apply(packed));
        }
        let key = ObjectRef::<ConfigMap>::new("a").within("ns");
        assert_eq!(backing.get(&key).as_deref(), Some(&cm("a", "3")));
        assert_eq!(backing.version(&key).as_deref(), Some("3"));
        assert!(backing.get(&ObjectRef::new("a").within("other")).is_none());
        let found = backing.filter_by_meta(&|m| m.name.as_deref() == Some("b"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].data, cm("b", "3").data);
        // A relist that returns only "a": "b" is gone, decoded.
        let snapshot = backing.snapshot();
        let gone = snapshot.gone(&HashSet::from([key]));
        assert_eq!(gone, vec![cm("b", "3")]);
    }
}
