use super::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

/// A ConfigMap `name` in namespace `ns` at resourceVersion `version`.
pub(crate) fn cm(name: &str, version: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            resource_version: Some(version.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

impl Cache<ConfigMap> {
    /// Lets the cache's bookkeeping take in `event` (its store is left as it is).
    fn observe(&self, event: &watcher::Event<ConfigMap>) {
        self.written().observe(event, &self.store);
    }
}

/// The objects this process wrote, laid over a kube-runtime store that takes each event before
/// `Written` observes it, as in `watch`.
struct Fed {
    store: Store<ConfigMap>,
    writer: reflector::store::Writer<ConfigMap>,
    w: Written<ConfigMap>,
}

impl Fed {
    fn new() -> Fed {
        let (store, writer) = reflector::store();
        Fed {
            store,
            writer,
            w: Written::default(),
        }
    }

    fn observe(&mut self, event: &watcher::Event<ConfigMap>) {
        self.writer.apply_watcher_event(event);
        self.w.observe(event, &self.store);
    }

    fn remember(&mut self, obj: ConfigMap) {
        let stored = Backing::version(&self.store, &key_of(&obj));
        self.w.remember(obj, stored);
    }
}

fn pending(w: &Written<ConfigMap>) -> Vec<String> {
    let mut v: Vec<String> = w
        .pending
        .values()
        .map(|o| format!("{}@{}", o.name_any(), o.resource_version().unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_write_is_kept_until_the_watch_delivers_its_version() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm("a", "1")));
    w.remember(cm("a", "2"));
    assert_eq!(pending(&w.w), ["a@2"]);
    // An older version arriving late does not clear it.
    w.observe(&watcher::Event::Apply(cm("a", "1")));
    assert_eq!(pending(&w.w), ["a@2"]);
    w.observe(&watcher::Event::Apply(cm("a", "2")));
    assert!(pending(&w.w).is_empty());
}

#[test]
fn a_write_whose_echo_came_first_is_not_remembered() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm("a", "5")));
    w.observe(&watcher::Event::Apply(cm("a", "6")));
    w.remember(cm("a", "5"));
    assert!(
        pending(&w.w).is_empty(),
        "the store already holds version 5 or newer"
    );
}

#[test]
fn a_write_recorded_after_later_versions_arrived_does_not_hide_them() {
    // The writer's task ran late: the watch delivered its write (5) and the provider's next
    // five updates before the write was recorded. The store is newer than the write.
    let mut w = Fed::new();
    for version in 5..=10 {
        w.observe(&watcher::Event::Apply(cm("a", &version.to_string())));
    }
    w.remember(cm("a", "5"));
    assert!(pending(&w.w).is_empty(), "version 10 is already delivered");
}

#[test]
fn a_later_version_ends_the_wait_for_a_write() {
    let mut w = Fed::new();
    w.remember(cm("a", "9"));
    // Version 9 folded into 10 (e.g. a watch resumed past it): 10 is newer, the write is old.
    w.observe(&watcher::Event::Apply(cm("a", "10")));
    assert!(pending(&w.w).is_empty());
    // Opaque versions (not integers) only match exactly.
    w.remember(cm("b", "x2"));
    w.observe(&watcher::Event::Apply(cm("b", "x3")));
    assert_eq!(pending(&w.w), ["b@x2"]);
}

#[test]
fn deletion_and_relist_drop_writes() {
    let mut w = Fed::new();
    w.remember(cm("a", "2"));
    w.remember(cm("b", "3"));
    w.observe(&watcher::Event::Delete(cm("a", "4")));
    assert_eq!(pending(&w.w), ["b@3"]);
    w.observe(&watcher::Event::Init);
    assert_eq!(pending(&w.w), ["b@3"]);
    w.observe(&watcher::Event::InitDone);
    assert!(pending(&w.w).is_empty());
}

/// `cm` with a uid.
fn cm_uid(name: &str, version: &str, uid: &str) -> ConfigMap {
    let mut c = cm(name, version);
    c.metadata.uid = Some(uid.into());
    c
}

