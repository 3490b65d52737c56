//! `closer`: the floor of the `deadline` runner. An ideal deadline closer:
//! it accepts, and closes each connection exactly `--header-timeout` after
//! its accept, and does nothing else. It never reads and never answers, so
//! the overshoot it shows is what epoll, one kernel timer and the client
//! cost on this machine: no server can close on time more precisely.
//!
//! ```text
//!   worker thread (one per --workers, each its own SO_REUSEPORT listener):
//!     epoll ─► listener readable ─► accept ... EAGAIN, each: (now + timeout, fd) to the back
//!           └► timerfd expired   ─► pop every due fd: shutdown(SHUT_WR), close
//!     the timerfd is armed at the front's deadline (CLOCK_MONOTONIC, TFD_TIMER_ABSTIME)
//! ```
//!
//! Every connection gets the same timeout and accepts happen in time order,
//! so the deadlines of one worker are already sorted: a FIFO queue is the
//! whole timer wheel. Stops on SIGTERM (the default action).

use std::collections::VecDeque;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use clap::Parser;
use ringwall_bench::peers::floor::run_workers;
use ringwall_bench::peers::parse_duration;
use ringwall_bench::sys::monotonic_ns;

/// Closes every connection header-timeout after accept (the floor of ringwall-bench deadline).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8082")]
    addr: SocketAddr,
    /// Worker threads, each with its own listener.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How long after accept each connection is closed.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    header_timeout: Duration,
}

const LISTENER: u64 = 0;
const TIMER: u64 = 1;

fn main() -> io::Result<()> {
    let args = Args::parse();
    let timeout_ns = args.header_timeout.as_nanos() as u64;
    run_workers(args.addr, args.workers, move |listener| {
        worker(listener, timeout_ns)
    })
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful syscall and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn watch(epoll: &OwnedFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `event` outlives the call; both descriptors are open.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) })?;
    Ok(())
}

/// Arms `timer` to expire at `deadline_ns` on CLOCK_MONOTONIC, absolute:
/// a deadline already past expires at once, nothing is computed relative.
fn arm(timer: &OwnedFd, deadline_ns: u64) -> io::Result<()> {
    let at = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
        },
    };
    let flags = libc::TFD_TIMER_ABSTIME;
    // SAFETY: `at` outlives the call; the old value is not asked for.
    check(unsafe { libc::timerfd_settime(timer.as_raw_fd(), flags, &at, std::ptr::null_mut()) })?;
    Ok(())
}

fn worker(listener: TcpListener, timeout_ns: u64) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    // SAFETY: plain syscalls; results are checked before use.
    let epoll = owned(check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?);
    let timer = owned(check(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })?);
    watch(&epoll, listener.as_raw_fd(), LISTENER)?;
    watch(&epoll, timer.as_raw_fd(), TIMER)?;
    // (deadline on CLOCK_MONOTONIC in ns, the accepted socket), oldest first.
    let mut due: VecDeque<(u64, TcpStream)> = VecDeque::new();
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        // SAFETY: `events` is writable for its length, which is passed.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 64, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let was_empty = due.is_empty();
        for event in &events[..n as usize] {
            match event.u64 {
                LISTENER => accept_all(&listener, timeout_ns, &mut due)?,
                _ => close_due(&timer, &mut due),
            }
        }
        if let Some(&(deadline, _)) = due.front() {
            // After close_due the front changed; after accepts into an empty
            // queue it is new. Otherwise the armed timer already names it.
            if was_empty || events[..n as usize].iter().any(|e| e.u64 == TIMER) {
                arm(&timer, deadline)?;
            }
        }
    }
}

fn accept_all(
    listener: &TcpListener,
    timeout_ns: u64,
    due: &mut VecDeque<(u64, TcpStream)>,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            // Read after accept returns: the deadline counts from accept, as
            // ringwall's header deadline does.
            Ok((stream, _)) => due.push_back((monotonic_ns() + timeout_ns, stream)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            // A connection reset while queued, or out of descriptors: the
            // listener stays up and the next readiness tries again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNABORTED | libc::EMFILE | libc::ENFILE | libc::EINTR)
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
}

fn close_due(timer: &OwnedFd, due: &mut VecDeque<(u64, TcpStream)>) {
    let mut expirations = 0u64;
    // SAFETY: reads at most 8 bytes into `expirations`; EAGAIN (a stale
    // wakeup) leaves it untouched and is harmless.
    unsafe { libc::read(timer.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
    let now = monotonic_ns();
    while due.front().is_some_and(|&(deadline, _)| deadline <= now) {
        let (_, stream) = due.pop_front().expect("front exists");
        // The FIN first; dropping `stream` then closes it. Never a read: the
        // unread bytes of a slowloris client make the close send an RST
        // after the FIN.
        let _ = stream.shutdown(Shutdown::Write);
    }
}
