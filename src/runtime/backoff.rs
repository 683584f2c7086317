//! Watch and retry timing. Replaces kube-runtime's default watcher backoff (exponential up to
//! 30 s, shared by the watches of a controller) with a shorter one, and decides how soon a
//! failed reconcile runs again.

use crate::error::Error;

/// Backoff for re-establishing watches: 0.5 s doubling up to 5 s, back to 0.5 s once the watch
/// makes progress again or 30 s passed without an error. A restarted API server answers every
/// resumed watch with 410 Gone; kube's default (up to 30 s, shared by all the watches of a
/// controller) chains those retries into a minute of blindness.
///
/// Builds on kube-runtime's `StreamBackoff`, which calls `reset` on every successful item.
/// For a watch ([`WatchBackoff::for_watch`]) that reset is ignored and
/// [`WatchBackoff::progressed`] starts over instead: kube's `watcher` yields `Ok(Init)` before
/// each list it retries, so with a reset on success the delay never grew past its minimum while
/// the API server was unreachable (`a_watch_that_cannot_connect_retries_with_backoff`). A
/// controller's trigger backoff ([`WatchBackoff::for_controller`]) keeps the reset: its sources
/// already back off, and one error must not hold back every trigger of the controller.
/// Clones share their delays.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    delays: std::sync::Arc<std::sync::Mutex<Delays>>,
    reset_on_success: bool,
}

#[derive(Debug)]
struct Delays {
    next: std::time::Duration,
    last_error: Option<std::time::Instant>,
}

impl WatchBackoff {
    const MIN: std::time::Duration = std::time::Duration::from_millis(500);
    const MAX: std::time::Duration = std::time::Duration::from_secs(5);
    /// Without an error for this long, the next delay is [`Self::MIN`] again.
    const RESET_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

    fn new(reset_on_success: bool) -> WatchBackoff {
        WatchBackoff {
            delays: std::sync::Arc::new(std::sync::Mutex::new(Delays {
                next: Self::MIN,
                last_error: None,
            })),
            reset_on_success,
        }
    }

    /// The backoff of a watch (`runtime::cache::watch`), which calls [`Self::progressed`].
    pub fn for_watch() -> WatchBackoff {
        WatchBackoff::new(false)
    }

    /// The backoff of a controller's triggers (`Controller::trigger_backoff`).
    pub fn for_controller() -> WatchBackoff {
        WatchBackoff::new(true)
    }

    /// The watch delivered something other than the start of a list: the next error waits
    /// [`Self::MIN`] again.
    pub fn progressed(&self) {
        super::lock(&self.delays).next = Self::MIN;
    }

    /// The delay after an error at `now`.
    fn delay_at(&mut self, now: std::time::Instant) -> std::time::Duration {
        let mut delays = super::lock(&self.delays);
        if delays
            .last_error
            .is_some_and(|last| now.saturating_duration_since(last) >= Self::RESET_AFTER)
        {
            delays.next = Self::MIN;
        }
        delays.last_error = Some(now);
        let current = delays.next;
        delays.next = (current * 2).min(Self::MAX);
        current
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.delay_at(std::time::Instant::now()))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    /// Starts over for a controller's triggers; ignored for a watch (see the type's doc).
    fn reset(&mut self) {
        if self.reset_on_success {
            self.progressed();
        }
    }
}

/// When to retry a failed reconcile: a conflict (someone wrote the object meanwhile) at once,
/// anything else after a pause.
pub fn retry_after(error: &Error) -> std::time::Duration {
    match error {
        Error::Kube(kube::Error::Api(status)) if status.is_conflict() => {
            std::time::Duration::from_millis(200)
        }
        _ => std::time::Duration::from_secs(5),
    }
}

#[cfg(test)]
mod tests {
    use super::WatchBackoff;
    use std::time::Duration;

    #[test]
    fn watch_backoff_doubles_up_to_five_seconds_and_starts_over_after_30_quiet_seconds() {
        let mut b = WatchBackoff::for_watch();
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let delays: Vec<u128> = (0..6).map(|i| b.delay_at(at(i)).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        // A success between errors (kube's watcher yields `Init` before each retried list)
        // does not start over.
        kube::runtime::utils::Backoff::reset(&mut b);
        assert_eq!(b.delay_at(at(10)), Duration::from_secs(5));
        // 30 s without an error does.
        assert_eq!(b.delay_at(at(40)), Duration::from_millis(500));
        assert_eq!(b.delay_at(at(41)), Duration::from_secs(1));
        // Progress (a clone's: `cache::watch` keeps one) starts over too.
        b.clone().progressed();
        assert_eq!(b.delay_at(at(42)), Duration::from_millis(500));
    }

    #[test]
    fn a_controllers_trigger_backoff_starts_over_on_success() {
        let mut b = WatchBackoff::for_controller();
        let t0 = std::time::Instant::now();
        assert_eq!(b.delay_at(t0), Duration::from_millis(500));
        assert_eq!(b.delay_at(t0), Duration::from_secs(1));
        kube::runtime::utils::Backoff::reset(&mut b);
        assert_eq!(b.delay_at(t0), Duration::from_millis(500));
    }
}
