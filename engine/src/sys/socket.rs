//! Socket system calls the engine makes outside the ring: listener setup,
//! per-connection options, and the close sequence.

use std::io;

use super::cvt;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use std::fmt;

/// Why an fd is not a listening TCP socket the engine can accept on.
#[derive(Debug)]
#[non_exhaustive]
pub enum NotAListener {
    /// Not open (EBADF) or not a socket (ENOTSOCK), or the query failed.
    NotASocket(io::Error),
    /// A socket of another type (datagram, seqpacket).
    NotStream {
        /// The socket's `SO_TYPE`, such as `SOCK_DGRAM`.
        so_type: i32,
    },
    /// Neither IPv4 nor IPv6 (e.g. a Unix socket).
    NotInet {
        /// The socket's `SO_DOMAIN`, such as `AF_UNIX`.
        domain: i32,
    },
    /// A stream socket on which `listen()` was never called.
    NotListening,
}

impl fmt::Display for NotAListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAListener::NotASocket(e) => write!(f, "not a socket: {e}"),
            NotAListener::NotStream { so_type } => {
                write!(f, "not a stream socket (SO_TYPE {so_type})")
            }
            NotAListener::NotInet { domain } => {
                write!(f, "not an IPv4 or IPv6 socket (SO_DOMAIN {domain})")
            }
            NotAListener::NotListening => write!(f, "not listening (no listen() call)"),
        }
    }
}

impl std::error::Error for NotAListener {}

const LISTEN_BACKLOG: libc::c_int = 4096;
/// TCP_NOTSENT_LOWAT of every connection (see `reuseport_listener`).
const NOTSENT_LOWAT: libc::c_int = 128 * 1024;

fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed alongside it.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: &libc::sockaddr_in =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One worker's listening fd, closed when the worker drops it. `inherited`
/// sockets were bound by someone else (`ServerBuilder::listen_fd`), and the
/// fd is this worker's own dup.
#[derive(Debug)]
pub(crate) struct Listener {
    pub fd: OwnedFd,
    pub inherited: bool,
}

/// At shutdown: new connects to the sockets this process bound are refused
/// from now on. An inherited socket keeps listening (systemd shares it, and
/// its backlog waits for the next instance), and so does every socket when
/// `handing_over` to a successor, which shares them the same way; for
/// those, the caller's cancelled accepts are all it takes. The fds stay
/// open until the worker exits, so no queued accept can name a reused
/// number.
pub(crate) fn stop_accepting(listeners: &mut [Listener], handing_over: bool) {
    for listener in listeners {
        listener.inherited |= handing_over;
        if !listener.inherited {
            stop_listening(listener.fd.as_raw_fd());
        }
    }
}

/// Closes a stopped worker's listeners. An inherited socket is shared:
/// only our dup is closed (dropped), and it is never shut down.
pub(crate) fn close_listeners(listeners: Vec<Listener>) {
    for listener in listeners {
        if !listener.inherited {
            stop_listening(listener.fd.as_raw_fd());
        }
    }
}

fn family(addr: &SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A new TCP socket for `addr`'s family, with `SO_REUSEADDR` (connections
/// of an earlier instance left in TIME_WAIT must not keep the port from
/// being served again) and, for IPv6, `IPV6_V6ONLY`.
fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = family(addr);
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket(2) just returned this descriptor; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    let fd = socket.as_raw_fd();
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if family == libc::AF_INET6 {
        set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    Ok(socket)
}

fn bind(fd: RawFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = to_sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes.
    cvt(unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) })
        .map(drop)
}

/// Checks that no socket listens on `addr` (EADDRINUSE if one does) by
/// binding one without `SO_REUSEPORT`, and closing it. Linux refuses that
/// bind while any socket listens on the address, with `SO_REUSEPORT` or
/// without; the reuseport listeners bound next would instead join another
/// process's group (same user) and split its connections with it. With
/// `SO_REUSEADDR`, as on the listeners, TIME_WAIT leftovers do not count.
pub(crate) fn check_unserved(addr: &SocketAddr) -> io::Result<()> {
    let probe = tcp_socket(addr)?;
    bind(probe.as_raw_fd(), addr)
}

