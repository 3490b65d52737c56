//! A slowloris client: hundreds of connections, each dripping one byte of a
//! request head that never ends, driven by one thread on one `poll` loop.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::close::CloseKind;
use crate::fd_limit::raise_fd_limit;

/// The head each connection drips: a valid start, then a header value that
/// never ends (no CRLF), so the head can never complete.
const HEAD_START: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Drip: ";

/// What one dripping connection saw.
#[derive(Clone, Debug)]
pub struct DripOutcome {
    /// Just before `connect()`: the server cannot have accepted earlier, so
    /// its header deadline cannot fall before `before_connect + timeout`.
    pub before_connect: Instant,
    /// Just after `connect()` returned.
    pub connected: Instant,
    /// When and how the server closed it, if it did.
    pub closed: Option<(Instant, CloseKind)>,
    pub bytes_sent: usize,
    /// Bytes the server sent before closing (a 408 is allowed, nothing else).
    pub bytes_received: usize,
}

fn drip_byte(k: usize) -> u8 {
    HEAD_START.get(k).copied().unwrap_or(b'a')
}

fn send_byte(stream: &TcpStream, byte: u8) -> bool {
    // SAFETY: sends one byte from a live local; MSG_NOSIGNAL turns a write to a
    // closed connection into EPIPE instead of SIGPIPE.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    n == 1
}

/// Opens `connections` connections to `addr`, sends each one byte of a head
/// at once and then one more every `interval`, and watches for the server to
/// close them. Returns when all are closed or `give_up_after` has passed
/// since the last connect.
pub fn drip_heads(
    addr: SocketAddr,
    connections: usize,
    interval: Duration,
    give_up_after: Duration,
) -> Vec<DripOutcome> {
    raise_fd_limit();
    let mut streams = Vec::with_capacity(connections);
    let mut outcomes = Vec::with_capacity(connections);
    let mut next_drip = Vec::with_capacity(connections);
    for i in 0..connections {
        let before_connect = Instant::now();
        let stream = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("connect #{i} to {addr} failed: {e}"));
        let connected = Instant::now();
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream.set_nonblocking(true).expect("set O_NONBLOCK");
        let sent = send_byte(&stream, drip_byte(0));
        streams.push(stream);
        outcomes.push(DripOutcome {
            before_connect,
            connected,
            closed: None,
            bytes_sent: usize::from(sent),
            bytes_received: 0,
        });
        next_drip.push(connected + interval);
    }
    let give_up_at = Instant::now() + give_up_after;
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(connections);
    let mut polled: Vec<usize> = Vec::with_capacity(connections);
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= give_up_at || outcomes.iter().all(|o| o.closed.is_some()) {
            break;
        }
        pollfds.clear();
        polled.clear();
        let mut wake = give_up_at;
        for (i, stream) in streams.iter().enumerate() {
            if outcomes[i].closed.is_some() {
                continue;
            }
            if next_drip[i] <= now {
                if send_byte(stream, drip_byte(outcomes[i].bytes_sent)) {
                    outcomes[i].bytes_sent += 1;
                }
                next_drip[i] += interval;
                if next_drip[i] <= now {
                    // Fell behind (a busy machine): do not burst to catch up.
                    next_drip[i] = now + interval;
                }
            }
            wake = wake.min(next_drip[i]);
            pollfds.push(libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            });
            polled.push(i);
        }
        let timeout_ms = wake
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000) as libc::c_int;
        // SAFETY: `pollfds` is a live array of `len` pollfd entries.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as _, timeout_ms) };
        let at = Instant::now();
        if ready < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll failed: {e}");
            continue;
        }
        for (pfd, &i) in pollfds.iter().zip(&polled) {
            if pfd.revents == 0 {
                continue;
            }
            // Drain what is readable; EOF or a reset is the close.
            for _ in 0..64 {
                // SAFETY: reads into a live local buffer of the given length.
                let n = unsafe {
                    libc::recv(
                        pfd.fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 {
                    outcomes[i].bytes_received += n as usize;
                    continue;
                }
                if n == 0 {
                    outcomes[i].closed = Some((at, CloseKind::Fin));
                    break;
                }
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    Some(libc::ECONNRESET) | Some(libc::ECONNABORTED) => {
                        outcomes[i].closed = Some((at, CloseKind::Reset))
                    }
                    _ => panic!("recv on dripping connection #{i} failed: {e}"),
                }
                break;
            }
        }
    }
    outcomes
}

/// Dripping connections checked against a deadline measured from connect.
#[derive(Debug)]
pub struct DeadlineCheck {
    pub connections: usize,
    /// Closed before `before_connect + deadline - early_slack`: the server
    /// cannot have had a deadline that early.
    pub early: Vec<String>,
    /// Closed after `connected + deadline + late_slack`, or never.
    pub late: Vec<String>,
    pub never_closed: usize,
    pub resets: usize,
    /// Connections that received bytes before the close.
    pub answered: usize,
    /// Close time minus (connect + deadline), in ms: p50, p99, max.
    pub overshoot_ms: (f64, f64, f64),
}

impl DeadlineCheck {
    pub fn of(
        outcomes: &[DripOutcome],
        deadline: Duration,
        early_slack: Duration,
        late_slack: Duration,
    ) -> DeadlineCheck {
        let mut early = Vec::new();
        let mut late = Vec::new();
        let mut overshoots = Vec::new();
        let mut resets = 0;
        for (i, o) in outcomes.iter().enumerate() {
            let Some((at, kind)) = o.closed else {
                late.push(format!("#{i}: never closed ({} bytes sent)", o.bytes_sent));
                continue;
            };
            if kind == CloseKind::Reset {
                resets += 1;
            }
            let from_connect = at.saturating_duration_since(o.connected);
            let from_before = at.saturating_duration_since(o.before_connect);
            if from_before + early_slack < deadline {
                early.push(format!(
                    "#{i}: closed {from_before:?} after connect began, deadline {deadline:?}"
                ));
            }
            if from_connect > deadline + late_slack {
                late.push(format!(
                    "#{i}: closed {from_connect:?} after connect, deadline {deadline:?}"
                ));
            }
            overshoots.push(from_connect.as_secs_f64() * 1e3 - deadline.as_secs_f64() * 1e3);
        }
        overshoots.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            if overshoots.is_empty() {
                f64::NAN
            } else {
                overshoots[((overshoots.len() - 1) as f64 * q).round() as usize]
            }
        };
        DeadlineCheck {
            connections: outcomes.len(),
            never_closed: outcomes.iter().filter(|o| o.closed.is_none()).count(),
            answered: outcomes.iter().filter(|o| o.bytes_received > 0).count(),
            early,
            late,
            resets,
            overshoot_ms: (pick(0.5), pick(0.99), pick(1.0)),
        }
    }

    pub fn summary(&self) -> String {
        let (p50, p99, max) = self.overshoot_ms;
        format!(
            "{} connections: {} early, {} late, {} never closed, {} resets, {} answered; \
             overshoot p50={p50:.1}ms p99={p99:.1}ms max={max:.1}ms; first early: {:?}; first late: {:?}",
            self.connections,
            self.early.len(),
            self.late.len(),
            self.never_closed,
            self.resets,
            self.answered,
            self.early.first(),
            self.late.first(),
        )
    }
}
