//! A watch's events as its consumers should see them: a (re)list's objects only once the
//! reflector's store holds them, and the objects a relist no longer has as deletions.
//!
//! kube-runtime's reflector keeps a relist's objects (`InitApply`) aside and swaps them into the
//! store at `InitDone`, while it passes each event on at once. A controller woken by such an
//! event (its own kind through `applied_objects()`, another kind through a mapper) reads a store
//! that does not hold the relist yet: its own object is missing (the reconcile ends as
//! `ObjectNotFound`, and nothing retries it: the predicate filter has already taken its
//! version), or a related object is still the old one (an unpaused Cluster read as paused
//! waits for a change that already came). A fault test lost an apply created 90 ms before the
//! apply watch relisted after an API server restart; a 200 × 8 fault run of the benchmark left
//! 12 Workspaces that the simulated provider, built the same way, never reconciled. And an
//! object deleted while the watch was down leaves the store at the swap without any event, so
//! no controller learns of it until its next resync. controller-runtime's informers update the
//! store before they call handlers and report a relist's deletions, so provider-terraform has
//! neither problem; a watch through [`after_store`] has neither.
//!
//! During a relist only the keys of the relisted objects are kept (about 200 bytes each), and
//! the objects the store held when the relist began (shared `Arc`s, which the reflector keeps
//! until its swap anyway). At its end the relisted objects are read from the store, all at
//! once into the fan-out's queues (`shared::fan_out`), which costs a copy of them while the
//! controllers drain it. The first list passes through as it comes: there the store is empty,
//! kube-runtime holds a controller's reconciles until its store is ready, and every reconcile
//! waits for all caches (`controller::CACHES_FILLING`); deferring it measured +27 MiB on a
//! restarted operator's peak at 200 × 8 (108.8 MiB against 82.0, BENCHMARKS.md).

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};

use super::packed::{Backing, Snapshot};

