//! When this process last wrote each object's status, for pacing progress-only status writes
//! (`status::pacing`). Process memory only: a restarted operator paces from its first write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::lock;

/// The time of the last status write per object (by uid). Owned by the control-plane
/// controller; its deletion path calls [`StatusWrites::forget`].
#[derive(Default)]
pub struct StatusWrites {
    at: Mutex<HashMap<String, Instant>>,
}

impl StatusWrites {
    /// When the status of the object `uid` was last written by this process.
    pub fn last(&self, uid: &str) -> Option<Instant> {
        lock(&self.at).get(uid).copied()
    }

    /// Records a status write to the object `uid`, now.
    pub fn record(&self, uid: &str) {
        lock(&self.at).insert(uid.to_string(), Instant::now());
    }

    /// Forgets an object that is gone.
    pub fn forget(&self, uid: &str) {
        lock(&self.at).remove(uid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.at).len()
    }
}

#[cfg(test)]
mod tests {
    use super::StatusWrites;

    #[test]
    fn forgetting_an_object_leaves_no_entry_behind() {
        let writes = StatusWrites::default();
        assert_eq!(writes.last("a"), None);
        writes.record("a");
        writes.record("b");
        let first = writes.last("a").expect("recorded");
        writes.record("a");
        assert!(writes.last("a").expect("recorded") >= first);
        writes.forget("a");
        assert_eq!(writes.last("a"), None);
        assert_eq!(writes.len(), 1);
        writes.forget("b");
        assert_eq!(writes.len(), 0);
    }
}
