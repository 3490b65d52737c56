//! `ringwall::tower::serve` awaited on the caller's tokio runtime, as an
//! axum app awaits `axum::serve`: it answers, a graceful shutdown signal
//! lets an in-flight request finish before the future resolves, the
//! builder's deadlines apply, `ConnectInfo<SocketAddr>` and the `PeerAddr`
//! extension carry the client's address (the PROXY protocol's when there
//! is one), and an answer ready at once wakes no runtime thread.

#[path = "../../engine/examples/axum_app/router.rs"]
mod router;

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http;
use axum::routing::get;
use axum::Router;
use ringwall::tower::{Body, Error, IntoHandler, PeerAddr, ServiceHandler};
use ringwall::{ServerBuilder, StartError, Stats};
use ringwall_tests::{
    heavy_test_lock, skip_without_io_uring, start_or_skip, test_backend, wait_for_close, Client,
};
use tokio::sync::{oneshot, Notify};

/// A loopback listener bound here, so the test knows its port before the
/// server starts, handed to the server the way socket activation hands
/// one over.
fn listener() -> (SocketAddr, OwnedFd) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    (listener.local_addr().unwrap(), OwnedFd::from(listener))
}

/// The suite's backend, two workers, timeouts long enough that only the
/// ones a test sets fire; no address of its own.
fn builder(listener: OwnedFd) -> ServerBuilder {
    ringwall::Server::builder()
        .backend(test_backend())
        .listen_fd(listener)
        .workers(2)
        .header_timeout(Duration::from_secs(10))
        .body_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_secs(10))
        .shutdown_timeout(Duration::from_secs(5))
}

