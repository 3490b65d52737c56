//! `--metrics-addr`: the counters in Prometheus' text format over HTTP/1.1,
//! from one blocking thread beside the workers.
//!
//! ```text
//!  scraper ──► accept ──► read the head (≤ 8 KiB, within 2 s) ──► answer ──► close
//!                                                    │
//!                      GET /metrics: 200, StatsReader::stats().to_prometheus()
//!                      any other request: 404; not HTTP: 400; too big: 431
//! ```
//!
//! One connection at a time and one request per connection: a scraper
//! connects every few seconds, so nothing here needs the engine. What bounds
//! it is the head's size and one deadline for the whole head, not a timeout
//! per read, so a client dripping a byte at a time (the slowloris the engine
//! is built against) holds the endpoint for 2 s at most.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringwall::{Stats, StatsReader, PROMETHEUS_CONTENT_TYPE};

/// How long a client has to send its whole request head, and each write of
/// the answer has to make progress.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// The largest request head read; a scraper's is a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The endpoint's listener, bound before the server starts so that a bad
/// `--metrics-addr` stops `ringwall serve` before it serves anything.
pub struct MetricsEndpoint {
    listener: TcpListener,
}

impl MetricsEndpoint {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsEndpoint> {
        Ok(MetricsEndpoint {
            listener: TcpListener::bind(addr)?,
        })
    }

    /// Serves on a listener passed by a parent that handed over (`upgrade`).
    pub fn from_listener(listener: TcpListener) -> MetricsEndpoint {
        MetricsEndpoint { listener }
    }

    /// The listening socket, to pass to a successor.
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// The address bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers scrapes on a thread of its own until the process exits.
    /// Spawn it after blocking SIGINT, SIGTERM and SIGUSR2: the thread
    /// inherits the mask, so a signal cannot land here and end the process
    /// without the graceful shutdown.
    pub fn spawn(self, stats: StatsReader) -> io::Result<()> {
        std::thread::Builder::new()
            .name("ringwall-metrics".into())
            .spawn(move || self.run(&stats))
            .map(drop)
    }

    fn run(self, stats: &StatsReader) {
        for stream in self.listener.incoming() {
            match stream {
                // A client that goes away mid-exchange costs nothing to
                // report: the next scrape will come.
                Ok(stream) => {
                    let _ = answer(stream, REQUEST_DEADLINE, || stats.stats());
                }
                Err(e) => {
                    // EMFILE and the like do not clear at once: back off
                    // rather than spin on them.
                    eprintln!("ringwall: metrics endpoint: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Everything up to and including the blank line.
    Complete(Vec<u8>),
    /// `MAX_HEAD_BYTES` arrived without the blank line.
    TooLarge,
    /// The client closed, or the deadline passed, before the blank line.
    Cut,
}

/// Reads one request head and answers it, then closes.
fn answer(
    mut stream: TcpStream,
    deadline_after: Duration,
    stats: impl FnOnce() -> Stats,
) -> io::Result<()> {
    let deadline = Instant::now() + deadline_after;
    let response = match read_head(&mut stream, deadline)? {
        Head::Complete(head) => respond(&head, stats),
        Head::TooLarge => response(431, "text/plain", b"request head too large\n"),
        Head::Cut => return Ok(()),
    };
    stream.set_write_timeout(Some(deadline_after))?;
    stream.write_all(&response)?;
    stream.shutdown(Shutdown::Write)
}

fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::Cut);
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(Head::Cut),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Head::Cut)
            }
            Err(e) => return Err(e),
        };
        // Search from a little before the new bytes: the blank line may
        // straddle two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_blank_line(&head[from..]) {
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() >= MAX_HEAD_BYTES {
            return Ok(Head::TooLarge);
        }
    }
}

/// The length up to and including the first `\r\n\r\n`.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The answer to a complete request head: the request line decides it, the
/// headers are not needed.
fn respond(head: &[u8], stats: impl FnOnce() -> Stats) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return response(400, "text/plain", b"bad request line\n");
    };
    if !(version == b"HTTP/1.1" || version == b"HTTP/1.0") {
        return response(400, "text/plain", b"not HTTP/1.x\n");
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if method == b"GET" && path == b"/metrics" {
        response(
            200,
            PROMETHEUS_CONTENT_TYPE,
            stats().to_prometheus().as_bytes(),
        )
    } else {
        response(404, "text/plain", b"the metrics are at GET /metrics\n")
    }
}

fn response(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with_requests(requests: u64) -> impl FnOnce() -> Stats {
        move || {
            // `Stats` is non_exhaustive: no struct literal outside ringwall.
            let mut stats = Stats::default();
            stats.requests = requests;
            stats
        }
    }

    fn status_line(response: &[u8]) -> &str {
        let text = std::str::from_utf8(response).unwrap();
        text.split("\r\n").next().unwrap()
    }

    #[test]
    fn get_metrics_is_answered_with_the_exposition() {
        let response = respond(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            stats_with_requests(7),
        );
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(
            body.lines().any(|l| l == "ringwall_requests_total 7"),
            "{body}"
        );
    }

    #[test]
    fn a_query_string_does_not_change_the_path() {
        let response = respond(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", Stats::default);
        assert_eq!(status_line(&response), "HTTP/1.1 200 OK");
    }

    #[test]
    fn anything_but_get_metrics_is_404() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /metrics/ HTTP/1.1\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\n\r\n",
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
        ] {
            let response = respond(head, || panic!("stats read for a 404"));
            assert_eq!(status_line(&response), "HTTP/1.1 404 Not Found", "{head:?}");
        }
    }

    #[test]
    fn a_request_line_that_is_not_http_1_is_400() {
        for head in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            let response = respond(head, Stats::default);
            assert_eq!(
                status_line(&response),
                "HTTP/1.1 400 Bad Request",
                "{head:?}"
            );
        }
    }

    #[test]
    fn blank_line_is_found_across_reads() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r\n"), Some(18));
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r"), None);
    }

    /// A loopback connection: the endpoint's side and the client's.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn a_head_sent_in_pieces_is_read_whole() {
        let (mut server, mut client) = pair();
        let writer = std::thread::spawn(move || {
            for piece in [&b"GET /metrics HTTP/1.1\r"[..], b"\nHost: x\r\n\r", b"\n"] {
                client.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            client
        });
        let head = read_head(&mut server, Instant::now() + Duration::from_secs(5)).unwrap();
        drop(writer.join());
        assert_eq!(
            head,
            Head::Complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec())
        );
    }

    #[test]
    fn a_dripping_client_is_cut_off_at_the_deadline() {
        let (mut server, mut client) = pair();
        client.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let dripping = std::thread::spawn(move || {
            // One header byte every 20 ms, never the blank line.
            while client.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        let head = read_head(&mut server, started + Duration::from_millis(200)).unwrap();
        let took = started.elapsed();
        drop(server);
        drop(dripping.join());
        assert_eq!(head, Head::Cut);
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_head_without_end_is_refused_at_the_size_cap() {
        let (mut server, mut client) = pair();
        client.write_all(&[b'x'; MAX_HEAD_BYTES + 10]).unwrap();
        let head = read_head(&mut server, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(head, Head::TooLarge);
    }
}