/// `events` (a watch of `K` whose reflector writes `store`, already applied to it) with each
/// relist after the first list delivered whole at its end: `Init` as it comes, then at
/// `InitDone` every relisted
/// object read from `store` as `InitApply` (one deleted meanwhile is skipped), `InitDone`, and
/// a `Delete` for each object the store held before the relist and the relist did not return.
/// Other events and watch errors pass through.
pub fn after_store<K, S, B>(
    events: S,
    store: B,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    B: Backing<K>,
{
    let mut before: Option<Snapshot<K>> = None;
    let mut relisted: Vec<ObjectRef<K>> = Vec::new();
    let mut listed = false;
    events.flat_map(move |event| {
        type Out<K> = Box<dyn Iterator<Item = watcher::Result<Event<K>>> + Send>;
        if !listed {
            listed = matches!(event, Ok(Event::InitDone));
            let out: Out<K> = Box::new(std::iter::once(event));
            return futures::stream::iter(out);
        }
        let out: Out<K> = match event {
            Ok(Event::Init) => {
                relisted.clear();
                before = Some(store.snapshot());
                Box::new(std::iter::once(Ok(Event::Init)))
            }
            Ok(Event::InitApply(obj)) => {
                relisted.push(super::cache::key_of(&obj));
                Box::new(std::iter::empty())
            }
            Ok(Event::InitDone) => {
                let keys = std::mem::take(&mut relisted);
                let returned: HashSet<ObjectRef<K>> = keys.iter().cloned().collect();
                let gone = before
                    .take()
                    .map(|b| b.gone(&returned))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|obj| Ok(Event::Delete(obj)));
                let store = store.clone();
                let relist = keys
                    .into_iter()
                    .filter_map(move |key| store.get(&key))
                    .map(|obj| Ok(Event::InitApply(Arc::unwrap_or_clone(obj))));
                Box::new(
                    relist
                        .chain(std::iter::once(Ok(Event::InitDone)))
                        .chain(gone),
                )
            }
            other => Box::new(std::iter::once(other)),
        };
        futures::stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use kube::api::ObjectMeta;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::reflector::{self, Store};

    fn cm(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// `events` through a reflector and `adapt`, as a consumer sees them: each event, and for
    /// an object whether the store held it at that moment (`!` when it did not).
    async fn consumed(
        events: Vec<watcher::Result<Event<ConfigMap>>>,
        adapt: impl FnOnce(
            futures::stream::BoxStream<'static, watcher::Result<Event<ConfigMap>>>,
            Store<ConfigMap>,
        )
            -> futures::stream::BoxStream<'static, watcher::Result<Event<ConfigMap>>>,
    ) -> Vec<String> {
        let (store, writer) = reflector::store();
        let reflected = futures::stream::iter(events).reflect(writer).boxed();
        let held = |obj: &ConfigMap| {
            let mark = if store.get(&ObjectRef::from_obj(obj)).is_some() {
                ""
            } else {
                "!"
            };
            format!("{}{mark}", obj.name_any())
        };
        adapt(reflected, store.clone())
            .map(|event| match event {
                Ok(Event::Init) => "Init".to_string(),
                Ok(Event::InitApply(o)) => format!("InitApply {}", held(&o)),
                Ok(Event::InitDone) => "InitDone".to_string(),
                Ok(Event::Apply(o)) => format!("Apply {}", held(&o)),
                Ok(Event::Delete(o)) => format!("Delete {}", o.name_any()),
                Err(e) => format!("Err {e}"),
            })
            .collect()
            .await
    }

    /// "b" is deleted and "c" created while the watch is down; the relist has "a" and "c".
    fn outage() -> Vec<watcher::Result<Event<ConfigMap>>> {
        [
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitApply(cm("b")),
            Event::InitDone,
            Event::Apply(cm("a")),
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitApply(cm("c")),
            Event::InitDone,
        ]
        .into_iter()
        .map(Ok)
        .collect()
    }

    #[tokio::test]
    async fn a_relist_reaches_consumers_once_the_store_holds_it_with_its_deletions() {
        let seen = consumed(outage(), |events, store| after_store(events, store).boxed()).await;
        assert_eq!(
            seen,
            [
                "Init",
                // The first list passes as it comes (see the module doc).
                "InitApply a!",
                "InitApply b!",
                "InitDone",
                "Apply a",
                "Init",
                "InitApply a",
                "InitApply c",
                "InitDone",
                "Delete b",
            ]
        );
    }

    /// Without it, kube-runtime's reflector passes "c" on before its store holds it (what a
    /// controller then reconciles as `ObjectNotFound`), and "b"'s deletion is never told.
    #[tokio::test]
    async fn without_it_a_relisted_object_comes_before_the_store_holds_it() {
        let seen = consumed(outage(), |events, _| events).await;
        assert!(seen.contains(&"InitApply c!".to_string()), "{seen:?}");
        assert!(!seen.iter().any(|e| e.starts_with("Delete")), "{seen:?}");
    }

    #[tokio::test]
    async fn a_relist_broken_by_an_error_is_delivered_by_the_next_one() {
        let events = vec![
            Ok(Event::Init),
            Ok(Event::InitDone),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("a"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("b"))),
            Ok(Event::InitDone),
        ];
        let seen = consumed(events, |events, store| after_store(events, store).boxed()).await;
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(seen[..3], ["Init", "InitDone", "Init"]);
        assert!(seen[3].starts_with("Err"), "{seen:?}");
        assert_eq!(seen[4..], ["Init", "InitApply b", "InitDone"]);
    }

    #[tokio::test]
    async fn an_object_gone_from_the_store_before_it_is_read_is_skipped() {
        // The store already lost "a" (a later deletion reached the reflector first).
        let (store, mut writer) = reflector::store();
        for event in [Event::Init, Event::InitApply(cm("b")), Event::InitDone] {
            writer.apply_watcher_event(&event);
        }
        let relist = [
            // The first (empty) list, then the relist.
            Event::Init,
            Event::InitDone,
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitApply(cm("b")),
            Event::InitDone,
        ];
        let objects: Vec<_> = after_store(futures::stream::iter(relist.map(Ok)), store)
            .applied_objects()
            .map(|o| o.unwrap().name_any())
            .collect()
            .await;
        assert_eq!(objects, ["b"]);
    }
}
