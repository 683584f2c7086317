//! Publishing Kubernetes Events (events.k8s.io/v1) as series, remembering a few bytes per
//! series instead of the whole Event.
//!
//! Builds on the same API as kube-runtime's `Recorder` (a POST for a new Event, a merge patch
//! when it repeats within 6 minutes; here the patch holds `series` only, where the Recorder
//! sends the whole Event again), which is not enough here: the Recorder keeps
//! every Event it published, whole, with its key (two `ObjectReference`s and four strings), for
//! 6 minutes, about 1.4 KB of hash-table slot per Event before its strings. At 200 clusters
//! with 8 profiles that table was 2.8 MiB of the operator's 65 MiB heap peak (heaptrack,
//! BENCHMARKS.md), growing with the fleet. A series here is a 64-bit key and its Event's name,
//! namespace, count and last time.
//!
//! The note is part of a series' key, as in client-go's core/v1 event correlator
//! (`tools/record`, which aggregates by message) and unlike the Recorder and client-go's
//! `tools/events` (whose repeats keep the first note): an event with a new note is a new Event,
//! never a count on one that shows an older note.
//!
//! Two publishes of one event at the same moment may both POST (as with the Recorder); the
//! controllers' de-duplication (`runtime::events`) keeps the same event from being sent twice
//! in a row.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client};

use super::lock;

/// How long a published Event takes repeats as a series count, as kube-runtime's Recorder and
/// client-go's event broadcaster (6 minutes after the last occurrence).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// Publishes Events on behalf of one controller instance (`reportingController`,
/// `reportingInstance`), folding repeats into series. Cheap to share: one per process.
pub struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    field_manager: String,
    series: Mutex<Series>,
}

/// What to send for an occurrence of an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// The first within [`SERIES_TTL`]: a new Event.
    First,
    /// A repeat: the series of the Event named `name` now counts `count` occurrences.
    Repeat {
        /// The series' Event.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Occurrences so far, this one included (2 or more).
        count: i32,
    },
}

/// The live series, by key, and when each was first recorded (for eviction).
#[derive(Default)]
pub struct Series {
    by_key: HashMap<u64, Entry>,
    /// Exactly one (time, key) pair per entry of `by_key`: the series' last occurrence when the
    /// pair was queued. Eviction re-queues a pair whose series occurred again since, and an
    /// entry leaves the map only when its pair leaves the queue, so the queue stays as long as
    /// the map however often events repeat, end and start again.
    order: VecDeque<(Instant, u64)>,
}

struct Entry {
    name: String,
    namespace: String,
    /// Occurrences so far; 0 once the series ended (its Event is gone, or it expired before its
    /// pair came up): the entry waits for its pair, and the next occurrence starts a new series.
    count: i32,
    /// Last occurrence, on the monotonic clock (a wall clock stepped back would stall eviction).
    last: Instant,
}

impl Series {
    /// Forgets the series whose last occurrence is [`SERIES_TTL`] or more before `now`.
    fn evict(&mut self, now: Instant) {
        // Each pair is looked at once per call: re-queued ones wait for a later call.
        for _ in 0..self.order.len() {
            let Some(&(at, key)) = self.order.front() else {
                break;
            };
            if now.saturating_duration_since(at) < SERIES_TTL {
                break;
            }
            self.order.pop_front();
            match self.by_key.get(&key) {
                Some(entry) if now.saturating_duration_since(entry.last) < SERIES_TTL => {
                    self.order.push_back((entry.last, key));
                }
                Some(_) => {
                    self.by_key.remove(&key);
                }
                None => {}
            }
        }
    }

