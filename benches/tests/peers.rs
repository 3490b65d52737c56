//! The peers serve the same app byte for byte where it matters: status line,
//! Content-Type, Content-Length and body. hyper is built with this crate and
//! always runs; nginx and Go run where they are installed and say so when
//! they are skipped.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringwall_bench::client::{read_response, Response};
use ringwall_bench::peers::{procfs, Peer, PeerConfig, ServerKind, StartError};

/// Sends one request with `Connection: close` and reads its answer, which
/// must be well-formed and well-framed (chunked bodies come decoded).
fn exchange(addr: SocketAddr, request: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).expect("send");
    read_response(&mut s, false).expect("a well-formed answer")
}

/// `HTTP/1.1 200 OK`, from the parts the parser splits it into.
fn status_line(r: &Response) -> String {
    format!("{} {} {}", r.version, r.status, r.reason)
}

fn check_app(peer: &Peer) {
    let addr = peer.addr();
    let hello = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&hello), "HTTP/1.1 200 OK", "{}", peer.kind());
    assert_eq!(
        hello.header_str("content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(hello.header_str("content-length").as_deref(), Some("13"));
    assert!(hello.header("date").is_some(), "every response has a Date");
    assert_eq!(hello.body, b"Hello, World!");

    let bytes = exchange(
        addr,
        "GET /bytes/10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_line(&bytes), "HTTP/1.1 200 OK", "{}", peer.kind());
    assert_eq!(bytes.header_str("content-length").as_deref(), Some("10"));
    assert_eq!(bytes.body, b"xxxxxxxxxx");

    if peer.echoes() {
        let echo = exchange(
            addr,
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello bytes",
        );
        assert_eq!(status_line(&echo), "HTTP/1.1 200 OK", "{}", peer.kind());
        // nginx's echo module answers chunked; the others with a length.
        if echo.header("transfer-encoding").is_none() {
            assert_eq!(echo.header_str("content-length").as_deref(), Some("11"));
        }
        assert_eq!(echo.body, b"hello bytes");
    } else {
        eprintln!("{}: no echo module, echo not checked", peer.kind());
    }
}

fn start_or_skip(kind: ServerKind) -> Option<Peer> {
    match Peer::start(kind, &PeerConfig::default()) {
        Ok(peer) => Some(peer),
        Err(StartError::Missing { reason }) => {
            eprintln!("{kind}: skipped: {reason}");
            None
        }
        Err(e) => panic!("{kind}: {e}"),
    }
}

fn check_and_stop(peer: Peer) {
    check_app(&peer);
    let pid = peer.pid();
    assert!(peer.usage().expect("usage").rss_bytes > 0);
    peer.stop();
    assert!(
        procfs::read_stat(pid).is_err(),
        "pid {pid} is stopped and reaped"
    );
}

#[test]
fn hyper_peer_serves_hello_bytes_and_echo() {
    std::env::set_var("HYPER_PEER_BIN", env!("CARGO_BIN_EXE_hyper-peer"));
    let peer = Peer::start(ServerKind::Hyper, &PeerConfig::default()).expect("hyper-peer starts");
    check_and_stop(peer);
}

#[test]
fn nginx_peer_serves_the_same_app_where_installed() {
    if let Some(peer) = start_or_skip(ServerKind::Nginx) {
        check_and_stop(peer);
    }
}

#[test]
fn go_peer_serves_the_same_app_where_installed() {
    if let Some(peer) = start_or_skip(ServerKind::Go) {
        check_and_stop(peer);
    }
}

#[test]
fn ringwall_serves_the_same_app_where_built() {
    // `cargo build -p ringwall` (same profile and target dir) or $RINGWALL_BIN.
    if let Some(peer) = start_or_skip(ServerKind::Ringwall) {
        check_and_stop(peer);
    }
}