/// Serves `app` until `client` (run on a thread of its own, given the
/// address) returns, then stops it with a graceful shutdown; returns the
/// final counters and what the client returned, or `None` when the kernel
/// has no io_uring for the suite (after saying so).
async fn serve_until<A, Marker, T>(
    builder: impl FnOnce(OwnedFd) -> ServerBuilder,
    app: A,
    client: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> Option<(Stats, T)>
where
    A: IntoHandler<Marker>,
    T: Send + 'static,
{
    let (addr, fd) = listener();
    let (done, signal) = oneshot::channel();
    let client = thread::spawn(move || {
        let outcome = client(addr);
        let _ = done.send(());
        outcome
    });
    let served = ringwall::tower::serve(builder(fd), app)
        .with_graceful_shutdown(async {
            let _ = signal.await;
        })
        .await;
    let stats = match served {
        Ok(stats) => stats,
        Err(Error::Start(StartError::IoUring(cause))) => {
            skip_without_io_uring(&cause);
            return None;
        }
        Err(e) => panic!("serve failed: {e}"),
    };
    Some((stats, client.join().expect("the client thread")))
}

/// Runs `main` as `#[tokio::main]` does: `block_on` on a new
/// multi-thread runtime.
fn main<F: Future>(main: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(main)
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn serves_the_router_on(runtime: tokio::runtime::Runtime) {
    // What `#[tokio::main]` expands to: the runtime's `block_on` of main.
    let outcome = runtime.block_on(serve_until(builder, router::router(), |addr| {
        let mut client = Client::connect(addr);
        let hello = client.request(&get_request("/"));
        let json = client.request(&get_request("/json"));
        // Waits on a tokio timer: the runtime's time driver runs.
        let slept = client.request(&get_request("/sleep/20"));
        (addr, hello, json, slept)
    }));
    let Some((stats, (addr, hello, json, slept))) = outcome else {
        return;
    };
    assert_eq!(
        (hello.status, &hello.body[..]),
        (200, &b"Hello, World!"[..])
    );
    assert_eq!(json.body, br#"{"message":"Hello, World!"}"#);
    assert_eq!((slept.status, &slept.body[..]), (200, &b"slept"[..]));
    assert_eq!(stats.requests, 3, "{stats}");
    assert_eq!(stats.accepted, 1, "{stats}");
    // Stopped means stopped: the listening socket is closed.
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after the future resolved"
    );
}

#[test]
fn serve_awaited_on_a_multi_thread_runtime_answers_until_the_signal() {
    let _heavy = heavy_test_lock();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    serves_the_router_on(runtime);
}

#[test]
fn serve_awaited_on_a_current_thread_runtime_answers_until_the_signal() {
    let _heavy = heavy_test_lock();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    serves_the_router_on(runtime);
}

#[test]
fn graceful_shutdown_lets_an_in_flight_slow_request_finish_then_resolves() {
    static FINISHED: AtomicBool = AtomicBool::new(false);
    let _heavy = heavy_test_lock();
    main(async move {
        let started = Arc::new(Notify::new());
        let app = {
            let started = Arc::clone(&started);
            Router::new().route(
                "/slow",
                get(move || async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    FINISHED.store(true, Ordering::SeqCst);
                    "finished"
                }),
            )
        };
        let (addr, fd) = listener();
        let client = thread::spawn(move || {
            let mut client = Client::connect(addr);
            client.request(&get_request("/slow"))
        });
        // The signal: the slow handler has started, and sleeps.
        let served = ringwall::tower::serve(builder(fd), app)
            .with_graceful_shutdown(async move { started.notified().await })
            .await;
        let stats = match served {
            Ok(stats) => stats,
            Err(Error::Start(StartError::IoUring(cause))) => {
                skip_without_io_uring(&cause);
                return;
            }
            Err(e) => panic!("serve failed: {e}"),
        };
        assert!(
            FINISHED.load(Ordering::SeqCst),
            "the future resolved before the in-flight handler finished"
        );
        let response = client.join().expect("the client thread");
        assert_eq!(
            (response.status, &response.body[..]),
            (200, &b"finished"[..])
        );
        assert_eq!(stats.requests, 1, "{stats}");
    });
}

#[test]
fn the_builders_deadlines_apply() {
    let _heavy = heavy_test_lock();
    main(async move {
        let header = Duration::from_millis(300);
        let outcome = serve_until(
            |fd| builder(fd).header_timeout(header),
            router::router(),
            move |addr| {
                let mut stream = TcpStream::connect(addr).unwrap();
                std::io::Write::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost").unwrap();
                wait_for_close(&mut stream, Duration::from_secs(5))
            },
        )
        .await;
        let Some((stats, closed)) = outcome else {
            return;
        };
        closed.expect("the half-sent head is closed");
        assert_eq!(stats.closes.header_timeout, 1, "{stats}");
    });
}

async fn client_addr(ConnectInfo(addr): ConnectInfo<SocketAddr>) -> String {
    addr.to_string()
}

/// Sends `head` (a PROXY header, or nothing) and a request on one
/// connection; returns the client socket's own address and the body.
fn ask_for_address(addr: SocketAddr, head: &[u8]) -> (SocketAddr, String) {
    let mut client = Client::connect(addr);
    let local = client.stream.local_addr().unwrap();
    let mut request = head.to_vec();
    request.extend(get_request("/"));
    let response = client.request(&request);
    assert_eq!(response.status, 200, "{response:?}");
    (local, String::from_utf8(response.body).unwrap())
}

#[test]
fn connect_info_is_the_clients_address() {
    let _heavy = heavy_test_lock();
    main(async move {
        let app = Router::new()
            .route("/", get(client_addr))
            .into_make_service_with_connect_info::<SocketAddr>();
        let outcome = serve_until(builder, app, |addr| ask_for_address(addr, b"")).await;
        let Some((_, (client, seen))) = outcome else {
            return;
        };
        assert_eq!(seen, client.to_string());
    });
}

#[test]
fn connect_info_behind_a_proxy_is_the_address_the_proxy_header_carries() {
    let _heavy = heavy_test_lock();
    main(async move {
        let app = Router::new()
            .route("/", get(client_addr))
            .into_make_service_with_connect_info::<SocketAddr>();
        let outcome = serve_until(
            |fd| builder(fd).proxy_protocol(true),
            app,
            |addr| ask_for_address(addr, b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n"),
        )
        .await;
        let Some((_, (_, seen))) = outcome else {
            return;
        };
        assert_eq!(seen, "192.0.2.7:4321");
    });
}

/// A tower service with no framework: answers with its `PeerAddr`.
#[derive(Clone)]
struct EchoPeer;

impl tower_service::Service<http::Request<Body>> for EchoPeer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let peer = match request.extensions().get::<PeerAddr>() {
            Some(PeerAddr(addr)) => addr.to_string(),
            None => "none".to_owned(),
        };
        std::future::ready(Ok(http::Response::new(Body::from(Bytes::from(peer)))))
    }
}

