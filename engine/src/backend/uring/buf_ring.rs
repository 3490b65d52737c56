//! A provided buffer ring: receive buffers the kernel picks from only when
//! data arrives, so a connection that has sent nothing holds no buffer.
//!
//! The worker copies each received chunk into the connection's decoder and
//! hands the buffer straight back, so a few hundred buffers serve thousands of
//! connections.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

pub(crate) struct ProvidedBufRing {
    /// `entries` ring slots, page-aligned as the kernel requires (mmap).
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    /// `entries * buf_size` bytes of buffer memory.
    buffers: *mut u8,
    buffers_bytes: usize,
    entries: u16,
    buf_size: u32,
    /// Our copy of the tail; published to the kernel with a release store.
    tail: u16,
    pub group: u16,
}

fn mmap_anonymous(len: usize) -> io::Result<*mut u8> {
    // SAFETY: an anonymous private mapping with no address hint; checked below.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p.cast())
}

impl ProvidedBufRing {
    /// Maps the ring and its buffers and registers them as buffer group
    /// `group`. Fails on kernels before 5.19 (no `IORING_REGISTER_PBUF_RING`).
    pub fn new(
        submitter: &Submitter<'_>,
        entries: u16,
        buf_size: u32,
        group: u16,
    ) -> io::Result<Self> {
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let buffers_bytes = usize::from(entries) * buf_size as usize;
        let ring = mmap_anonymous(ring_bytes)?.cast::<BufRingEntry>();
        let buffers = match mmap_anonymous(buffers_bytes) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: `ring` was mapped above with this length and is unused.
                unsafe { libc::munmap(ring.cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut this = ProvidedBufRing {
            ring,
            ring_bytes,
            buffers,
            buffers_bytes,
            entries,
            buf_size,
            tail: 0,
            group,
        };
        // SAFETY: the ring memory is mapped for `entries` entries, page-aligned,
        // and stays mapped until Drop, which the worker runs only after the
        // io_uring instance (and with it the registration) is gone.
        unsafe { submitter.register_buf_ring_with_flags(ring as u64, entries, group, 0)? };
        for bid in 0..entries {
            this.recycle(bid);
        }
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid`, which a recv CQE just filled.
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_size as usize);
        // SAFETY: bid and len are in bounds (checked above); the kernel wrote
        // these bytes before posting the CQE and does not touch the buffer
        // again until `recycle` hands it back.
        unsafe {
            std::slice::from_raw_parts(
                self.buffers.add(usize::from(bid) * self.buf_size as usize),
                len,
            )
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.entries);
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: index < entries, so the entry is inside the mapped ring; the
        // kernel reads only entries between its head and the published tail,
        // and this slot is past the tail until the store below.
        unsafe {
            let entry = &mut *self.ring.add(index);
            entry.set_addr(self.buffers.add(usize::from(bid) * self.buf_size as usize) as u64);
            entry.set_len(self.buf_size);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lives inside ring entry 0 (the kernel's
        // layout); it is a u16 the kernel reads concurrently, hence the atomic
        // release store that publishes the entry written above.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast_mut().cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl ProvidedBufRing {
    /// Gives the buffers' pages back to the system after a storm filled
    /// every one of them (8 MiB per worker at the defaults, resident from
    /// then on though a quiet server uses a few); the next receive into a
    /// buffer faults a zeroed page in again. Call only when no buffer is
    /// lent out (each is recycled as soon as its bytes are copied) and from
    /// the worker's thread between waits: the kernel writes into a provided
    /// buffer only while completing a receive, which is task work run in
    /// this thread's own context, never during this call.
    pub fn give_back_pages(&self) {
        // SAFETY: the range is the mapping made in `new`; MADV_DONTNEED on
        // private anonymous memory only drops its pages, and no buffer's
        // contents are needed (none is lent out, per the contract above).
        unsafe {
            libc::madvise(self.buffers.cast(), self.buffers_bytes, libc::MADV_DONTNEED);
        }
    }
}

impl Drop for ProvidedBufRing {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these lengths; the
        // ring that could read them has been dropped before this (`Worker`'s
        // `Drop` drops its ring before any other field).
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.buffers.cast(), self.buffers_bytes);
        }
    }
}
