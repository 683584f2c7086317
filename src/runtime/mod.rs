//! The operator's runtime: what the controllers build on, between kube-runtime and the
//! reconcile logic of `crate::controller`.
//!
//! Each piece builds on or replaces a kube-runtime facility for a measured or correctness
//! reason that its module doc gives; read it before "simplifying" one back to kube's own.
//! - [`cache`]: watch caches with read-your-writes (this process's writes laid over the
//!   reflector store until their echo arrives), ready only after the first list.
//! - [`version`]: what a comparison or a trigger depends on (generation and rendered metadata,
//!   not the resourceVersion that status writes move).
//! - [`digest`]: digests that cached objects keep instead of values only compared.
//! - [`echo`]: drops the echo of a controller's own write, and versions that change nothing it
//!   reads, from its trigger stream (never from the cache).
//! - [`index`]: secondary indexes of a cache (owner, Secret read, template).
//! - [`shared`]: one watch per kind shared by both controllers (fan-out of every event,
//!   deletions included).
//! - [`relist`]: a watch's events as consumers need them: a relist's objects once the store
//!   holds them, and its implied deletions (kube-runtime passes on neither).
//! - [`listing`]: how watches fill their caches (a streaming list where the API server
//!   serves one, so the initial list is never decoded whole).
//! - [`write`] with [`diff`]: the stamped write path (POST, then merge patches at the version
//!   read): a child's spec becomes exactly what was rendered, removals included, while
//!   metadata others added is kept.
//! - [`finalizer`], [`backoff`], [`events`], [`status_writes`]: finalizer patches, watch and
//!   retry timing, de-duplicated Kubernetes Events, and when each status was last written.
//! - [`event_series`]: publishes Events as series, keeping a few bytes per series where
//!   kube-runtime's `Recorder` keeps each Event whole.
//!
//! Every map kept here forgets an object when it is deleted (`forget`), so state stays bounded
//! by the objects that exist.

pub mod backoff;
pub mod cache;
pub mod diff;
pub mod digest;
pub mod echo;
pub mod event_series;
pub mod events;
pub mod finalizer;
pub mod index;
pub mod listing;
pub mod packed;
pub mod relist;
pub mod shared;
pub mod startup;
pub mod status_writes;
pub mod version;
pub mod write;

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a holder panicked. Every map guarded in this crate is changed by
/// whole inserts or removals, so a panicked holder leaves nothing half-written.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