    /// What an occurrence of the event `key` at `now` is: the first of its series, or a
    /// repeat (counted here; [`Series::created`] records a first once it is published).
    pub fn occur(&mut self, key: u64, now: Instant) -> Occurrence {
        self.evict(now);
        let Some(entry) = self.by_key.get_mut(&key).filter(|e| e.count > 0) else {
            return Occurrence::First;
        };
        // Expired, but its pair was re-queued behind newer ones: a new series all the same.
        if now.saturating_duration_since(entry.last) >= SERIES_TTL {
            entry.count = 0;
            return Occurrence::First;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        Occurrence::Repeat {
            name: entry.name.clone(),
            namespace: entry.namespace.clone(),
            count: entry.count,
        }
    }

    /// Records the Event `name` in `namespace` published for the first occurrence of `key`.
    pub fn created(&mut self, key: u64, name: String, namespace: String, now: Instant) {
        let entry = Entry {
            name,
            namespace,
            count: 1,
            last: now,
        };
        // An ended series' entry still has its pair queued: reuse both.
        if self.by_key.insert(key, entry).is_none() {
            self.order.push_back((now, key));
        }
    }

    /// Ends `key`'s series (its Event is gone: the next occurrence starts a new one).
    pub fn forget(&mut self, key: u64) {
        if let Some(entry) = self.by_key.get_mut(&key) {
            entry.count = 0;
        }
    }

    /// Live series remembered.
    pub fn len(&self) -> usize {
        self.by_key.values().filter(|e| e.count > 0).count()
    }

    /// Whether no live series is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a series: type, reason, action, the object it is about, the related object and
/// the note (the reporting controller and instance are the same for every event of one
/// publisher).
pub fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    matches!(event.type_, EventType::Warning).hash(&mut hasher);
    (&event.reason, &event.action, &event.note).hash(&mut hasher);
    hash_reference(regarding, &mut hasher);
    match &event.secondary {
        Some(related) => {
            true.hash(&mut hasher);
            hash_reference(related, &mut hasher);
        }
        None => false.hash(&mut hasher),
    }
    hasher.finish()
}

fn hash_reference(r: &ObjectReference, hasher: &mut impl Hasher) {
    (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(hasher);
}

impl Publisher {
    /// A publisher reporting as `controller` (also the field manager of its writes) and
    /// `instance` (the controller's name when None, as kube-runtime's Recorder does).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Publisher {
        Publisher {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            field_manager: controller.to_string(),
            series: Mutex::default(),
        }
    }

    /// Publishes `event` about `regarding`: a new Event (in its namespace, `default` for a
    /// cluster-scoped object), or, when the same event was published less than
    /// [`SERIES_TTL`] ago, a merge patch of that Event's `series` (count and last time).
    ///
    /// # Errors
    /// The API server's answer to the POST or PATCH (RBAC needs `create` and `patch` on
    /// `events.k8s.io` `events`). A series whose Event is gone (404) starts again with a POST.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let (now, at) = (Timestamp::now(), Instant::now());
        let occurrence = lock(&self.series).occur(key, at);
        if let Occurrence::Repeat {
            name,
            namespace,
            count,
        } = occurrence
        {
            let patch = serde_json::json!({ "series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            } });
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let params = PatchParams {
                field_manager: Some(self.field_manager.clone()),
                ..Default::default()
            };
            match api.patch(&name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // The Event is gone (the API server's event TTL, or deleted by hand): this
                // occurrence starts a new one. Any other error keeps the series, whose count
                // already holds this occurrence for the next patch.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    lock(&self.series).forget(key);
                }
                Err(e) => return Err(e),
            }
        }
        let object = self.new_event(event, regarding, now);
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        let params = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        };
        api.create(&params, &object).await?;
        lock(&self.series).created(key, name, namespace, at);
        Ok(())
    }

