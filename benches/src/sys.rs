//! The few Linux calls std does not expose: epoll, `CLOCK_MONOTONIC` in
//! nanoseconds, `RLIMIT_NOFILE`, `FIONREAD`, a connect (nonblocking or not) whose socket
//! options (`SO_RCVBUF`, `TCP_NODELAY`) are set before the handshake, and the
//! `SO_REUSEPORT` listener of the floor peers. Sockets are opened and their
//! options set through `socket2`, which knows the `sockaddr` layouts.
//!
//! Everything else goes through `std::net::TcpStream` (reads, writes with
//! `MSG_NOSIGNAL`, `take_error`), so the `unsafe` stays in this file.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Nanoseconds on `CLOCK_MONOTONIC`: the clock io_uring's absolute timeouts
/// use, so a close seen here compares with the server's deadline directly.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the kernel to wake this thread's timed waits on time: the default
/// timer slack lets a 1 ms `epoll_pwait2` end up to 50 µs late.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Raises this thread's scheduling priority (nice -10) where permitted, so
/// it is woken promptly even when load threads and the server keep every
/// core busy. Returns whether it took effect; without CAP_SYS_NICE it
/// does not, and the thread runs at normal priority.
pub fn raise_thread_priority() -> bool {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: plain syscall on this thread's own id.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, -10) == 0 }
}

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (and the hard limit
/// too, where we are allowed to). Servers started afterwards inherit it.
/// Returns the soft limit now in force. `u64::MAX`: as many as allowed.
/// Thousands of attack sockets do not fit under the usual 1024.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    if lim.rlim_max < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: want,
        };
        // SAFETY: `raised` is a valid rlimit; failure (no CAP_SYS_RESOURCE) is
        // handled by falling back to the current hard limit below.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(want);
        }
    }
    let soft = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above; the soft limit does not exceed the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(soft.rlim_cur)
}

/// Fails early, with the numbers, when `needed` descriptors cannot be open at
/// once even after raising the limit.
pub fn ensure_fd_capacity(needed: usize) -> io::Result<()> {
    let limit = raise_nofile_limit(u64::MAX)?;
    // Leave room for stdio, epoll descriptors and the test harness.
    if needed as u64 + 64 > limit {
        return Err(io::Error::other(format!(
            "{needed} sockets need more descriptors than RLIMIT_NOFILE allows ({limit}); \
             raise the hard limit (ulimit -Hn) or use fewer connections"
        )));
    }
    presize_fd_table(needed + 64);
    Ok(())
}

/// Grows this process's descriptor table to `slots` now. The kernel grows
/// the table of a process with several threads only after an RCU grace
/// period (`expand_fdtable` calls `synchronize_rcu()`), milliseconds each
/// time it doubles; a client (or floor server) that grows it during a
/// connect burst stalls there, and only in the first burst of the process,
/// which made the first cell of every `deadline` run unlike the others.
/// Best effort: a table that cannot grow now grows when needed.
pub fn presize_fd_table(slots: usize) {
    let Ok(highest) = libc::c_int::try_from(slots.saturating_sub(1)) else {
        return;
    };
    // SAFETY: plain eventfd(2); the result is checked and closed below.
    let probe = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if probe < 0 {
        return;
    }
    // F_DUPFD gives the lowest free descriptor at or above `highest`: the
    // kernel sizes the table for it.
    // SAFETY: fcntl on the descriptor just opened; a result is closed below.
    let dup = unsafe { libc::fcntl(probe, libc::F_DUPFD_CLOEXEC, highest) };
    // SAFETY: both are descriptors this function opened and owns.
    unsafe {
        if dup >= 0 {
            libc::close(dup);
        }
        libc::close(probe);
    }
}

/// Options applied to a socket before `connect`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketOpts {
    /// `SO_RCVBUF` in bytes. Must be set before the handshake: the window
    /// scale is negotiated in the SYN.
    pub recv_buffer: Option<usize>,
    /// `TCP_NODELAY`: a drip byte or a small request leaves at once.
    pub nodelay: bool,
}

