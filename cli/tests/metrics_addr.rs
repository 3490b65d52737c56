//! `ringwall serve --metrics-addr`: the binary, started as an operator
//! would, serves the running server's counters to a scraper.

mod common;

use std::io::BufReader;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{exchange, io_uring_available, line_after, Running};

#[test]
fn metrics_addr_serves_the_running_servers_counters() {
    if !io_uring_available() {
        return;
    }
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

    let hello = exchange(
        app,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(hello.ends_with("Hello, World!"), "{hello}");

    let scrape = exchange(metrics, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
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

    let elsewhere = exchange(metrics, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
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