/// A listening socket with `SO_REUSEPORT`, so every worker can own one on the
/// same address and the kernel spreads connections between them.
pub(crate) fn reuseport_listener(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let socket = tcp_socket(addr)?;
    let fd = socket.as_raw_fd();
    let setup = || -> io::Result<()> {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux,
        // which saves a setsockopt per connection. NODELAY because a response
        // leaves in one send, and Nagle would hold back the tail of pipelined
        // answers.
        set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        // Inherited the same way: the kernel takes more of a response only
        // while less than this is queued unsent. It bounds the unsent bytes
        // a slow reader pins in kernel memory, and it makes a slow reader's
        // progress visible in steps of this size, which the minimum
        // response rate needs (otherwise a send waits until half a
        // multi-megabyte socket buffer drains before it completes).
        set_int_opt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            NOTSENT_LOWAT,
        )?;
        bind(fd, addr)?;
        // SAFETY: fd is a bound stream socket.
        cvt(unsafe { libc::listen(fd, LISTEN_BACKLOG) })?;
        Ok(())
    };
    // On error `socket` drops, closing the half-set-up descriptor.
    setup()?;
    Ok(socket)
}

fn get_int_opt(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are live and valid for writing; len gives value's size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Checks that an fd handed to us is a listening IPv4 or IPv6 TCP socket:
/// anything else would fail every accept, and the worker would back off
/// and retry forever.
pub(crate) fn check_listener(fd: RawFd) -> Result<(), NotAListener> {
    let so_type =
        get_int_opt(fd, libc::SOL_SOCKET, libc::SO_TYPE).map_err(NotAListener::NotASocket)?;
    if so_type != libc::SOCK_STREAM {
        return Err(NotAListener::NotStream { so_type });
    }
    let domain =
        get_int_opt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).map_err(NotAListener::NotASocket)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(NotAListener::NotInet { domain });
    }
    let listening =
        get_int_opt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map_err(NotAListener::NotASocket)?;
    if listening == 0 {
        return Err(NotAListener::NotListening);
    }
    Ok(())
}

/// Marks an inherited fd close-on-exec, so a program we start does not hold
/// the listener open (systemd passes them without the flag).
pub(crate) fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; F_GETFD/F_SETFD touch only its flags.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) }).map(drop)
}

/// O_NONBLOCK on the open file description (shared with any dup).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; F_GETFL/F_SETFL touch only its flags.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// A second fd for the same open socket, close-on-exec: each worker closes
/// its own copy of an inherited listener without closing anyone else's.
pub(crate) fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1; the result is checked.
    let dup = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: the fd was just created by the dup; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: zeroed sockaddr_storage is valid; getsockname writes at most `len` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writing.
    cvt(unsafe {
        libc::getsockname(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
}

pub(crate) fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: zeroed sockaddr_storage is valid; getpeername writes at most `len` bytes.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writing.
    let ret = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return None;
    }
    from_sockaddr(&storage)
}

