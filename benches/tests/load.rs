//! The load client against deliberately broken servers: a wrong response is
//! an error, never a request, and a server's close never stops the load.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use ringwall_bench::{run_load, LoadConfig, LoadMode, LoadReport, RequestSpec};

const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

fn load(target: SocketAddr, mode: LoadMode) -> LoadReport {
    run_load(&LoadConfig {
        target,
        mode,
        connections: 4,
        threads: 2,
        duration: Duration::from_millis(300),
        max_requests: None,
        pace: None,
        request: RequestSpec::Hello,
    })
    .unwrap()
}

fn serve(response: &'static [u8], per_conn: Option<usize>) -> common::TestServer {
    common::spawn(
        Duration::from_secs(3),
        common::respond_with(response, per_conn),
    )
}

#[test]
fn correct_responses_are_counted_without_errors() {
    let server = serve(HELLO, None);
    let r = load(server.addr, LoadMode::KeepAlive);
    assert!(r.requests > 50, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert_eq!(r.latency.count, r.requests);
}

#[test]
fn status_500_is_an_error_not_a_request() {
    let server = serve(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 13\r\n\r\nHello, World!",
        None,
    );
    let r = load(server.addr, LoadMode::KeepAlive);
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.bad_status > 0, "{r:?}");
}

#[test]
fn short_body_is_an_error_not_a_request() {
    let server = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello", None);
    let r = load(server.addr, LoadMode::KeepAlive);
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.short_body > 0, "{r:?}");
}

#[test]
fn lying_content_length_is_an_error_not_a_request() {
    // Announces 20 bytes, sends 13, keeps the connection: the client must not
    // wait for the rest nor count it.
    let server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nHello, World!",
        None,
    );
    let r = load(server.addr, LoadMode::KeepAlive);
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.wrong_body > 0, "{r:?}");
}

#[test]
fn wrong_body_bytes_are_an_error_not_a_request() {
    let server = serve(
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, Wrold!",
        None,
    );
    let r = load(server.addr, LoadMode::KeepAlive);
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.wrong_body > 0, "{r:?}");
}

#[test]
fn reversed_bytes_are_never_requests() {
    // Seed 000: body before head. Parsed as a response it is garbage.
    let server = serve(
        b"Hello, World!HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n",
        None,
    );
    let r = load(server.addr, LoadMode::Pipelined { depth: 4 });
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.bad_status > 0, "{r:?}");
}

#[test]
fn a_server_closing_after_each_response_still_gets_load() {
    // Seed 002: no `Connection: close`, just a close after one response.
    let server = serve(HELLO, Some(1));
    let r = load(server.addr, LoadMode::KeepAlive);
    assert!(
        r.requests > 20,
        "reconnects must keep the load going: {r:?}"
    );
    assert!(r.connects >= r.requests, "{r:?}");
    assert_eq!(
        r.errors.total(),
        r.errors.eof_before_response + r.errors.reset,
        "only the unanswered second request of each connection fails: {r:?}"
    );
}

#[test]
fn announced_close_after_each_response_is_not_an_error() {
    let server = serve(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!",
        Some(1),
    );
    let r = load(server.addr, LoadMode::KeepAlive);
    assert!(r.requests > 20, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
}

#[test]
fn churn_awaits_the_close_and_reconnects() {
    let server = serve(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!",
        Some(1),
    );
    let r = load(server.addr, LoadMode::Churn);
    assert!(r.requests > 20, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    // One connection per request (the last ones may still be open at the end).
    assert!(
        r.connects >= r.requests && r.connects <= r.requests + 4,
        "{r:?}"
    );
}

#[test]
fn pipelined_batches_count_every_response() {
    let server = serve(HELLO, None);
    let r = load(server.addr, LoadMode::Pipelined { depth: 8 });
    assert!(r.requests > 100, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
}

#[test]
fn max_requests_bounds_what_is_sent() {
    let server = serve(HELLO, None);
    let r = run_load(&LoadConfig {
        target: server.addr,
        mode: LoadMode::Pipelined { depth: 16 },
        connections: 3,
        threads: 1,
        duration: Duration::from_secs(3),
        max_requests: Some(100),
        pace: None,
        request: RequestSpec::Hello,
    })
    .unwrap();
    assert_eq!(r.requests, 100, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(2), "{r:?}");
}

#[test]
fn a_dead_server_is_connect_errors_with_backoff() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = load(addr, LoadMode::KeepAlive);
    assert_eq!(r.requests, 0);
    assert!(r.errors.connect > 0, "{r:?}");
    // 4 connections backing off from 1 ms to 100 ms over 300 ms: a few dozen
    // attempts, not the tens of thousands of a hot loop.
    assert!(r.errors.connect < 200, "{r:?}");
}

fn paced(target: SocketAddr, mode: LoadMode) -> LoadReport {
    run_load(&LoadConfig {
        target,
        mode,
        connections: 2,
        threads: 1,
        duration: Duration::from_millis(600),
        max_requests: None,
        pace: Some(Duration::from_millis(100)),
        request: RequestSpec::Hello,
    })
    .unwrap()
}

#[test]
fn paced_keep_alive_sends_one_request_per_pace() {
    let server = serve(HELLO, None);
    let r = paced(server.addr, LoadMode::KeepAlive);
    // 2 connections, one request per 100 ms for 600 ms: about 12, not the
    // thousands an unpaced loop sends.
    assert!((8..=14).contains(&r.requests), "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert_eq!(r.connects, 2, "{r:?}");
}

#[test]
fn paced_churn_opens_one_connection_per_pace() {
    let server = serve(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!",
        Some(1),
    );
    let r = paced(server.addr, LoadMode::Churn);
    assert!((8..=14).contains(&r.requests), "{r:?}");
    assert!((8..=14).contains(&r.connects), "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
}
