//! The axum app of `engine/examples/axum.rs`, served through
//! `ringwall::tower` over loopback: every route, handlers that wait without
//! holding the workers, answers in request order, bounded memory both ways,
//! the deadlines in front of the app, panics, and cancellation on
//! disconnect.

#[path = "../../engine/examples/axum_app/router.rs"]
mod router;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use ringwall::tower::ServiceHandler;
use ringwall::{ServerBuilder, ServerHandle};
use ringwall_tests::{
    builder, connect_with_rcvbuf, heavy_test_lock, set_linger_zero, slowloris, slowloris_summary,
    start_or_skip, wait_until, Client,
};

/// One runtime for the whole binary, as an application has one.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

fn serve(builder: ServerBuilder, app: Router) -> Option<ServerHandle> {
    start_or_skip(builder, ServiceHandler::new(app, RUNTIME.handle().clone()))
}

fn request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn header<'r>(response: &'r ringwall_tests::Response, name: &str) -> Option<&'r [u8]> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

#[test]
fn every_route_answers_as_the_router_says() {
    // Serialised with the others: the memory test reads this process's RSS.
    let _heavy = heavy_test_lock();
    let Some(server) = serve(builder(), router::router()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());

    let hello = client.request(&request("/"));
    assert_eq!(
        (hello.status, &hello.body[..]),
        (200, &b"Hello, World!"[..])
    );
    assert_eq!(header(&hello, "content-type"), Some(&b"text/plain"[..]));
    assert_eq!(header(&hello, "content-length"), Some(&b"13"[..]));

    let json = client.request(&request("/json"));
    assert_eq!(json.status, 200);
    assert_eq!(json.body, br#"{"message":"Hello, World!"}"#);
    assert_eq!(
        header(&json, "content-type"),
        Some(&b"application/json"[..])
    );

    let slept = client.request(&request("/sleep/20"));
    assert_eq!((slept.status, &slept.body[..]), (200, &b"slept"[..]));

    let streamed = client.request(&request("/stream/300"));
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.body.len(), 300 * router::STREAM_CHUNK);
    assert!(streamed.body.iter().all(|&b| b == b'x'));

    let echoed =
        client.request(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello there");
    assert_eq!(
        (echoed.status, &echoed.body[..]),
        (200, &b"hello there"[..])
    );
    let chunked = client.request(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!((chunked.status, &chunked.body[..]), (200, &b"abcde"[..]));

    let missing = client.request(&request("/nowhere"));
    assert_eq!(missing.status, 404);
    let head = {
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
        client.read_head_response()
    };
    assert_eq!((head.status, head.body.len()), (200, 0));
    // All of it on one keep-alive connection.
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn a_thousand_sleeping_handlers_do_not_hold_two_workers() {
    let _heavy = heavy_test_lock();
    let Some(server) = serve(builder().workers(2), router::router()) else {
        return;
    };
    let addr = server.local_addr();
    let mut clients: Vec<Client> = (0..1000).map(|_| Client::connect(addr)).collect();
    let request = request("/sleep/100");
    let started = Instant::now();
    for client in &mut clients {
        client.send(&request);
    }
    for client in &mut clients {
        let response = client.read_response();
        assert_eq!((response.status, &response.body[..]), (200, &b"slept"[..]));
    }
    // Inline on two workers, 1,000 x 100 ms would take 50 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "1,000 sleeps took {took:?}");
}

#[test]
fn pipelined_answers_finishing_out_of_order_leave_in_request_order() {
    // Serialised with the others: the memory test reads this process's RSS.
    let _heavy = heavy_test_lock();
    let Some(server) = serve(builder(), router::router()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut pipeline = request("/sleep/300");
    pipeline.extend(request("/json"));
    pipeline.extend(request("/sleep/1"));
    pipeline.extend(request("/"));
    client.send(&pipeline);
    let expected: [&[u8]; 4] = [
        b"slept",
        br#"{"message":"Hello, World!"}"#,
        b"slept",
        b"Hello, World!",
    ];
    for body in expected {
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, body);
    }
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

/// Uploads `len` bytes to `/echo` while reading the echo as it comes;
/// returns the peak RSS seen meanwhile.
fn echo_through(addr: SocketAddr, len: usize) -> usize {
    let mut upload = TcpStream::connect(addr).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut download = upload.try_clone().unwrap();
    let head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n");
    upload.write_all(head.as_bytes()).unwrap();
    let writer = thread::spawn(move || {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            upload.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        upload
    });
    // Reads the chunked echo, checking each byte against the pattern.
    let mut peak = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut raw = Vec::new();
    let mut head_done = false;
    let mut body_seen = 0usize;
    let mut reads = 0u64;
    while body_seen < len {
        let n = download.read(&mut buf).expect("the echo keeps coming");
        assert!(n > 0, "closed after {body_seen} of {len} bytes echoed");
        raw.extend_from_slice(&buf[..n]);
        if !head_done {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            assert!(raw.starts_with(b"HTTP/1.1 200"), "{:?}", &raw[..end]);
            raw.drain(..end + 4);
            head_done = true;
        }
        // Chunk framing: size line, data, CRLF.
        while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16)
                .expect("a chunk size");
            if raw.len() < line_end + 2 + size + 2 {
                break;
            }
            for (i, &b) in raw[line_end + 2..line_end + 2 + size].iter().enumerate() {
                assert_eq!(b, ((body_seen + i) % (64 * 1024) % 251) as u8, "echo byte");
            }
            body_seen += size;
            raw.drain(..line_end + 2 + size + 2);
        }
        reads += 1;
        if reads.is_multiple_of(64) {
            peak = peak.max(resident_bytes());
        }
    }
    writer.join().unwrap();
    peak.max(resident_bytes())
}

#[test]
fn a_hundred_mib_echo_keeps_memory_bounded() {
    let _heavy = heavy_test_lock();
    let Some(server) = serve(builder().workers(2), router::router()) else {
        return;
    };
    let addr = server.local_addr();
    // Warm up: pools, the runtime's threads and the allocator's arenas.
    echo_through(addr, 8 << 20);
    let before = resident_bytes();
    let peak = echo_through(addr, 100 << 20);
    let growth = peak.saturating_sub(before);
    eprintln!("RSS before {before} peak {peak} growth {growth}");
    // Unbounded, the server would hold up to the whole 100 MiB. Bounded,
    // about 1 MiB is live (256 KiB of unread body, 256 KiB of response
    // backlog, the send queue, this client's buffers); the rest of what
    // the peak shows is malloc's per-thread arenas: measured 4-11 MiB of
    // growth, the same for 20, 100 and 400 MiB uploads.
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes");
}

#[test]
fn a_stream_to_a_client_that_never_reads_is_closed_at_the_write_deadline() {
    // Serialised with the others: the memory test reads this process's RSS.
    let _heavy = heavy_test_lock();
    let write = Duration::from_millis(500);
    let Some(server) = serve(builder().write_timeout(write), router::router()) else {
        return;
    };
    let stream = connect_with_rcvbuf(server.local_addr(), 4096).unwrap();
    let mut client = Client::from_stream(stream);
    client.send(&request("/stream/100000"));
    // Never read: the socket buffers fill, sends stall, the write deadline
    // passes and the connection is reset.
    let closed = wait_until(Duration::from_secs(10), || {
        let closes = server.stats().closes;
        closes.write_timeout + closes.write_timeout_reset == 1
    });
    assert!(closed, "{}", server.stats());
    assert!(
        server.stats().bytes_out < 10 << 20,
        "the stream ran ahead of the socket: {}",
        server.stats()
    );
    assert!(wait_until(Duration::from_secs(2), || server
        .stats()
        .open_connections
        == 0));
}

async fn panics_at_once() -> &'static str {
    panic!("a handler panic, inline")
}

async fn panics_after_a_sleep() -> &'static str {
    tokio::time::sleep(Duration::from_millis(5)).await;
    panic!("a handler panic, on the runtime")
}

