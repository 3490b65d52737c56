//! How and when the server closed a connection, seen from the client.

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How a connection ended, as `read()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// `read()` returned 0: the server sent FIN.
    Fin,
    /// `read()` failed with ECONNRESET: the server sent RST.
    Reset,
    /// Nothing ended the connection within the time allowed.
    StillOpen,
}

/// The end of a connection.
#[derive(Clone, Debug)]
pub struct Closed {
    pub kind: CloseKind,
    /// When `read()` reported the close (or gave up, for `StillOpen`).
    pub at: Instant,
    /// Bytes that arrived before the close (a late response, a 408).
    pub data: Vec<u8>,
}

/// Reads until the server closes `stream` or `within` passes, keeping any
/// bytes that arrive first. Changes the stream's read timeout. An error is a
/// read that failed with neither EOF nor a reset.
pub fn wait_for_close(stream: &mut TcpStream, within: Duration) -> io::Result<Closed> {
    let end = Instant::now() + within;
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(Closed {
                kind: CloseKind::StillOpen,
                at: now,
                data,
            });
        }
        // A zero timeout would mean "block forever".
        let left = (end - now).max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left))?;
        let result = stream.read(&mut buf);
        let at = Instant::now();
        let kind = match result {
            Ok(0) => CloseKind::Fin,
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) if is_reset(&e) => CloseKind::Reset,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        return Ok(Closed { kind, at, data });
    }
}

/// Waits until the server's FIN or RST reaches `stream` or `within` passes,
/// reading nothing: for a client that must not drain what the server is
/// sending (a non-reader whose close is the server's write deadline).
/// Returns when the close was seen, `None` if the connection is still open.
pub fn wait_for_close_unread(stream: &TcpStream, within: Duration) -> io::Result<Option<Instant>> {
    // Only the peer's FIN (POLLRDHUP); RST and errors come as POLLHUP and
    // POLLERR, which poll always reports. Queued data (POLLIN) wakes nothing.
    let mut pollfd = [libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    }];
    poll_until(&mut pollfd, Instant::now() + within)
}

/// `poll(2)` on `pollfds` until one is ready (returns when) or `end`
/// passes (`None`); an interrupted wait is resumed.
fn poll_until(pollfds: &mut [libc::pollfd], end: Instant) -> io::Result<Option<Instant>> {
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(None);
        }
        let timeout_ms = (end - now).as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: `pollfds` is a live array of `len` pollfd entries.
        let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as _, timeout_ms) };
        let at = Instant::now();
        if ready > 0 {
            return Ok(Some(at));
        }
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// ECONNRESET or ECONNABORTED: the server sent RST.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// A read timeout ran out (or a non-blocking read found nothing).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What one of many watched connections saw.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    pub closed: Option<(Instant, CloseKind)>,
    /// Bytes received (and consumed) while watching.
    pub bytes: usize,
    /// The first [`WATCHED_PREFIX`] of them: enough for a status line's
    /// `HTTP/1.1 503`.
    pub first: Vec<u8>,
}

/// How many of a watched connection's first bytes are kept.
pub const WATCHED_PREFIX: usize = 16;

/// Watches `streams` for `window` on one `poll` loop and reports which the
/// server closed, how and when, and how many bytes each received. The
/// streams are left non-blocking. An error is a failed `poll` or a read that
/// failed with neither EOF nor a reset.
pub fn watch_for_closes(streams: &[TcpStream], window: Duration) -> io::Result<Vec<Watched>> {
    let end = Instant::now() + window;
    let mut watched = vec![Watched::default(); streams.len()];
    for s in streams {
        s.set_nonblocking(true)?;
    }
    let mut buf = [0u8; 16 * 1024];
    let mut pollfds = Vec::with_capacity(streams.len());
    let mut polled = Vec::with_capacity(streams.len());
    loop {
        pollfds.clear();
        polled.clear();
        for (i, s) in streams.iter().enumerate() {
            if watched[i].closed.is_none() {
                pollfds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLRDHUP,
                    revents: 0,
                });
                polled.push(i);
            }
        }
        if pollfds.is_empty() {
            return Ok(watched);
        }
        let Some(at) = poll_until(&mut pollfds, end)? else {
            return Ok(watched);
        };
        for (pfd, &i) in pollfds.iter().zip(&polled) {
            if pfd.revents == 0 {
                continue;
            }
            for _ in 0..64 {
                match (&streams[i]).read(&mut buf) {
                    Ok(0) => {
                        watched[i].closed = Some((at, CloseKind::Fin));
                        break;
                    }
                    Ok(n) => {
                        let w = &mut watched[i];
                        let keep = n.min(WATCHED_PREFIX.saturating_sub(w.first.len()));
                        w.first.extend_from_slice(&buf[..keep]);
                        w.bytes += n;
                    }
                    Err(e) if is_reset(&e) => {
                        watched[i].closed = Some((at, CloseKind::Reset));
                        break;
                    }
                    Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// A close may come at most this long before its deadline: clock
/// granularity, with the deadline measured from just before `connect` (or
/// the write that starts the server's clock), so the server cannot have
/// started its clock earlier. The attack client's early-close bound too.
pub const EARLY_SLACK: Duration = Duration::from_millis(5);
/// A close may come at most this long after its deadline (a correctness
/// bound for the integration tests; precision is what the benchmark runners
/// measure).
pub const LATE_SLACK: Duration = Duration::from_millis(500);

/// Asserts that a close at `closed_at` honours a `deadline` that started
/// somewhere between `earliest_start` and `latest_start`: not before it
/// (beyond [`EARLY_SLACK`]), not later than [`LATE_SLACK`] after it.
#[track_caller]
pub fn assert_closed_within(
    what: &str,
    closed_at: Instant,
    earliest_start: Instant,
    latest_start: Instant,
    deadline: Duration,
) {
    let earliest = closed_at.saturating_duration_since(earliest_start);
    let latest = closed_at.saturating_duration_since(latest_start);
    assert!(
        earliest + EARLY_SLACK >= deadline,
        "{what}: closed early, {earliest:?} after the deadline started (deadline {deadline:?})"
    );
    assert!(
        latest <= deadline + LATE_SLACK,
        "{what}: closed late, {latest:?} after the deadline started (deadline {deadline:?})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn unread_wait_ignores_data_and_sees_the_fin() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"data the client never reads").unwrap();
        let seen = wait_for_close_unread(&client, Duration::from_millis(100)).unwrap();
        assert_eq!(seen, None, "queued data is not a close");
        drop(server);
        let seen = wait_for_close_unread(&client, Duration::from_secs(5)).unwrap();
        assert!(seen.is_some(), "the FIN is seen behind unread data");
        let mut queued = [0u8; 64];
        let n = (&client).read(&mut queued).unwrap();
        assert_eq!(&queued[..n], b"data the client never reads");
    }
}
