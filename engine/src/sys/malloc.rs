//! Giving large buffers back to the OS.
//!
//! glibc serves allocations above its mmap threshold with their own
//! mapping, unmapped on free. The threshold starts at 128 KiB but rises to
//! the size of every mapped chunk freed (up to 32 MiB), so after the first
//! large response, later ones come from the heap arenas and stay resident
//! when freed: measured, RSS stuck at 694-940 MB with no connection open
//! after rounds of 16 MiB responses, and back to 6 MB with the threshold
//! fixed. Setting the threshold explicitly turns the dynamic rise off.

/// Fixes the mmap threshold at 128 KiB (glibc's starting value). Process
/// wide; a no-op with any other C library, and harmless under another
/// global allocator (jemalloc, mimalloc), which does not read it.
pub(crate) fn return_large_buffers_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts malloc's tunables; it is thread-safe.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Gives free heap memory back to the system (`malloc_trim`): after a
/// storm of connections that each held a buffer below the mmap threshold,
/// their freed chunks sit in the middle of the heap, which glibc returns
/// only from its top, and RSS stays at the storm's peak. Walks every
/// arena, so it is called once after a storm, never per connection. A
/// no-op with any other C library.
pub(crate) fn give_back_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