/// Whether a nonblocking connect finished inside the call (loopback usually
/// does) or is still in progress (wait for writability, then `take_error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    Done,
    InProgress,
}

/// Opens a nonblocking TCP socket, applies `opts` and starts connecting.
pub fn connect_nonblocking(addr: SocketAddr, opts: SocketOpts) -> io::Result<(TcpStream, Connect)> {
    let socket = socket_with_opts(addr, Type::STREAM.nonblocking(), opts)?;
    let state = match socket.connect(&addr.into()) {
        Ok(()) => Connect::Done,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Connect::InProgress,
        Err(e) => return Err(e),
    };
    Ok((socket.into(), state))
}

/// Opens a blocking TCP socket, applies `opts` and connects: a slow reader
/// whose small `SO_RCVBUF` is in place before the handshake.
pub fn connect_with_opts(addr: SocketAddr, opts: SocketOpts) -> io::Result<TcpStream> {
    let socket = socket_with_opts(addr, Type::STREAM, opts)?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}

/// A fresh TCP socket (close-on-exec, as socket2 opens every socket) of
/// `addr`'s family with `opts` applied.
fn socket_with_opts(addr: SocketAddr, ty: Type, opts: SocketOpts) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(Protocol::TCP))?;
    if let Some(bytes) = opts.recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    if opts.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    Ok(socket)
}

/// A listening socket with `SO_REUSEPORT`, one per worker thread of a floor
/// peer, as ringwall's workers have: the kernel spreads connections between
/// them. `TCP_NODELAY` is set on the listener because accepted sockets
/// inherit it, as ringwall's do; the backlog is ringwall's and hyper-peer's.
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Resizes `SO_RCVBUF` on an open socket. The window can grow only up to
/// what the window scale negotiated at the handshake allows.
pub fn set_recv_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    SockRef::from(stream).set_recv_buffer_size(bytes)
}

/// Resizes `SO_SNDBUF` on an open socket: a small one makes a writer
/// block (or a server's send stall) after little data.
pub fn set_send_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    SockRef::from(stream).set_send_buffer_size(bytes)
}

/// Bytes that have arrived on `stream` and are not read yet (`FIONREAD`).
/// Still answers after the peer's FIN or RST: the queue outlives the close.
pub fn bytes_queued(stream: &TcpStream) -> io::Result<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which outlives the call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut queued) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(queued.max(0) as u64)
}

/// Closes with an RST instead of a FIN (`SO_LINGER` 0), so closing thousands
/// of attack sockets leaves no `TIME_WAIT` behind on the client.
pub fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    SockRef::from(stream).set_linger(Some(Duration::ZERO))
}

/// Readiness bits as epoll reports them.
#[derive(Clone, Copy, Debug)]
pub struct Ready(u32);

impl Ready {
    pub fn readable(self) -> bool {
        self.0 & libc::EPOLLIN as u32 != 0
    }
    pub fn writable(self) -> bool {
        self.0 & libc::EPOLLOUT as u32 != 0
    }
    /// The peer's FIN arrived (`EPOLLRDHUP`), even with unread data queued
    /// before it, or the connection is gone (`EPOLLHUP`).
    pub fn read_closed(self) -> bool {
        self.0 & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0
    }
    /// A pending socket error, e.g. an RST (`EPOLLERR`).
    pub fn error(self) -> bool {
        self.0 & libc::EPOLLERR as u32 != 0
    }
}

/// What a registration waits for. Read interest always includes `EPOLLRDHUP`
/// so a FIN is seen the moment it arrives, not when the data before it has
/// been read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    ReadWrite,
    /// Only the peer's FIN (`EPOLLRDHUP`) and errors: for a socket whose
    /// data is read on a schedule, so queued data does not wake the loop.
    CloseOnly,
}

