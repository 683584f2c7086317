//! How each watch fills its cache: a streaming list where the API server offers one, else a
//! list from the API server's watch cache.
//!
//! A list at `resourceVersion=0` (kube's `any_semantic`) is served from the API server's watch
//! cache, which ignores the page size: a restarted operator received all 1,800 Workspaces of
//! the benchmark in one response and decoded them, managed fields and module text included,
//! before the cache trimmed them; that response was the operator's peak memory
//! (BENCHMARKS.md). A streaming list (Kubernetes' `WatchList`, `sendInitialEvents=true`) sends
//! the same objects as watch events from the same watch cache, one at a time, so each is
//! trimmed before the next is decoded; kube-runtime's watcher does it
//! (`InitialListStrategy::StreamingList`).
//!
//! The `WatchList` feature gate is on by default in Kubernetes 1.32 and 1.34 and off in 1.33,
//! where the API server answers such a watch with 422 Unprocessable Entity; so the operator
//! asks once at start ([`streaming_lists_served`]) and falls back to the list.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// The annotation of the bookmark that ends a streaming list.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A name no object has, so that the probe's list is empty.
const PROBE_NAME: &str = "capt-fargate-streaming-list-probe";

/// How long the probe may take before the list is used instead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The watch configuration of every cache: a streaming list if `streaming`, else a list from
/// the API server's watch cache (`resourceVersion=0`, cheaper than a consistent list from
/// etcd). Bookmarks are on in both (kube's default).
pub fn config(streaming: bool) -> watcher::Config {
    let config = watcher::Config::default();
    if streaming {
        config.streaming_lists()
    } else {
        config.any_semantic()
    }
}

/// Whether the API server serves streaming lists of `api`'s kind: a watch with
/// `sendInitialEvents=true` for a name no object has ends its (empty) initial list with the
/// bookmark that marks it. Any other answer, an error or no answer within 10 s means no.
pub async fn streaming_lists_served<K>(api: &Api<K>) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let params = WatchParams::streaming_lists()
        .fields(&format!("metadata.name={PROBE_NAME}"))
        .timeout(PROBE_TIMEOUT.as_secs() as u32);
    let probe = async {
        let Ok(events) = api.watch(&params, "0").await else {
            return false;
        };
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    if bookmark
                        .metadata
                        .annotations
                        .contains_key(INITIAL_EVENTS_END)
                    {
                        return true;
                    }
                }
                Ok(WatchEvent::Added(_) | WatchEvent::Modified(_)) => {}
                _ => return false,
            }
        }
        false
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::{InitialListStrategy, ListSemantic};

    #[test]
    fn streaming_or_a_list_from_the_watch_cache() {
        let streaming = config(true);
        assert_eq!(
            streaming.initial_list_strategy,
            InitialListStrategy::StreamingList
        );
        assert!(streaming.bookmarks);
        let listing = config(false);
        assert_eq!(
            listing.initial_list_strategy,
            InitialListStrategy::ListWatch
        );
        assert_eq!(listing.list_semantic, ListSemantic::Any);
        assert!(listing.bookmarks);
    }
}