#[test]
fn a_write_stays_laid_over_the_store_until_the_relist_that_returned_it_ends() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm("a", "1")));
    w.remember(cm("a", "3"));
    w.observe(&watcher::Event::Init);
    w.observe(&watcher::Event::InitApply(cm("a", "3")));
    // kube-runtime's writer keeps the relist aside: the store still has version 1.
    assert_eq!(
        w.store
            .get(&key_of(&cm("a", "")))
            .unwrap()
            .resource_version(),
        Some("1".into())
    );
    assert_eq!(pending(&w.w), ["a@3"], "the write still hides version 1");
    w.observe(&watcher::Event::InitDone);
    assert!(pending(&w.w).is_empty(), "the store holds version 3 now");
}

#[test]
fn a_write_after_the_list_outlives_the_relist() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm("a", "1")));
    w.observe(&watcher::Event::Apply(cm("b", "x1")));
    w.observe(&watcher::Event::Init);
    w.observe(&watcher::Event::InitApply(cm("a", "2")));
    w.observe(&watcher::Event::InitApply(cm("b", "x2")));
    // Written after the list was taken: the list returned the older versions.
    w.remember(cm("a", "5"));
    w.remember(cm("b", "x5"));
    w.observe(&watcher::Event::InitDone);
    // 2 < 5: the watch that follows the list delivers 5. Opaque versions cannot tell.
    assert_eq!(pending(&w.w), ["a@5"]);
    w.observe(&watcher::Event::Apply(cm("a", "5")));
    assert!(pending(&w.w).is_empty());
}

#[test]
fn of_two_writes_answered_out_of_order_the_newer_stays() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm("a", "1")));
    w.remember(cm("a", "7"));
    w.remember(cm("a", "6"));
    assert_eq!(pending(&w.w), ["a@7"]);
    w.remember(cm("a", "8"));
    assert_eq!(pending(&w.w), ["a@8"]);
}

#[test]
fn a_write_recorded_after_its_objects_deletion_is_dropped() {
    let mut w = Fed::new();
    w.observe(&watcher::Event::Apply(cm_uid("a", "1", "u1")));
    // The write removed the last finalizer: the deletion's event came before its answer.
    w.observe(&watcher::Event::Delete(cm_uid("a", "2", "u1")));
    w.remember(cm_uid("a", "2", "u1"));
    assert!(
        pending(&w.w).is_empty(),
        "a deleted object must not come back"
    );
    // An object created again under the same name is another object.
    w.remember(cm_uid("a", "4", "u2"));
    assert_eq!(pending(&w.w), ["a@4"]);
    // A label-filtered watch reports an object that stopped matching as deleted; a later
    // write of it (its label back) is newer than that deletion, and kept.
    w.observe(&watcher::Event::Delete(cm_uid("b", "5", "u3")));
    w.remember(cm_uid("b", "6", "u3"));
    assert_eq!(pending(&w.w), ["a@4", "b@6"]);
}

#[test]
fn a_verdict_holds_for_the_same_compared_version_and_desired_object_only() {
    let (cache, _events) = watch(
        futures::stream::empty::<Result<watcher::Event<ConfigMap>, watcher::Error>>(),
        keep_all,
        None,
    );
    let mut want = cm("a", "");
    want.metadata.resource_version = None;
    want.data = Some([("k".to_string(), "v".to_string())].into());
    let mut have = want.clone();
    have.metadata.resource_version = Some("7".into());
    assert!(cache.holds(&have, &want));
    assert!(
        cache
            .written()
            .verified
            .contains_key(&ObjectRef::from_obj(&have))
    );
    // The same version no longer holds a changed desired object.
    let mut changed = want.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    assert!(!cache.holds(&have, &changed));
    // Nor does a newer version that lost the field, though the desired object is the same.
    let mut edited = have.clone();
    edited.metadata.resource_version = Some("8".into());
    edited.data = None;
    assert!(!cache.holds(&edited, &want));
    // Where the kind has a generation, a newer version of the same generation and
    // metadata keeps the verdict (only its status can have changed) ...
    let mut versioned = have.clone();
    versioned.metadata.generation = Some(3);
    assert!(cache.holds(&versioned, &want));
    let mut status_only = versioned.clone();
    status_only.metadata.resource_version = Some("9".into());
    status_only.data = None; // stands in for a status change: not compared again
    assert!(cache.holds(&status_only, &want));
    // ... and a new generation or changed metadata loses it.
    let mut regenerated = status_only.clone();
    regenerated.metadata.generation = Some(4);
    assert!(!cache.holds(&regenerated, &want));
    let mut relabelled = status_only.clone();
    relabelled.metadata.labels = Some([("team".to_string(), "red".to_string())].into());
    assert!(!cache.holds(&relabelled, &want));
    // A deleted object's verdict is forgotten.
    cache.observe(&watcher::Event::Delete(have.clone()));
    assert!(cache.written().verified.is_empty());
}