#[test]
fn a_plain_tower_service_gets_the_peer_addr_extension() {
    let _heavy = heavy_test_lock();
    main(async move {
        let outcome = serve_until(builder, EchoPeer, |addr| ask_for_address(addr, b"")).await;
        let Some((_, (client, seen))) = outcome else {
            return;
        };
        assert_eq!(seen, client.to_string());
        let outcome = serve_until(
            |fd| builder(fd).proxy_protocol(true),
            EchoPeer,
            |addr| ask_for_address(addr, b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n"),
        )
        .await;
        let Some((_, (_, seen))) = outcome else {
            return;
        };
        assert_eq!(seen, "192.0.2.7:4321");
    });
}

#[test]
fn a_failed_start_resolves_with_the_error() {
    let _heavy = heavy_test_lock();
    main(async move {
        // A socket that is not listening: refused before any worker starts.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let served = ringwall::tower::serve(builder(OwnedFd::from(socket)), router::router()).await;
        assert!(
            matches!(served, Err(Error::Start(StartError::Inherited { .. }))),
            "{served:?}"
        );
    });
}

/// A runtime that counts its threads' unparks: each wake of a parked
/// runtime thread.
fn counting_runtime(unparks: &Arc<AtomicUsize>) -> tokio::runtime::Runtime {
    let unparks = Arc::clone(unparks);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_unpark(move || {
            unparks.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap()
}

/// Unparks of the runtime's threads while `requests` requests for `path`
/// are answered one after another on one connection.
fn unparks_during(
    runtime_unparks: &AtomicUsize,
    addr: SocketAddr,
    path: &str,
    requests: usize,
) -> usize {
    let mut client = Client::connect(addr);
    // Settles: the runtime's threads park after starting.
    assert_eq!(client.request(&get_request(path)).status, 200);
    thread::sleep(Duration::from_millis(100));
    let before = runtime_unparks.load(Ordering::SeqCst);
    for _ in 0..requests {
        assert_eq!(client.request(&get_request(path)).status, 200);
    }
    runtime_unparks.load(Ordering::SeqCst) - before
}

#[test]
fn an_answer_ready_at_once_wakes_no_runtime_thread() {
    let _heavy = heavy_test_lock();
    let unparks = Arc::new(AtomicUsize::new(0));
    let runtime = counting_runtime(&unparks);
    let handler = ServiceHandler::new(router::router(), runtime.handle().clone());
    let Some(server) = start_or_skip(ringwall_tests::builder(), handler) else {
        return;
    };
    let inline = unparks_during(&unparks, server.local_addr(), "/", 500);
    // The control: a handler that waits on a timer runs as a task, and its
    // thread is woken for it, so the count does see wakes.
    let waiting = unparks_during(&unparks, server.local_addr(), "/sleep/1", 100);
    eprintln!("runtime unparks: {inline} over 500 inline answers, {waiting} over 100 that waited");
    assert!(waiting >= 50, "the counter misses wakes: {waiting}");
    assert!(
        inline < 10,
        "{inline} runtime wakes over 500 inline answers"
    );
}

/// `serve`'s future is `Send`: it can be spawned.
#[allow(dead_code)]
fn serve_is_send() {
    fn is_send<F: Future + Send>(_: F) {}
    let (_, fd) = listener();
    is_send(std::future::IntoFuture::into_future(
        ringwall::tower::serve(builder(fd), router::router())
            .with_graceful_shutdown(std::future::pending()),
    ));
}

/// A tower service that answers with its request's fields, one
/// `name: value` line each, in order.
#[derive(Clone)]
struct EchoFields;

impl tower_service::Service<http::Request<Body>> for EchoFields {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let mut lines = format!("{}\n", request.uri());
        for (name, value) in request.headers() {
            lines.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
        }
        std::future::ready(Ok(http::Response::new(Body::from(Bytes::from(lines)))))
    }
}

#[test]
fn every_field_arrives_in_order_past_the_adapters_stack_buffer() {
    let _heavy = heavy_test_lock();
    main(async move {
        // With Host: 1, 4, 32 (the stack buffer), 33 and 91 fields.
        for fields in [0, 3, 31, 32, 90] {
            let outcome = serve_until(builder, EchoFields, move |addr| {
                let mut request = "GET /p?q=1 HTTP/1.1\r\nHost: t\r\n".to_owned();
                for i in 0..fields {
                    request.push_str(&format!("X-Field-{i}: value {i}\r\n"));
                }
                request.push_str("\r\n");
                Client::connect(addr).request(request.as_bytes())
            })
            .await;
            let Some((_, response)) = outcome else {
                return;
            };
            let mut expected = "/p?q=1\nhost: t\n".to_owned();
            for i in 0..fields {
                expected.push_str(&format!("x-field-{i}: value {i}\n"));
            }
            assert_eq!(response.status, 200, "{fields} fields");
            assert_eq!(String::from_utf8(response.body).unwrap(), expected);
        }
    });
}

#[test]
fn dropping_the_future_shuts_the_server_down() {
    let _heavy = heavy_test_lock();
    main(async move {
        let (addr, fd) = listener();
        let task =
            tokio::spawn(ringwall::tower::serve(builder(fd), router::router()).into_future());
        let answered = tokio::task::spawn_blocking(move || {
            Client::connect(addr).request(&get_request("/")).status
        })
        .await;
        if task.is_finished() {
            // A start refused for want of io_uring resolves at once.
            match task.await.unwrap() {
                Err(Error::Start(StartError::IoUring(cause))) => {
                    skip_without_io_uring(&cause);
                    return;
                }
                other => panic!("serve ended by itself: {other:?}"),
            }
        }
        assert_eq!(answered.expect("the client"), 200);
        task.abort();
        let closed = tokio::task::spawn_blocking(move || {
            ringwall_tests::wait_until(Duration::from_secs(10), || {
                TcpStream::connect(addr).is_err()
            })
        })
        .await
        .unwrap();
        assert!(closed, "still accepting 10 s after the future was dropped");
    });
}
