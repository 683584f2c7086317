//! Watch and retry timing. Replaces kube-runtime's default watcher backoff (exponential up to
//! 30 s, shared by the watches of a controller) with a shorter one, and decides how soon a
//! failed reconcile runs again.

use crate::error::Error;

/// Backoff for re-establishing watches: 0.5 s doubling up to 5 s. A restarted API server
/// answers every resumed watch with 410 Gone; kube's default (up to 30 s, shared by all the
/// watches of a controller) chains those retries into a minute of blindness.
#[derive(Clone, Debug)]
pub struct WatchBackoff {
    next: std::time::Duration,
}

impl WatchBackoff {
    const MIN: std::time::Duration = std::time::Duration::from_millis(500);
    const MAX: std::time::Duration = std::time::Duration::from_secs(5);

    /// The backoff for a controller's watches, reset after 30 s without errors.
    pub fn for_controller() -> kube::runtime::utils::ResetTimerBackoff<WatchBackoff> {
        kube::runtime::utils::ResetTimerBackoff::new(
            WatchBackoff { next: Self::MIN },
            std::time::Duration::from_secs(30),
        )
    }
}

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next;
        self.next = (current * 2).min(Self::MAX);
        Some(current)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
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
    fn watch_backoff_doubles_up_to_five_seconds_and_resets() {
        let mut b = WatchBackoff {
            next: WatchBackoff::MIN,
        };
        let delays: Vec<Duration> = b.by_ref().take(6).collect();
        assert_eq!(
            delays.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
            [500, 1000, 2000, 4000, 5000, 5000]
        );
        kube::runtime::utils::Backoff::reset(&mut b);
        assert_eq!(b.next(), Some(Duration::from_millis(500)));
    }
}