    /// The new Event for a first occurrence, named `<object>.<nanoseconds, hex>` as kubectl
    /// and client-go name theirs.
    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }

    /// Series remembered now (for tests and the bench).
    pub fn series(&self) -> usize {
        lock(&self.series).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str, related: Option<&str>) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: reason.into(),
            secondary: related.map(|name| ObjectReference {
                name: Some(name.into()),
                ..Default::default()
            }),
        }
    }

    fn about(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("CAPTControlPlane".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    #[test]
    fn the_key_tells_series_apart_by_note_related_object_and_object() {
        let base = series_key(&event("Ready", "n", Some("a")), &about("x"));
        assert_eq!(
            base,
            series_key(&event("Ready", "n", Some("a")), &about("x"))
        );
        for other in [
            series_key(&event("Ready", "n2", Some("a")), &about("x")),
            series_key(&event("Ready", "n", Some("b")), &about("x")),
            series_key(&event("Ready", "n", None), &about("x")),
            series_key(&event("Failed", "n", Some("a")), &about("x")),
            series_key(&event("Ready", "n", Some("a")), &about("y")),
        ] {
            assert_ne!(base, other);
        }
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    #[test]
    fn repeats_count_on_the_first_event_until_six_minutes_after_the_last() {
        let mut series = Series::default();
        let t0 = Instant::now();
        assert_eq!(series.occur(1, t0), Occurrence::First);
        series.created(1, "x.1".into(), "ns".into(), t0);
        let repeat = |count| Occurrence::Repeat {
            name: "x.1".into(),
            namespace: "ns".into(),
            count,
        };
        assert_eq!(series.occur(1, t0 + mins(5)), repeat(2));
        // 10 minutes after the first, 5 after the last: still the same series.
        assert_eq!(series.occur(1, t0 + mins(10)), repeat(3));
        // Six minutes after the last: a new Event.
        assert_eq!(series.occur(1, t0 + mins(16)), Occurrence::First);
        assert!(series.is_empty(), "the old series is gone");
        series.created(1, "x.2".into(), "ns".into(), t0 + mins(16));
        assert_eq!(series.occur(1, t0 + mins(17)), repeat_of("x.2", 2));
        assert_eq!(
            series.order.len(),
            1,
            "the new series took the old one's pair"
        );
        series.occur(2, t0 + mins(30));
        assert!(series.by_key.is_empty() && series.order.is_empty());
    }

    fn repeat_of(name: &str, count: i32) -> Occurrence {
        Occurrence::Repeat {
            name: name.into(),
            namespace: "ns".into(),
            count,
        }
    }

    #[test]
    fn a_series_whose_event_is_gone_starts_again_on_the_same_pair() {
        let mut series = Series::default();
        let t0 = Instant::now();
        for round in 1..=100 {
            let at = t0 + Duration::from_secs(round);
            assert_eq!(series.occur(1, at), Occurrence::First, "round {round}");
            series.created(1, format!("x.{round}"), "ns".into(), at);
            assert_eq!(series.occur(1, at), repeat_of(&format!("x.{round}"), 2));
            series.forget(1);
            assert!(series.is_empty());
            assert_eq!(series.order.len(), 1, "round {round}");
        }
        series.occur(2, t0 + mins(20));
        assert!(series.by_key.is_empty() && series.order.is_empty());
    }

    #[test]
    fn a_series_keeps_one_pair_however_often_it_repeats() {
        let mut series = Series::default();
        let t0 = Instant::now();
        series.created(1, "x.1".into(), "ns".into(), t0);
        for second in 1..=1_000 {
            let at = t0 + Duration::from_secs(second);
            assert!(matches!(series.occur(1, at), Occurrence::Repeat { .. }));
            assert_eq!(series.order.len(), 1, "at {second} s");
        }
        let last = t0 + Duration::from_secs(1_000);
        assert!(
            matches!(
                series.occur(1, last + mins(5)),
                Occurrence::Repeat { count: 1_002, .. }
            ),
            "counted from the first occurrence"
        );
    }

    #[test]
    fn series_of_other_keys_are_evicted_on_their_own_clock() {
        let mut series = Series::default();
        let t0 = Instant::now();
        series.created(1, "a.1".into(), "ns".into(), t0);
        series.created(2, "b.1".into(), "ns".into(), t0 + mins(4));
        assert_eq!(series.occur(3, t0 + mins(6)), Occurrence::First);
        assert_eq!(series.len(), 1, "the first key is gone, the second is not");
        assert!(matches!(
            series.occur(2, t0 + mins(6)),
            Occurrence::Repeat { count: 2, .. }
        ));
        series.forget(2);
        assert!(series.is_empty());
    }
}