/// Sends FIN: the peer reads 0 instead of a reset, and unlike a RST a FIN is
/// retransmitted until acknowledged (ARCHITECTURE.md, Engine invariants).
pub(crate) fn shutdown_write(fd: RawFd) {
    // SAFETY: fd is a socket this worker owns; errors (ENOTCONN) are harmless.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Stops a listening socket this process bound itself, at once. Never for an
/// inherited one: it is shared with systemd, and a shutdown would stop it
/// for systemd and the next instance too. Closing the fd is not enough: an
/// in-flight multishot accept holds its own reference, and a ring torn down
/// later keeps the socket listening, so connects would still complete and be
/// reset afterwards. `shutdown` on a listener moves it out of LISTEN now.
pub(crate) fn stop_listening(fd: RawFd) {
    // SAFETY: fd is a listening socket this worker owns.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// The option a reset close sets: linger on, zero seconds, so `close`
/// sends RST and drops the send queue. A static, so an SQE can point at it
/// for as long as it waits in the ring.
pub(crate) static LINGER_ZERO: libc::linger = libc::linger {
    l_onoff: 1,
    l_linger: 0,
};

/// Makes the coming `close` send RST and free the socket's queued bytes at
/// once, instead of a FIN that leaves an orphan holding its send queue for
/// as long as the peer keeps acknowledging (nginx's
/// `reset_timedout_connection`).
pub(crate) fn set_linger_zero(fd: RawFd) {
    // SAFETY: `LINGER_ZERO` is a static and its size is passed alongside it.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&LINGER_ZERO as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Bytes in the socket's send queue, sent or not, that the peer has not
/// acknowledged (SIOCOUTQ). An error counts as empty.
pub(crate) fn unacked_bytes(fd: RawFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one c_int through the pointer.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued as *mut libc::c_int) };
    if ret < 0 {
        0
    } else {
        queued.max(0) as usize
    }
}

/// Sends what fits now and never blocks (a best-effort answer on a socket
/// that is about to be closed).
pub(crate) fn send_nonblocking(fd: RawFd, bytes: &[u8]) {
    // SAFETY: `bytes` is a live slice of the given length.
    unsafe {
        libc::send(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// A non-blocking eventfd: how a shutdown request wakes a worker.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2) call; the result is checked.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: eventfd(2) just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// A random key (getrandom), for hashing that must not be predictable from
/// outside. Falls back to the clock if getrandom fails.
pub(crate) fn random_u64() -> u64 {
    let mut key = 0u64;
    // SAFETY: writes at most 8 bytes into a live u64.
    let n = unsafe { libc::getrandom((&mut key as *mut u64).cast(), 8, 0) };
    if n != 8 {
        key = crate::sys::clock::mono_now().secs_nanos().1 as u64 ^ std::process::id() as u64;
    }
    key
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as Go's runtime does, so
/// `max_connections` is not silently capped by a default of 1024.
pub(crate) fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to read into and back from.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Descriptors beside the connections: listeners, rings, eventfds, the
/// metrics socket, a handler's own files.
const FD_TABLE_HEADROOM: usize = 256;

/// Grows this process's descriptor table now to hold `max_connections`
/// connections (within RLIMIT_NOFILE), rather than during a burst of
/// accepts. The kernel grows the table of a process with several threads
/// only after an RCU grace period (`expand_fdtable` calls
/// `synchronize_rcu()`), milliseconds each time the table doubles, and the
/// worker that accepts waits for it: a fresh server hit by 5,000
/// connections at once stalls about seven times. Best effort: a table that
/// cannot grow now grows later, as before. The table is kernel memory, 8
/// bytes a slot, not part of the process's RSS (1 MiB for the default
/// 100,000 connections where the limit allows them).
pub(crate) fn presize_fd_table(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to read into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let wanted = max_connections.saturating_add(FD_TABLE_HEADROOM);
    let limit = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    let Some(highest) = wanted
        .min(limit)
        .min(libc::c_int::MAX as usize)
        .checked_sub(1)
    else {
        return;
    };
    // F_DUPFD gives the lowest free descriptor at or above its argument,
    // so asking for the highest one makes the kernel size the table for
    // it. Standard input may be closed: dup one we opened.
    let Ok(probe) = eventfd() else {
        return;
    };
    // SAFETY: fcntl on a descriptor we own; the result, if any, is a new
    // descriptor we close right away.
    let dup = unsafe {
        libc::fcntl(
            probe.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            highest as libc::c_int,
        )
    };
    if dup >= 0 {
        // SAFETY: dup was just returned by fcntl and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(dup) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine sets neither TCP_NODELAY nor TCP_NOTSENT_LOWAT per
    /// connection: it relies on accepted sockets inheriting them from the
    /// listener.
    #[test]
    fn accepted_sockets_inherit_nodelay_and_notsent_lowat_from_the_listener() {
        let listener = reuseport_listener(&SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = local_addr(listener.as_raw_fd()).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        // SAFETY: a blocking accept on our listener with no address out-params.
        let raw = unsafe {
            libc::accept(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert!(raw >= 0, "{}", io::Error::last_os_error());
        // SAFETY: accept(2) just returned this descriptor; nothing else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        let accepted = owned.as_raw_fd();
        assert_eq!(
            get_int_opt(accepted, libc::IPPROTO_TCP, libc::TCP_NODELAY).unwrap(),
            1
        );
        assert_eq!(
            get_int_opt(accepted, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT).unwrap(),
            NOTSENT_LOWAT,
            "accepted sockets must inherit TCP_NOTSENT_LOWAT too"
        );
    }

    #[test]
    fn check_listener_accepts_only_listening_tcp_sockets() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(check_listener(listener.as_raw_fd()).is_ok());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(matches!(
            check_listener(udp.as_raw_fd()),
            Err(NotAListener::NotStream { .. })
        ));
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(matches!(
            check_listener(client.as_raw_fd()),
            Err(NotAListener::NotListening)
        ));
        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            check_listener(unix.as_raw_fd()),
            Err(NotAListener::NotInet { .. })
        ));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(matches!(
            check_listener(file.as_raw_fd()),
            Err(NotAListener::NotASocket(_))
        ));
    }
}
