//! Syscalls a server makes, counted by the kernel: one `perf_event_open`
//! counter on the `raw_syscalls:sys_enter` tracepoint per thread of the
//! server's process tree (what `perf stat -e raw_syscalls:sys_enter -p PID`
//! counts, without the `perf` binary).
//!
//! The count is every entry into the kernel through the syscall instruction
//! (`io_uring_enter`, `epoll_wait`, `read`, `writev`, `setsockopt`, ...),
//! each counted once whatever it does: an `io_uring_enter` that submits 30
//! SQEs is one, and the work io_uring does for them (task work, io-wq
//! threads' own calls excepted) is none. It is the same measure for every
//! server, which `ringwall serve`'s own `ring_enters` counter is not.
//!
//! Limits:
//! - Enabling a syscall tracepoint puts *every* thread of the machine on the
//!   slow syscall path while a counter is open, which costs each syscall
//!   some hundreds of nanoseconds: a server making more syscalls per
//!   request pays more. So counted runs are separate runs; their CPU figures
//!   are not used.
//! - Threads are listed when the counters are opened; threads they create
//!   afterwards are counted (`inherit`), processes forked afterwards are not.
//! - It needs tracefs (`/sys/kernel/tracing`) and the right to trace other
//!   processes (root, or `perf_event_paranoid` <= 1 with CAP_PERFMON).

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::procfs;

/// Where tracefs keeps the tracepoint's id, newest mount point first.
const TRACEPOINT_ID_FILES: [&str; 2] = [
    "/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
    "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id",
];

const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `perf_event_attr.inherit`: bit 1 of the flags word.
const ATTR_INHERIT: u64 = 1 << 1;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The first 64 bytes of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER0`),
/// all a counting tracepoint event needs; the kernel takes the size from
/// the `size` field.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// The tracepoint id in a tracefs `id` file: one decimal number.
pub fn parse_tracepoint_id(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

fn tracepoint_id() -> io::Result<u64> {
    let mut last = None;
    for path in TRACEPOINT_ID_FILES {
        match fs::read_to_string(path) {
            Ok(text) => {
                return parse_tracepoint_id(&text).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}"))
                })
            }
            Err(e) => last = Some(format!("{path}: {e}")),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no raw_syscalls:sys_enter tracepoint ({}; is tracefs mounted?)",
            last.unwrap_or_default()
        ),
    ))
}

/// Counters on every thread of one process tree, open from `open` until
/// dropped.
#[derive(Debug)]
pub struct SyscallCounter {
    counters: Vec<OwnedFd>,
}

impl SyscallCounter {
    /// Starts counting the syscalls of `pid` and its live descendants,
    /// every thread of each.
    pub fn open(pid: i32) -> io::Result<SyscallCounter> {
        let id = tracepoint_id()?;
        let mut counters = Vec::new();
        for (_, thread) in procfs::tree_threads(pid) {
            match open_counter(id, thread) {
                Ok(fd) => counters.push(fd),
                // The thread exited since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("perf_event_open(raw_syscalls:sys_enter, thread {thread}): {e}"),
                    ))
                }
            }
        }
        if counters.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no thread of {pid} to count"),
            ));
        }
        Ok(SyscallCounter { counters })
    }

    /// Syscalls counted so far, summed over the threads (and the threads
    /// they created since).
    pub fn read(&self) -> io::Result<u64> {
        let mut total = 0;
        for fd in &self.counters {
            let mut value = 0u64;
            // SAFETY: `value` is a writable u64, the size passed; with
            // `read_format` 0 the kernel writes exactly one u64.
            let n = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    (&mut value as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            if n != std::mem::size_of::<u64>() as isize {
                return Err(io::Error::last_os_error());
            }
            total += value;
        }
        Ok(total)
    }
}

fn open_counter(tracepoint: u64, thread: i32) -> io::Result<OwnedFd> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: tracepoint,
        flags: ATTR_INHERIT,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid perf_event_attr of the size it states and
    // outlives the call; the other arguments are plain integers (this
    // thread, any CPU, no group).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            thread,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_has_the_size_of_perf_attr_size_ver0() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }

    #[test]
    fn tracepoint_id_file_is_one_number() {
        assert_eq!(parse_tracepoint_id("349\n"), Some(349));
        assert_eq!(parse_tracepoint_id(""), None);
        assert_eq!(parse_tracepoint_id("sys_enter"), None);
    }

    #[test]
    fn own_syscalls_are_counted() {
        let me = std::process::id() as i32;
        let counter = match SyscallCounter::open(me) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: syscall tracepoint not available here: {e}");
                return;
            }
        };
        let before = counter.read().expect("readable counter");
        for _ in 0..1000 {
            // SAFETY: getppid takes nothing and cannot fail.
            unsafe { libc::getppid() };
        }
        let after = counter.read().expect("readable counter");
        assert!(after - before >= 1000, "{before} then {after}");
    }
}
