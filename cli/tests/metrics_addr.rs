//! `ringwall serve --metrics-addr`: the binary, started as an operator
//! would, serves the running server's counters to a scraper.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{exchange, io_uring_available, line_after, Running};

/// The metrics server's header timeout (`metrics_endpoint::HEADER_TIMEOUT`).
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// `ringwall serve` with `--metrics-addr 127.0.0.1:0`: the process, its
/// output, the app's address and the metrics address.
fn serve_with_metrics() -> (Running, BufReader<ChildStdout>, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server = Running::new(child);
    let app: SocketAddr = line_after(&mut stdout, "ringwall listening on ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("the listening line starts with the address");
    let metrics: SocketAddr = line_after(&mut stdout, "ringwall metrics on http://")
        .strip_suffix("/metrics")
        .expect("the metrics line ends in /metrics")
        .parse()
        .expect("the metrics line names the address");
    (server, stdout, app, metrics)
}

#[test]
fn metrics_addr_serves_the_running_servers_counters() {
    if !io_uring_available() {
        return;
    }
    let (server, mut stdout, app, metrics) = serve_with_metrics();

    let hello = exchange(
        app,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(hello.ends_with("Hello, World!"), "{hello}");

    let scrape = exchange(
        metrics,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = scrape.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    for line in [
        "# TYPE ringwall_requests_total counter",
        "ringwall_requests_total 1",
        "ringwall_connections_accepted_total 1",
        "ringwall_closes_total{reason=\"completed\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in\n{body}");
    }

    let elsewhere = exchange(
        metrics,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        elsewhere.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{elsewhere}"
    );

    // SAFETY: kill(2) with the pid of a child this test started and has not
    // yet reaped, so the pid cannot name another process.
    let signalled = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0, "SIGTERM was not sent");
    let stopped = line_after(&mut stdout, "ringwall stopped: ");
    assert!(stopped.contains(" requests=1 "), "{stopped}");
}

/// The attack: silent connections to the metrics port. A server
/// that answers one connection at a time makes the scrape wait behind each
/// of them for its whole deadline (the blocking endpoint this replaced: 2 s
/// each, 200 s for 100); served by ringwall, they wait in slots of their
/// own and each is closed at its own header deadline.
#[test]
fn silent_connections_neither_delay_a_scrape_nor_outlive_their_header_deadline() {
    if !io_uring_available() {
        return;
    }
    let (_server, _stdout, _app, metrics) = serve_with_metrics();
    let silent: Vec<(TcpStream, Instant)> = (0..100)
        .map(|_| {
            let stream = TcpStream::connect(metrics).expect("a silent connection");
            (stream, Instant::now())
        })
        .collect();

    let started = Instant::now();
    let mut scrape = TcpStream::connect(metrics).expect("the scraper connects");
    // Generous, so that a slow machine fails on the bound below, with the
    // time it took, rather than on this timeout.
    scrape
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let read = scrape.read_to_string(&mut response);
    let took = started.elapsed();
    assert!(
        read.is_ok() && response.starts_with("HTTP/1.1 200 OK\r\n"),
        "no scrape answer within {took:?} behind 100 silent connections: {read:?} {response:?}"
    );
    // The done-when bound is 100 ms; a second leaves room for a loaded CI
    // machine and still fails the endpoint this replaced, whose first silent
    // connection alone held it for 2 s.
    assert!(
        took < Duration::from_secs(1),
        "the scrape took {took:?} behind 100 silent connections"
    );

    // Each silent connection is closed (FIN: it was sent nothing) at its
    // header deadline: not before, and not long after.
    for (i, (mut stream, connected)) in silent.into_iter().enumerate() {
        let limit = connected + METRICS_HEADER_TIMEOUT + Duration::from_secs(3);
        stream
            .set_read_timeout(Some(
                limit
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        let mut byte = [0u8; 1];
        let read = loop {
            match stream.read(&mut byte) {
                // A signal to this test process (another test's child
                // exiting); the read timeout still bounds the wait.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && Instant::now() < limit => {
                }
                read => break read,
            }
        };
        let open_for = connected.elapsed();
        assert!(
            matches!(read, Ok(0)),
            "silent connection {i}: {read:?} after {open_for:?}, not EOF by its header deadline"
        );
        assert!(
            open_for >= METRICS_HEADER_TIMEOUT - Duration::from_millis(500),
            "silent connection {i} was closed after {open_for:?}, before its header deadline"
        );
    }
}
