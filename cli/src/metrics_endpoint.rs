//! `--metrics-addr`: the main server's counters in Prometheus' text format,
//! served by a small ringwall server of its own.
//!
//! ```text
//!  scraper ──► metrics Server: 1 worker, ≤ MAX_CONNECTIONS, its own deadlines
//!                 GET /metrics ──► 200, main server's StatsReader::stats().to_prometheus()
//!                 any other request ──► 404; a malformed one: the engine's 400, 431, ...
//! ```
//!
//! The endpoint faces the same clients as the main server, so it gets the
//! same engine: a blocking server that answered one connection at a time
//! let ten silent connections make a scrape time out, and five that
//! reconnected kept every scrape failing. Here a silent connection holds a
//! slot, not the endpoint, until its header deadline closes it. The
//! deadlines are shorter than the main server's: a scraper sends its
//! request at once and connects every few seconds.
//!
//! Its own server, not a route of the main one: the counters stay off the
//! served port, and connections flooding the main port cannot take the
//! slots of the scrapes that would show the flood.
//!
//! It starts after the main server, with the main server's backend, and
//! stops with it: at SIGINT/SIGTERM both shut down, and at a SIGUSR2
//! hand-over its one socket is passed down with the served ones and handed
//! over with them (`ServerHandle::hand_over`), so the successor serves the
//! address from the same socket and no scrape is refused. A worker failure
//! in either stops both, and the process exits 1.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use ringwall::metrics::{StatsReader, PROMETHEUS_CONTENT_TYPE};
use ringwall::{
    Backend, ConfigError, Handler, Limits, Request, Response, Server, ServerBuilder, ServerHandle,
    StartError,
};

/// How long a scraper has to send its request head; a silent connection is
/// closed then.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive scraper connection may wait for its next request.
/// Prometheus scrapes every 15 s by default, and reconnects when closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections at once; the next is answered 503 and closed. A scraper
/// needs one: the rest is room for the connections it has to outlast.
pub const MAX_CONNECTIONS: usize = 256;
/// Grace for a scrape in flight when the process stops or hands over.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the endpoint listens: an address to bind, or the socket a parent
/// passed down at a SIGUSR2 restart, which it bound.
pub enum Listen {
    Bind(SocketAddr),
    Passed(OwnedFd),
}

