//! The global allocator: mimalloc, since the gateway allocates many small, short-lived
//! buffers per request.
//!
//! With the `heap-stats` feature (a diagnostic build for bench/soak.py, never the
//! default), a thin wrapper counts the bytes the program holds, so that a soak can tell
//! a leak (live bytes grow) from memory the allocator keeps for reuse (RSS grows, live
//! bytes do not). The count is reported by `/health/readiness` as `heap_bytes`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t`, the same in the v2 and
/// v3 headers `libmimalloc-sys` builds from (the crate exports no name for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Called once, first thing in `main`: mimalloc gives the pages it frees back to the OS
/// at once (`purge_delay` 0) instead of after a delay, so memory freed by start-up (the
/// config and pricing parsing, the tokenizer's construction) and by a finished burst
/// does not stay resident. `MIMALLOC_PURGE_DELAY` in the environment still overrides it.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        set_purge_delay(0);
    }
}

#[allow(unsafe_code)] // an FFI call with plain integer arguments
fn set_purge_delay(ms: std::ffi::c_long) {
    // SAFETY: `mi_option_set` takes any option id and value; the option is read by
    // mimalloc at each purge, so setting it while allocating is allowed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

/// How often at most an idle worker thread hands its free memory back.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// Worker threads that went idle without collecting (their last collection was too
/// recent) and so may still hold a burst's free pages.
static OWING: AtomicUsize = AtomicUsize::new(0);
/// Wakes [`sweep`] when a thread starts owing.
static OWED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Called by each runtime worker thread when it runs out of work: mimalloc keeps the
/// pages a burst freed for reuse by the same thread (and blocks other threads freed
/// wait for it to look), and a thread that goes idle never looks at them again, so
/// after a peak the process would keep its peak size. Here an idle worker asks mimalloc
/// to collect its heap and return free pages to the OS, at most once per
/// [`COLLECT_EVERY`], so a busy worker pays one clock read per park. A worker that
/// parks too soon after its last collection owes one, and [`sweep`] wakes it later.
pub fn on_thread_park() {
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
        static OWES: Cell<bool> = const { Cell::new(false) };
    }
    let now = Instant::now();
    let due = LAST.with(|last| match last.get() {
        Some(t) if now.duration_since(t) < COLLECT_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    OWES.with(|owes| {
        if due {
            collect();
            if owes.replace(false) {
                OWING.fetch_sub(1, Ordering::Relaxed);
            }
        } else if !owes.replace(true) {
            OWING.fetch_add(1, Ordering::Relaxed);
            OWED.notify_one();
        }
    });
}

/// Runs for the life of the runtime: while some worker owes a collection, once per
/// [`COLLECT_EVERY`] it gives every worker a moment's work, so each wakes and, going
/// idle again, collects. Waits on [`OWED`] otherwise (an idle gateway stays asleep).
/// Which worker takes a spawned task is the scheduler's choice, hence a round per
/// period until none owes.
pub async fn sweep(workers: usize) {
    loop {
        while OWING.load(Ordering::Relaxed) == 0 {
            OWED.notified().await;
        }
        tokio::time::sleep(COLLECT_EVERY).await;
        for _ in 0..workers.max(2) {
            tokio::spawn(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            });
        }
    }
}

/// Gives the calling thread's free pages back to the OS (an idle worker's park, and the
/// main thread once start-up is over).
#[allow(unsafe_code)] // an FFI call with no arguments to check
pub fn collect() {
    // SAFETY: `mi_collect` only walks and frees the calling thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(not(feature = "heap-stats"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-stats")]
pub use counting::live_bytes;

#[cfg(feature = "heap-stats")]
#[allow(unsafe_code)] // implementing GlobalAlloc is unsafe by definition; it only forwards
mod counting {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicI64, Ordering};

    static LIVE: AtomicI64 = AtomicI64::new(0);

    /// Bytes allocated and not yet freed.
    pub fn live_bytes() -> u64 {
        LIVE.load(Ordering::Relaxed).max(0) as u64
    }

    struct Counting(mimalloc::MiMalloc);

    #[global_allocator]
    static ALLOC: Counting = Counting(mimalloc::MiMalloc);

    // SAFETY: every call forwards to mimalloc with the caller's own arguments; the
    // counter is only arithmetic on the sizes.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = self.0.alloc(layout);
            if !p.is_null() {
                LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = self.0.alloc_zeroed(layout);
            if !p.is_null() {
                LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.0.dealloc(ptr, layout);
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = self.0.realloc(ptr, layout, new_size);
            if !p.is_null() {
                LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            }
            p
        }
    }
}
