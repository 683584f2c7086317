//! Start-up milestones, each logged once per process at `info` under the target
//! `capt_fargate::startup`: every cache's first complete list (`cache filled`), the moment all
//! caches created so far are filled (`all caches filled`), and the first reconcile started.
//! The log line's timestamp is the measurement (`examples/bench.rs` reads it); nothing else
//! depends on these counters.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tracing::info;

/// Log target of the milestones (`--log-level warn,capt_fargate::startup=info` shows only them).
pub const TARGET: &str = "capt_fargate::startup";

static CREATED: AtomicUsize = AtomicUsize::new(0);
static FILLED: AtomicUsize = AtomicUsize::new(0);
static RECONCILED: AtomicBool = AtomicBool::new(false);

/// A watch cache was created (`runtime::cache::watch`).
pub fn cache_created() {
    CREATED.fetch_add(1, Ordering::AcqRel);
}

/// A cache's first list is complete; call once per cache. The controllers create their caches
/// before any watch returns, so `filled == created` is the moment every cache is ready.
pub fn cache_filled(kind: &str) {
    let filled = FILLED.fetch_add(1, Ordering::AcqRel) + 1;
    let created = CREATED.load(Ordering::Acquire);
    info!(target: TARGET, kind, filled, created, "cache filled");
    if filled == created {
        info!(target: TARGET, caches = created, "all caches filled");
    }
}

/// A reconcile started; logs the first one of the process.
pub fn reconcile_started(controller: &str) {
    if !RECONCILED.swap(true, Ordering::AcqRel) {
        info!(target: TARGET, controller, "first reconcile");
    }
}
