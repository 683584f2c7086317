//! The objects that make a controller reconcile its own kind, from that kind's watch events:
//! kube-runtime's `applied_objects()`, except that a relist's objects are passed on only once
//! the store holds them.
//!
//! kube-runtime's reflector keeps a relist's objects (`InitApply`) aside and swaps them into the
//! store at `InitDone`, while `applied_objects()` passes each on at once. The controller then
//! looks the object up in that store; an object the store does not hold yet (created while the
//! watch was down: an API server restart, an expired watch) ends as `ObjectNotFound`, and
//! nothing retries it: the predicate filter has already taken its version. A fault test lost an
//! apply created 90 ms before the apply watch relisted after an API server restart; a 200 × 8
//! fault run of the benchmark left 12 Workspaces that the simulated provider, built the same
//! way, never reconciled. controller-runtime's informers update their store before they call
//! the handlers, so provider-terraform does not lose them; neither does [`applied_objects`].
//!
//! Meanwhile only the relisted objects' keys are kept (about 200 bytes each), not the objects:
//! they are read from the store, one at a time, when the relist is done.

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::{self, Event};

/// The objects of `events` (a watch of `K` whose reflector writes `store`) that a controller of
/// `K` should reconcile: each `Apply` as it comes, and every object of a (re)list once the
/// list is done, read from `store` (an object deleted meanwhile is skipped); watch errors pass
/// through. Deletions are dropped, as `applied_objects()` drops them.
pub fn applied_objects<K, S>(
    events: S,
    store: Store<K>,
) -> impl Stream<Item = watcher::Result<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let mut relisted: Vec<ObjectRef<K>> = Vec::new();
    events.flat_map(move |event| {
        let out: Box<dyn Iterator<Item = watcher::Result<K>> + Send> = match event {
            Ok(Event::Apply(obj)) => Box::new(std::iter::once(Ok(obj))),
            Ok(Event::Init) => {
                relisted.clear();
                Box::new(std::iter::empty())
            }
            Ok(Event::InitApply(obj)) => {
                relisted.push(super::cache::key_of(&obj));
                Box::new(std::iter::empty())
            }
            Ok(Event::InitDone) => {
                let store = store.clone();
                Box::new(
                    std::mem::take(&mut relisted)
                        .into_iter()
                        .filter_map(move |key| store.get(&key))
                        .map(|obj| Ok(K::clone(&obj))),
                )
            }
            Ok(Event::Delete(_)) => Box::new(std::iter::empty()),
            Err(e) => Box::new(std::iter::once(Err(e))),
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
    use kube::runtime::reflector;

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

    /// What a controller sees: each object passed on, and whether the store held it then.
    async fn seen_by_controller(
        events: Vec<Event<ConfigMap>>,
        adapt: impl FnOnce(
            futures::stream::BoxStream<'static, watcher::Result<Event<ConfigMap>>>,
            Store<ConfigMap>,
        ) -> futures::stream::BoxStream<'static, watcher::Result<ConfigMap>>,
    ) -> Vec<(String, bool)> {
        let (store, writer) = reflector::store();
        let reflected = futures::stream::iter(events.into_iter().map(Ok))
            .reflect(writer)
            .boxed();
        let objects = adapt(reflected, store.clone());
        objects
            .map(|obj| {
                let obj = obj.unwrap();
                let held = store.get(&ObjectRef::from_obj(&obj)).is_some();
                (obj.name_any(), held)
            })
            .collect()
            .await
    }

    fn relist_after_an_object_was_created() -> Vec<Event<ConfigMap>> {
        vec![
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitDone,
            Event::Apply(cm("b")),
            // The watch broke; "c" was created meanwhile and arrives in the relist.
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitApply(cm("b")),
            Event::InitApply(cm("c")),
            Event::InitDone,
            Event::Delete(cm("a")),
        ]
    }

    #[tokio::test]
    async fn a_relisted_object_is_passed_on_once_the_store_holds_it() {
        let seen = seen_by_controller(relist_after_an_object_was_created(), |events, store| {
            applied_objects(events, store).boxed()
        })
        .await;
        let expected = [
            ("a", true),
            ("b", true),
            ("a", true),
            ("b", true),
            ("c", true),
        ];
        assert_eq!(
            seen,
            expected.map(|(n, held)| (n.to_string(), held)).to_vec()
        );
    }

    /// The defect this module exists for, shown on kube-runtime's own adapter: "c" reaches the
    /// controller before the store holds it.
    #[tokio::test]
    async fn kube_runtimes_applied_objects_passes_on_what_the_store_lacks() {
        let seen = seen_by_controller(relist_after_an_object_was_created(), |events, _| {
            events.applied_objects().boxed()
        })
        .await;
        assert!(seen.contains(&("c".to_string(), false)), "{seen:?}");
    }

    #[tokio::test]
    async fn an_object_deleted_before_the_relist_was_read_is_skipped() {
        // The store already lost "a" (its deletion reached the reflector first).
        let (store, mut writer) = reflector::store();
        for event in [Event::Init, Event::InitApply(cm("b")), Event::InitDone] {
            writer.apply_watcher_event(&event);
        }
        let relist = [
            Event::Init,
            Event::InitApply(cm("a")),
            Event::InitApply(cm("b")),
            Event::InitDone,
        ];
        let objects: Vec<_> = applied_objects(futures::stream::iter(relist.map(Ok)), store)
            .map(|o| o.unwrap().name_any())
            .collect()
            .await;
        assert_eq!(objects, ["b"]);
    }
}
