//! De-duplication of Kubernetes Events. `event_series` already folds a repeated
//! event into a series (a count on one Event object), but every repeat is still a request;
//! a reconcile that runs on a cached object older than its own status write would publish the
//! same transition again. [`SentEvents`] remembers the last note per series and skips repeats.

use std::collections::HashMap;
use std::sync::Mutex;

use super::lock;

/// The last note published per (object uid, reason and related object): the same event is
/// not sent twice in a row. Owned by the controllers' `Context`; every deletion path calls
/// [`SentEvents::forget`].
#[derive(Default)]
pub struct SentEvents {
    last: Mutex<HashMap<(String, String), String>>,
}

impl SentEvents {
    /// Records `note` as the last event of the series (`uid`, `reason`, `related`), and says
    /// whether it is new: false when it repeats the last one of that series.
    pub fn record(&self, uid: &str, reason: &str, related: &str, note: &str) -> bool {
        let key = (uid.to_string(), format!("{reason}/{related}"));
        let mut last = lock(&self.last);
        if last.get(&key).map(String::as_str) == Some(note) {
            return false;
        }
        last.insert(key, note.to_string());
        true
    }

    /// Forgets the events of an object that is gone, so the map stays bounded by the objects
    /// that exist.
    pub fn forget(&self, uid: Option<&str>) {
        let Some(uid) = uid else { return };
        lock(&self.last).retain(|(object, _), _| object != uid);
    }

    /// How many objects have events remembered (for tests that check deletions leave none).
    pub fn objects(&self) -> usize {
        let last = lock(&self.last);
        let uids: std::collections::HashSet<&str> =
            last.keys().map(|(uid, _)| uid.as_str()).collect();
        uids.len()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.last).len()
    }
}

#[cfg(test)]
mod tests {
    use super::SentEvents;

    #[test]
    fn a_repeat_is_skipped_per_series() {
        let sent = SentEvents::default();
        assert!(sent.record("u1", "Created", "a", "n1"));
        assert!(!sent.record("u1", "Created", "a", "n1"), "the same again");
        assert!(
            sent.record("u1", "Created", "b", "n1"),
            "another related object"
        );
        assert!(sent.record("u2", "Created", "a", "n1"), "another object");
        assert!(sent.record("u1", "Created", "a", "n2"), "a new note");
        assert!(
            sent.record("u1", "Created", "a", "n1"),
            "not twice in a row only"
        );
    }

    #[test]
    fn forgetting_an_object_leaves_no_entry_behind() {
        let sent = SentEvents::default();
        sent.record("u1", "Created", "a", "n");
        sent.record("u1", "Failed", "", "n");
        sent.record("u2", "Created", "a", "n");
        sent.forget(Some("u1"));
        assert_eq!(sent.len(), 1);
        sent.forget(Some("u2"));
        assert_eq!(sent.len(), 0);
        sent.forget(None);
        assert!(
            sent.record("u1", "Created", "a", "n"),
            "new again after deletion"
        );
    }
}
