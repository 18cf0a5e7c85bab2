//! SQLite's heap, per query. SQLite can fail its own allocations past a hard
//! limit (`sqlite3_hard_heap_limit64`); the engine sets that limit to what
//! SQLite holds when a query starts plus the query's memory limit, so a
//! query that sorts gigabytes fails with the limit named instead of growing
//! the agent. The limit is process-wide: the daemon runs one query at a time,
//! and the limit is lifted when the last running query ends.
//!
//! Also here: handing freed memory back to the OS after a large query, so the
//! agent's resident size returns to where it was.
//!
//! The only `unsafe` outside the virtual-table glue: these are plain C calls
//! with no pointers.

use std::sync::Mutex;

/// Queries running now, and the limit to restore when they end.
static ACTIVE: Mutex<usize> = Mutex::new(0);

/// While alive, SQLite may hold at most `bytes` more than it did at the start.
pub struct HeapLimit(());

impl HeapLimit {
    pub fn new(bytes: u64) -> Self {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        *active += 1;
        let used = sqlite_memory_used();
        let limit = used.saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
        #[allow(unsafe_code)]
        // SAFETY: a plain setter on SQLite's global allocator statistics.
        unsafe {
            rusqlite::ffi::sqlite3_hard_heap_limit64(limit);
        }
        Self(())
    }
}

impl Drop for HeapLimit {
    fn drop(&mut self) {
        let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        *active = active.saturating_sub(1);
        if *active == 0 {
            #[allow(unsafe_code)]
            // SAFETY: as above; 0 means no limit.
            unsafe {
                rusqlite::ffi::sqlite3_hard_heap_limit64(0);
            }
        }
    }
}

/// Bytes SQLite holds now, across every connection of this process.
pub fn sqlite_memory_used() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: reads a counter.
    unsafe {
        rusqlite::ffi::sqlite3_memory_used()
    }
}

/// Makes allocations of 256 KiB and more come straight from the OS and go
/// back to it when freed. glibc otherwise raises that threshold after the
/// first large free, and a query's 16 MB strings then stay in the heap for
/// good. Called once, before the first query.
pub fn configure_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_env = "gnu")]
        #[allow(unsafe_code)]
        // SAFETY: mallopt takes two integers and changes a tuning knob.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
    });
}

/// Returns the heap's free pages to the OS. glibc keeps freed memory for
/// reuse; after a query that held a hundred thousand rows that would leave
/// the agent looking (and, to a cgroup, being) that large.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: glibc's malloc_trim takes a size and touches only the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}
