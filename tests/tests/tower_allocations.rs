//! What `ringwall::tower` costs per request in heap allocations, counted by
//! a global allocator over a keep-alive connection whose client allocates
//! nothing: the engine alone, the adapter with a service that allocates
//! nothing itself, and an axum `Router` (plain and with `ConnectInfo`), for
//! a curl-like and a browser-like request. Prints the figures; the
//! adapter's own count is pinned so that a change that adds one per
//! request fails.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http;
use axum::routing::get;
use axum::Router;
use ringwall::tower::{Body, MakeServiceHandler, ServiceHandler};
use ringwall::{Handler, Request, Response};
use ringwall_tests::{builder, heavy_test_lock, start_or_skip};

/// Counts every allocation and reallocation in the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a relaxed atomic, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// A request as curl sends one: three standard headers.
const CURL: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
/// A request as a browser sends one: twelve headers, four of them names
/// the http crate has no constant for.
const BROWSER: &[u8] = b"GET /?page=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
    Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
    Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
    Connection: keep-alive\r\nCookie: session=0123456789abcdef\r\n\
    Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n\
    Sec-Fetch-Site: none\r\nSec-Fetch-User: ?1\r\n\r\n";
const WARM_UP: u64 = 200;
const MEASURED: u64 = 2000;

/// Allocations per request over `MEASURED` keep-alive requests, after a
/// warm-up (pools, the runtime's threads, the allocator's caches).
fn allocations_per_request(addr: SocketAddr, request: &[u8]) -> f64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Every response has the same length (the Date is fixed-width): the
    // first one's, found before counting starts.
    let mut buf = vec![0u8; 4096];
    stream.write_all(request).unwrap();
    let mut len = 0;
    let expected = loop {
        len += stream.read(&mut buf[len..]).unwrap();
        let text = &buf[..len];
        let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&text[..end])
            .unwrap()
            .to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let body: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a Content-Length")
            .parse()
            .unwrap();
        if len >= end + 4 + body {
            assert_eq!(len, end + 4 + body, "one response, nothing after it");
            break len;
        }
    };
    let mut one = |stream: &mut TcpStream| {
        stream.write_all(request).unwrap();
        stream.read_exact(&mut buf[..expected]).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200"));
    };
    for _ in 0..WARM_UP {
        one(&mut stream);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..MEASURED {
        one(&mut stream);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before) as f64 / MEASURED as f64
}

/// Allocations per request of a curl-like request, after printing them
/// and a browser-like request's.
fn measure<H: Handler>(what: &str, handler: H) -> Option<f64> {
    let server = start_or_skip(builder().workers(1), handler)?;
    let curl = allocations_per_request(server.local_addr(), CURL);
    let browser = allocations_per_request(server.local_addr(), BROWSER);
    eprintln!(
        "{what}: {curl:.2} allocations per curl-like request, {browser:.2} per browser-like one"
    );
    Some(curl)
}

/// A tower service that allocates nothing of its own: a ready future and a
/// static body.
#[derive(Clone)]
struct Hello;

impl tower_service::Service<http::Request<Body>> for Hello {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<http::Response<Body>, std::convert::Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
        let mut response = http::Response::new(Body::from(Bytes::from_static(b"Hello, World!")));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        std::future::ready(Ok(response))
    }
}

#[test]
fn the_adapter_allocates_little_per_request() {
    let _heavy = heavy_test_lock();
    let engine = measure(
        "engine, plain handler",
        |_: &Request<'_>, response: &mut Response<'_>| {
            let _ = response.send(200, &[("Content-Type", b"text/plain")], b"Hello, World!");
        },
    );
    let Some(engine) = engine else {
        return;
    };
    let Some(adapter) = measure(
        "ServiceHandler, a service that allocates nothing",
        ServiceHandler::new(Hello, RUNTIME.handle().clone()),
    ) else {
        return;
    };
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let Some(_axum) = measure(
        "ServiceHandler, axum Router",
        ServiceHandler::new(app.clone(), RUNTIME.handle().clone()),
    ) else {
        return;
    };
    let Some(_connect_info) = measure(
        "MakeServiceHandler, axum Router with ConnectInfo<SocketAddr>",
        MakeServiceHandler::new(
            app.into_make_service_with_connect_info::<SocketAddr>(),
            RUNTIME.handle().clone(),
        ),
    ) else {
        return;
    };
    assert!(engine < 0.1, "the engine allocates per request: {engine}");
    // Measured 11: the target and header values copied into one buffer
    // (2: the buffer, and the shared count its first slice makes), the
    // header map (2: indices and entries), the boxed call future (1) and
    // response body (1), the `PeerAddr` extension (3: the extension map,
    // its table, the boxed value) and the service's own response header map
    // (2). Before the buffer was shared it was 12, with one more per header.
    // Half an allocation of headroom for the engine's rare ones (a pool
    // growing); one more per request fails.
    assert!(
        adapter < 11.5,
        "the adapter allocates more per request than it did: {adapter}"
    );
}
