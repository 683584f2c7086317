//! A counting global allocator for memory measurements: the system allocator (the operator's),
//! adding every allocation's size to a [`Counter`] and taking every free's off.
//!
//! The library installs no allocator; two programs do, with a counter each:
//! - the operator built with `--features heap-stats` (`src/main.rs`): [`Global`], the heap bytes
//!   in use in the whole process and their peak, which `tests/bench` compares with the RSS to
//!   tell live data from allocator overhead;
//! - the bench (`examples/bench.rs`): [`PerThread`], the bytes one thread allocated and has not
//!   freed, to measure what a cached object costs.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// What a [`Counting`] allocator tells of each allocation (bytes, positive) and free (negative).
/// Called inside the allocator: it must not allocate.
pub trait Counter {
    /// Adds `bytes` (negative for a free) to the count.
    fn add(&self, bytes: isize);
}

/// The system allocator, telling its counter `C` the size of every allocation and free. Install it with
/// `#[global_allocator] static ALLOCATOR: Counting<Global> = Counting(Global);`.
pub struct Counting<C>(pub C);

// SAFETY: every call is passed on to the system allocator unchanged; the counter only does
// arithmetic.
unsafe impl<C: Counter + Sync> GlobalAlloc for Counting<C> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.add(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.0.add(layout.size() as isize);
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.add(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.0.add(new_size as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// Counts the heap bytes in use in the whole process, and their peak.
pub struct Global;

impl Counter for Global {
    fn add(&self, bytes: isize) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

impl Global {
    /// Heap bytes in use now, and the most there were (counted by a `Counting<Global>`).
    pub fn bytes() -> (isize, isize) {
        (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed))
    }

    /// Writes "<live> <peak>" (bytes, [`Global::bytes`]) to `path` every 250 ms, from a thread
    /// of its own, for as long as the process runs; a failed write is tried again next time.
    pub fn report(path: PathBuf) {
        std::thread::spawn(move || {
            loop {
                let (live, peak) = Global::bytes();
                let _ = std::fs::write(&path, format!("{live} {peak}\n"));
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
}

thread_local! {
    static THREAD_LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Counts, per thread, the heap bytes allocated and not freed (a thread-local: no atomic shared
/// between the threads).
pub struct PerThread;

impl Counter for PerThread {
    fn add(&self, bytes: isize) {
        // Not available while a thread's locals are torn down: those frees go uncounted.
        let _ = THREAD_LIVE.try_with(|live| live.set(live.get() + bytes));
    }
}

impl PerThread {
    /// Heap bytes this thread allocated and has not freed (counted by a `Counting<PerThread>`).
    /// Frees of other threads' memory count here too, so measure within one synchronous block.
    pub fn live() -> isize {
        THREAD_LIVE.try_with(Cell::get).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_add_allocations_and_take_frees_off() {
        // Not installed here: the counters are driven directly.
        let before = PerThread::live();
        PerThread.add(100);
        PerThread.add(-40);
        assert_eq!(PerThread::live() - before, 60);

        let (live, _) = Global::bytes();
        Global.add(1000);
        let (now, peak) = Global::bytes();
        assert_eq!(now - live, 1000);
        assert!(peak >= now);
        Global.add(-1000);
        assert_eq!(Global::bytes().1, peak, "the peak stays");
    }
}