/// Why the endpoint did not start.
#[derive(Debug)]
pub enum EndpointError {
    /// The settings below do not validate: a bug here.
    Config(ConfigError),
    Start(StartError),
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Config(e) => write!(f, "invalid metrics server settings: {e}"),
            EndpointError::Start(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EndpointError {}

/// The metrics server's settings. `backend` is the one the main server
/// runs on: it already knows whether io_uring is refused here.
pub fn builder(listen: Listen, backend: Backend) -> ServerBuilder {
    let builder = Server::builder();
    let builder = match listen {
        Listen::Bind(addr) => builder.bind(addr),
        Listen::Passed(fd) => builder.listen_fd(fd),
    };
    builder
        .name("metrics")
        .backend(backend)
        .workers(1)
        .header_timeout(HEADER_TIMEOUT)
        .body_timeout(HEADER_TIMEOUT)
        .idle_timeout(IDLE_TIMEOUT)
        .write_timeout(IDLE_TIMEOUT)
        .handler_timeout(HEADER_TIMEOUT)
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .max_connections(MAX_CONNECTIONS)
        // A scrape's head is a few hundred bytes and it has no body.
        .limits(
            Limits::new()
                .with_max_head_bytes(8 * 1024)
                .with_max_target_bytes(4 * 1024)
                .with_max_body_bytes(4 * 1024),
        )
        .max_buffered_body_bytes(64 * 1024)
        // An exposition is a few KiB: room for every connection's answer.
        .max_queued_output_bytes(8 << 20)
        .ring_entries(256)
        .recv_buffers(64, 4096)
        // The main server decided that; this one must not undo it.
        .return_memory_to_os(false)
        // Two processes scraped on one address would answer with each
        // other's counters at random.
        .reuse_port(false)
}

/// Starts the metrics server, answering with `stats`' counters. Start it
/// after blocking SIGINT, SIGTERM and SIGUSR2: its worker inherits the
/// mask, so a signal cannot land there and end the process without the
/// graceful shutdown.
pub fn start(
    listen: Listen,
    backend: Backend,
    stats: StatsReader,
) -> Result<ServerHandle, EndpointError> {
    builder(listen, backend)
        .build()
        .map_err(EndpointError::Config)?
        .serve(Scrapes { stats })
        .map_err(EndpointError::Start)
}

/// The handler: the exposition at `GET /metrics`, 404 elsewhere.
struct Scrapes {
    stats: StatsReader,
}

impl Handler for Scrapes {
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        // The path without the query: `/metrics?x=1` is the exposition too.
        let result = if request.method() == "GET" && request.path() == "/metrics" {
            let text = self.stats.stats().to_prometheus();
            response.send(
                200,
                &[("Content-Type", PROMETHEUS_CONTENT_TYPE.as_bytes())],
                text.as_bytes(),
            )
        } else {
            response.send(
                404,
                &[("Content-Type", b"text/plain")],
                b"the metrics are at GET /metrics\n",
            )
        };
        // Fixed, valid headers and one send: the encoder cannot refuse them.
        debug_assert!(result.is_ok(), "{result:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn the_settings_validate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = builder(Listen::Bind(addr), Backend::Auto)
            .build()
            .expect("valid settings");
        assert_eq!(server.config().workers, 1);
        assert_eq!(server.config().max_connections, MAX_CONNECTIONS);
        assert_eq!(server.config().header_timeout, HEADER_TIMEOUT);
    }

    /// A main server whose counters to serve, and the endpoint beside it;
    /// `None` (the test skips, saying why) without io_uring.
    fn endpoint() -> Option<(ServerHandle, ServerHandle)> {
        let main = Server::builder()
            .bind(([127, 0, 0, 1], 0).into())
            .workers(1)
            .build()
            .unwrap()
            .serve(|_: &Request<'_>, response: &mut Response<'_>| {
                let _ = response.send(200, &[], b"");
            });
        let main = match main {
            Ok(main) => main,
            Err(StartError::IoUring(cause)) => {
                ringwall_tests::skip_without_io_uring(&cause);
                return None;
            }
            Err(e) => panic!("the main server failed to start: {e}"),
        };
        let listen = Listen::Bind(([127, 0, 0, 1], 0).into());
        let metrics = start(listen, main.backend(), main.stats_reader()).expect("it starts");
        Some((main, metrics))
    }

    /// One request on its own connection, which the request closes; the
    /// status line and the body.
    fn exchange(addr: SocketAddr, request_line: &str) -> (String, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!("{request_line}\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a whole response");
        let status = head.split("\r\n").next().unwrap().to_owned();
        (status, body.to_owned())
    }

    #[test]
    fn get_metrics_is_the_main_servers_exposition() {
        let Some((main, metrics)) = endpoint() else {
            return;
        };
        let (status, _) = exchange(main.local_addr(), "GET / HTTP/1.1");
        assert_eq!(status, "HTTP/1.1 200 OK");
        for target in ["/metrics", "/metrics?x=1"] {
            let (status, body) = exchange(metrics.local_addr(), &format!("GET {target} HTTP/1.1"));
            assert_eq!(status, "HTTP/1.1 200 OK", "{target}");
            // The main server's one request, not the scrapes.
            assert!(
                body.lines().any(|l| l == "ringwall_requests_total 1"),
                "{target}: {body}"
            );
        }
    }

    #[test]
    fn anything_but_get_metrics_is_404() {
        let Some((_main, metrics)) = endpoint() else {
            return;
        };
        for line in [
            "GET / HTTP/1.1",
            "GET /metrics/ HTTP/1.1",
            "POST /metrics HTTP/1.1",
            "HEAD /metrics HTTP/1.1",
        ] {
            let (status, _) = exchange(metrics.local_addr(), line);
            assert_eq!(status, "HTTP/1.1 404 Not Found", "{line}");
        }
    }
}
