//! The peers serve the same app byte for byte where it matters: status line,
//! Content-Type, Content-Length and body. hyper is built with this crate and
//! always runs; nginx and Go run where they are installed and say so when
//! they are skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringwall_bench::peers::{procfs, Peer, PeerConfig, ServerKind, StartError};

struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole answer.
fn exchange(addr: SocketAddr, request: &str) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_string();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header has a colon");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Answer {
        status_line,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Decodes a chunked body (RFC 9112 section 7.1), trailers ignored.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("ASCII size");
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk ends with CRLF");
        raw = &raw[size + 2..];
    }
}

fn check_app(peer: &Peer) {
    let addr = peer.addr();
    let hello = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(hello.status_line, "HTTP/1.1 200 OK", "{}", peer.kind());
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    assert_eq!(hello.header("content-length"), Some("13"));
    assert!(hello.header("date").is_some(), "every response has a Date");
    assert_eq!(hello.body, b"Hello, World!");

    let bytes = exchange(
        addr,
        "GET /bytes/10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(bytes.status_line, "HTTP/1.1 200 OK", "{}", peer.kind());
    assert_eq!(bytes.header("content-length"), Some("10"));
    assert_eq!(bytes.body, b"xxxxxxxxxx");

    if peer.echoes() {
        let echo = exchange(
            addr,
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello bytes",
        );
        assert_eq!(echo.status_line, "HTTP/1.1 200 OK", "{}", peer.kind());
        // nginx's echo module answers chunked; the others with a length.
        let body = if echo.header("transfer-encoding") == Some("chunked") {
            dechunk(&echo.body)
        } else {
            assert_eq!(echo.header("content-length"), Some("11"));
            echo.body.clone()
        };
        assert_eq!(body, b"hello bytes");
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