fn labelled(name: &str, version: &str, team: &str) -> ConfigMap {
    let mut obj = cm(name, version);
    obj.metadata.labels = Some([("team".to_string(), team.to_string())].into());
    obj
}

fn team(obj: &ConfigMap) -> Vec<String> {
    obj.labels().get("team").cloned().into_iter().collect()
}

fn names_of(objs: Vec<Arc<ConfigMap>>) -> Vec<String> {
    let mut v: Vec<String> = objs
        .iter()
        .map(|o| format!("{}@{}", o.name_any(), o.resource_version().unwrap()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_index_finds_stored_objects_and_this_process_writes() {
    use futures::StreamExt;
    let events = vec![
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(labelled("a", "1", "red"))),
        Ok(watcher::Event::InitApply(labelled("b", "1", "blue"))),
        Ok(watcher::Event::InitDone),
        Ok(watcher::Event::Apply(labelled("c", "2", "red"))),
    ];
    let (cache, stream) = watch(futures::stream::iter(events), keep_all, Some(team));
    stream.for_each(|_| async {}).await;
    assert_eq!(names_of(cache.indexed("red")), ["a@1", "c@2"]);
    // A write moves "b" to red before the watch says so; a deletion removes "c".
    cache.remember(labelled("b", "3", "red"));
    cache.observe(&watcher::Event::Delete(labelled("c", "2", "red")));
    assert_eq!(names_of(cache.indexed("red")), ["a@1", "b@3"]);
    assert!(cache.indexed("blue").is_empty());
    assert!(cache.indexed("green").is_empty());
    let mut refs: Vec<String> = cache
        .indexed_refs("red")
        .iter()
        .map(|r| r.name.clone())
        .collect();
    refs.sort();
    assert_eq!(refs, ["a", "b"]);
}

#[test]
fn an_older_version_does_not_index_over_a_newer_write() {
    let (cache, _events) = watch(
        futures::stream::empty::<Result<watcher::Event<ConfigMap>, watcher::Error>>(),
        keep_all,
        Some(team),
    );
    cache.observe(&watcher::Event::Apply(labelled("a", "1", "blue")));
    // This process moves "a" to red; the provider's update of the old version comes after.
    cache.remember(labelled("a", "3", "red"));
    cache.observe(&watcher::Event::Apply(labelled("a", "2", "blue")));
    assert_eq!(names_of(cache.indexed("red")), ["a@3"]);
    assert!(cache.indexed_refs("blue").is_empty());
    // The write's echo: indexed by what the watch delivered from then on.
    cache.observe(&watcher::Event::Apply(labelled("a", "3", "red")));
    cache.observe(&watcher::Event::Apply(labelled("a", "4", "green")));
    assert_eq!(cache.indexed_refs("green").len(), 1);
    assert!(cache.indexed_refs("red").is_empty());
}

#[test]
fn only_opaque_versions_are_recorded_and_a_few_of_them() {
    // Comparable versions: the store's newest answers, nothing is recorded.
    let mut w = Fed::new();
    for v in 1..10 {
        w.observe(&watcher::Event::Apply(cm("a", &v.to_string())));
    }
    assert!(w.w.seen.is_empty());
    w.remember(cm("a", "3"));
    w.remember(cm("a", "9"));
    assert!(pending(&w.w).is_empty(), "3 and 9 were delivered");
    w.remember(cm("a", "99999999999999999999999"));
    assert_eq!(
        pending(&w.w),
        ["a@99999999999999999999999"],
        "beyond u64 is later"
    );
    // Opaque ones (here "0", not a comparable version): the last few as they came.
    let mut w = Fed::new();
    for v in 0..10 {
        w.observe(&watcher::Event::Apply(cm("b", &format!("0{v}"))));
    }
    let recent = w.w.seen.values().next().expect("opaque versions are kept");
    assert_eq!(recent.iter().collect::<Vec<_>>(), ["06", "07", "08", "09"]);
    w.remember(cm("b", "07"));
    assert!(pending(&w.w).is_empty(), "07 was delivered, then 08 and 09");
    w.remember(cm("b", "05"));
    assert_eq!(
        pending(&w.w),
        ["b@05"],
        "05 is too old to be remembered as delivered"
    );
}

#[test]
fn keys_carry_no_uid_or_version_and_find_the_same_objects() {
    let mut obj = cm("a", "7");
    obj.metadata.uid = Some("u".into());
    let key = key_of(&obj);
    assert_eq!(
        (
            key.extra.uid.as_deref(),
            key.extra.resource_version.as_deref()
        ),
        (None, None)
    );
    assert_eq!(
        key,
        ObjectRef::from_obj(&obj),
        "equal to the full reference"
    );
    let (cache, _events) = watch(
        futures::stream::empty::<Result<watcher::Event<ConfigMap>, watcher::Error>>(),
        keep_all,
        None,
    );
    cache.remember(obj);
    assert_eq!(
        cache
            .get(&ObjectRef::new("a").within("ns"))
            .map(|o| o.resource_version()),
        Some(Some("7".to_string()))
    );
}

#[test]
fn deleting_or_relisting_without_an_object_leaves_no_entry_behind() {
    let (cache, _events) = watch(
        futures::stream::empty::<Result<watcher::Event<ConfigMap>, watcher::Error>>(),
        keep_all,
        Some(|c: &ConfigMap| vec![c.name_any()]),
    );
    let mut want = cm("a", "");
    want.metadata.resource_version = None;
    for name in ["a", "b"] {
        cache.observe(&watcher::Event::Apply(cm(name, "x1")));
        cache.remember(cm(name, "x2"));
    }
    assert!(cache.holds(&cm("a", "x2"), &want), "a verdict for a");
    let entries = |cache: &Cache<ConfigMap>| {
        let w = cache.written();
        let index = ["a", "b"]
            .iter()
            .filter(|k| w.index.as_ref().unwrap().get(k).count() > 0)
            .count();
        (w.pending.len(), w.seen.len(), w.verified.len(), index)
    };
    assert_eq!(entries(&cache), (2, 2, 1, 2));
    cache.observe(&watcher::Event::Delete(cm("a", "x3")));
    assert_eq!(entries(&cache), (1, 1, 0, 1), "only b is left");
    // "b" was deleted while the watch was down: the relist does not return it.
    for event in [
        watcher::Event::Init,
        watcher::Event::InitApply(cm("c", "x4")),
        watcher::Event::InitDone,
    ] {
        cache.observe(&event);
    }
    let w = cache.written();
    assert!(w.pending.is_empty() && w.verified.is_empty());
    // A relisted object's versions are read from the store, so none is recorded for "c".
    assert!(w.seen.is_empty(), "{:?}", w.seen.keys().collect::<Vec<_>>());
    assert_eq!(w.index.as_ref().unwrap().get("b").count(), 0);
}

#[tokio::test]
async fn a_watch_that_cannot_connect_retries_with_backoff() {
    use futures::StreamExt;
    // Nothing listens on port 1 of the loopback: every attempt fails at once.
    let config = kube::Config::new("http://127.0.0.1:1".parse().expect("a URL"));
    let client = kube::Client::try_from(config).expect("a client");
    let (_cache, events) = watch(
        kube::runtime::watcher(
            kube::Api::<ConfigMap>::all(client),
            watcher::Config::default(),
        ),
        keep_all,
        None,
    );
    let window = tokio::time::sleep(std::time::Duration::from_secs(2));
    let attempts = events
        .take_until(window)
        .filter(|e| std::future::ready(e.is_err()))
        .count()
        .await;
    // After 0.5 s, then 1 s: attempts at 0, 0.5 and 1.5 s (thousands without a backoff).
    assert!((2..=3).contains(&attempts), "{attempts} attempts in 2 s");
}

#[tokio::test]
async fn a_packed_cache_reads_writes_and_relists_like_a_plain_one() {
    use futures::StreamExt;
    let labelled = |name: &str, version: &str| {
        let mut c = cm_uid(name, version, &format!("uid-{name}"));
        c.metadata.labels = Some([("app".to_string(), name.to_string())].into());
        c.data = Some([("k".to_string(), version.to_string())].into());
        c
    };
    let events = [
        watcher::Event::Init,
        watcher::Event::InitApply(labelled("a", "1")),
        watcher::Event::InitApply(labelled("b", "2")),
        watcher::Event::InitDone,
        watcher::Event::Apply(labelled("a", "3")),
        // A relist that no longer returns "b".
        watcher::Event::Init,
        watcher::Event::InitApply(labelled("a", "3")),
        watcher::Event::InitDone,
    ];
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let packing = Packing {
        meta: super::super::packed::identity,
    };
    let (cache, out) = watch_packed(rx, keep_all, None, packing);
    let mut out = out.boxed();
    let mut seen = Vec::new();
    for event in events {
        tx.unbounded_send(Ok(event)).expect("sent");
        // Drain what the event let through.
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(std::time::Duration::from_millis(20), out.next()).await
        {
            seen.push(e);
        }
        if seen.len() == 5 {
            // After the first list and the update: reads decode the newest object.
            let a = cache.get_named(Some("ns"), "a").expect("a is cached");
            assert_eq!(a.as_ref(), &labelled("a", "3"));
            // A write lays over it until its echo.
            cache.remember(labelled("a", "4"));
            let a = cache.get_named(Some("ns"), "a").expect("a is cached");
            assert_eq!(a.resource_version().as_deref(), Some("4"));
            let b = cache.filter_by_meta(|m| m.name.as_deref() == Some("b"));
            assert_eq!(b.len(), 1);
        }
    }
    // The relist's deletion of "b" reaches consumers decoded.
    let deleted: Vec<ConfigMap> = seen
        .into_iter()
        .filter_map(|e| match e {
            watcher::Event::Delete(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![labelled("b", "2")]);
    assert!(cache.get_named(Some("ns"), "b").is_none());
    // The relist returned version 3 and the write was 4: it stays laid over the store.
    let a = cache.get_named(Some("ns"), "a").expect("a is cached");
    assert_eq!(a.resource_version().as_deref(), Some("4"));
}

#[tokio::test]
async fn latest_reads_nothing_for_the_stored_version_and_counts_read_only_metadata() {
    use futures::StreamExt;
    let stored = cm_uid("a", "3", "u1");
    let mut deleting = cm_uid("b", "4", "u2");
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
    );
    let events = [
        watcher::Event::Init,
        watcher::Event::InitApply(stored.clone()),
        watcher::Event::InitApply(deleting),
        watcher::Event::InitDone,
    ];
    let (cache, out) = watch_packed(
        futures::stream::iter(events.map(Ok)),
        keep_all,
        Some(|_: &ConfigMap| vec!["all".to_string()]),
        Packing {
            meta: |meta| ObjectMeta {
                deletion_timestamp: meta.deletion_timestamp.clone(),
                ..super::super::packed::identity(meta)
            },
        },
    );
    assert_eq!(out.collect::<Vec<_>>().await.len(), 4, "every event passed");
    // The same version as stored: the object passed in, not a decoded copy.
    let stored = Arc::new(stored);
    let latest = cache.latest(Arc::clone(&stored));
    assert!(Arc::ptr_eq(&latest, &stored));
    // An older object passed in: the stored one, decoded.
    let older = Arc::new(cm_uid("a", "2", "u1"));
    assert_eq!(cache.latest(older).resource_version().as_deref(), Some("3"));
    // A write of this process is newer.
    cache.remember(cm_uid("a", "5", "u1"));
    assert_eq!(
        cache
            .latest(Arc::clone(&stored))
            .resource_version()
            .as_deref(),
        Some("5")
    );
    // Two objects under the index key, one being deleted.
    assert_eq!(cache.count_indexed("all", |_| true), 2);
    assert_eq!(
        cache.count_indexed("all", |m| m.deletion_timestamp.is_none()),
        1
    );
}