impl Interest {
    fn bits(self) -> u32 {
        let read = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        match self {
            Interest::Read => read,
            Interest::ReadWrite => read | libc::EPOLLOUT as u32,
            Interest::CloseOnly => libc::EPOLLRDHUP as u32,
        }
    }
}

/// A level-triggered epoll instance.
pub struct Epoll {
    fd: OwnedFd,
}

/// Cleared once the kernel answers `ENOSYS` to `epoll_pwait2` (before 5.11);
/// the fallback rounds timeouts up to whole milliseconds.
static PWAIT2_AVAILABLE: AtomicBool = AtomicBool::new(true);

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for readiness; `None` waits without limit. Uses `epoll_pwait2`
    /// for a nanosecond timeout where the kernel has it. Returns the number of
    /// events now in `events`; `EINTR` is reported as zero events.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.len = 0;
        let cap = events.buf.len() as libc::c_int;
        let ptr = events.buf.as_mut_ptr();
        let mut rc = -1;
        let mut tried_pwait2 = false;
        if let Some(t) = timeout {
            if PWAIT2_AVAILABLE.load(Ordering::Relaxed) {
                let ts = libc::timespec {
                    tv_sec: t.as_secs() as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `ptr` points to `cap` writable epoll_events; `ts` outlives the
                // call; a null sigmask means "do not change the mask".
                rc = unsafe {
                    libc::syscall(
                        libc::SYS_epoll_pwait2,
                        self.fd.as_raw_fd(),
                        ptr,
                        cap,
                        &ts as *const libc::timespec,
                        std::ptr::null::<libc::sigset_t>(),
                        0usize,
                    )
                } as libc::c_int;
                tried_pwait2 = true;
                if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                    PWAIT2_AVAILABLE.store(false, Ordering::Relaxed);
                    tried_pwait2 = false;
                }
            }
        }
        if !tried_pwait2 {
            let ms = match timeout {
                None => -1,
                // Round up: waking before the drip is due would only spin.
                Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
            };
            // SAFETY: `ptr` points to `cap` writable epoll_events.
            rc = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), ptr, cap, ms) };
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        events.len = rc as usize;
        Ok(events.len)
    }
}

/// A reusable buffer of epoll events.
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub fn with_capacity(n: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`th event of the last wait: its token and readiness.
    pub fn get(&self, i: usize) -> (u64, Ready) {
        // Copy out of the packed struct: no reference to a packed field.
        let ev = self.buf[i];
        let token = ev.u64;
        let bits = ev.events;
        (token, Ready(bits))
    }
}

/// Makes `command`'s child refuse `io_uring_setup` with EPERM, as Docker's
/// default seccomp profile (since Docker 25) and containerd's
/// `RuntimeDefault` do: before `exec`, the child sets `no_new_privs` and
/// installs a seccomp filter that fails that one system call and allows
/// everything else. For testing how a server behaves where io_uring is
/// refused, on a machine that has it.
pub fn deny_io_uring_setup(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;

    // classic BPF opcodes (linux/bpf_common.h: BPF_LD|BPF_W|BPF_ABS,
    // BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K) and seccomp return values
    // (linux/seccomp.h).
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // `struct seccomp_data`: nr at offset 0, arch at offset 4.
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        // Another architecture's numbering: leave it alone.
        jump(AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ];
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it makes two system calls
    // (prctl, seccomp) on memory moved into it before the fork, and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                0,
                &program as *const libc::sock_fprog,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 2_000_000, "{a} -> {b}");
    }

    #[test]
    fn epoll_timeout_is_not_cut_short() {
        let ep = Epoll::new().unwrap();
        let mut events = Events::with_capacity(4);
        let start = monotonic_ns();
        let n = ep
            .wait(&mut events, Some(Duration::from_micros(1500)))
            .unwrap();
        assert_eq!(n, 0);
        assert!(monotonic_ns() - start >= 1_400_000);
    }
}