#[test]
fn a_handler_panic_answers_500() {
    // Serialised with the others: the memory test reads this process's RSS.
    let _heavy = heavy_test_lock();
    let app = router::router()
        .route("/panic", get(panics_at_once))
        .route("/panic-later", get(panics_after_a_sleep));
    let Some(server) = serve(builder(), app) else {
        return;
    };
    for path in ["/panic", "/panic-later"] {
        let mut client = Client::connect(server.local_addr());
        let response = client.request(&request(path));
        assert_eq!(response.status, 500, "{path}");
    }
    // The server goes on serving.
    let mut client = Client::connect(server.local_addr());
    assert_eq!(client.request(&request("/")).status, 200);
}

/// Handler futures alive now: counts up when one starts, down when it is
/// dropped, finished or cancelled.
static LIVE_HANDLERS: AtomicUsize = AtomicUsize::new(0);

struct Live;

impl Live {
    fn new() -> Live {
        LIVE_HANDLERS.fetch_add(1, Ordering::SeqCst);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE_HANDLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Never ready: only cancellation ends it.
struct Forever;

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn ten_thousand_disconnects_while_pending_cancel_every_handler() {
    let _heavy = heavy_test_lock();
    let app = router::router().route(
        "/forever",
        get(|| async {
            let _live = Live::new();
            Forever.await;
            "never"
        }),
    );
    let Some(server) = serve(builder().workers(2), app) else {
        return;
    };
    let addr = server.local_addr();
    let request = request("/forever");
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0..100 {
        let batch: Vec<TcpStream> = (0..100)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(&request).unwrap();
                stream
            })
            .collect();
        // Every handler of the batch has started before its client leaves.
        let started = wait_until(Duration::from_secs(10), || {
            LIVE_HANDLERS.load(Ordering::SeqCst) >= 100
        });
        assert!(started, "round {round}: {}", server.stats());
        for stream in batch {
            set_linger_zero(&stream);
        }
        let cancelled = wait_until(Duration::from_secs(10), || {
            LIVE_HANDLERS.load(Ordering::SeqCst) == 0
        });
        assert!(
            cancelled,
            "round {round}: {} handlers still live after their clients left",
            LIVE_HANDLERS.load(Ordering::SeqCst)
        );
        assert!(
            Instant::now() < deadline,
            "10,000 disconnects took over 60 s"
        );
    }
    assert!(
        wait_until(Duration::from_secs(5), || server.stats().open_connections
            == 0),
        "{}",
        server.stats()
    );
    let stats = server.stats();
    assert_eq!(stats.requests, 10_000, "{stats}");
    assert_eq!(stats.closes.peer_reset, 10_000, "{stats}");
}

#[test]
fn slowloris_against_the_axum_app_is_closed_at_the_header_deadline() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_secs(1);
    let Some(server) = serve(builder().header_timeout(header), router::router()) else {
        return;
    };
    let report = slowloris(server.local_addr(), 300, Duration::from_millis(100), header);
    let summary = slowloris_summary(&report);
    eprintln!("slowloris: {summary}");
    assert_eq!(report.early_closes, 0, "{summary}");
    assert_eq!(report.hangs, 0, "{summary}");
    assert_eq!(report.closed, 300, "{summary}");
    assert_eq!(server.stats().closes.header_timeout, 300);
}
