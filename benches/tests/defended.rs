//! `slowloris::run` and `Report::assert_defended` against two servers
//! started in this process with the same router: `axum::serve`, which has
//! no header deadline and must fail, and ringwall, which must pass. Small
//! and short (20 connections per mode, a 1 s header deadline): each test
//! takes about 9 s, and the two run side by side.

use std::net::SocketAddr;
use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringwall_bench::slowloris::{self, Expectations};

const HEADER: Duration = Duration::from_secs(1);
const IDLE: Duration = Duration::from_secs(5);

/// Slowloris and idle (the idle hold: the header deadline plus twice the
/// slack), with two legit keep-alive connections beside each.
fn expectations() -> Expectations {
    let mut e = Expectations::new(HEADER)
        .idle_timeout(IDLE)
        .connections(20)
        .legit_connections(2);
    e.open_over = Duration::from_millis(100);
    e
}

/// `axum::serve` on a runtime of its own thread, until the sender drops.
struct AxumServe {
    addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AxumServe {
    fn start() -> AxumServe {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route("/", axum::routing::get(|| async { "Hello, World!" }));
                let stopped = tokio::task::spawn_blocking(move || {
                    let _ = stop_rx.recv();
                });
                tokio::select! {
                    served = axum::serve(listener, app) => served.unwrap(),
                    _ = stopped => {}
                }
            });
            // Dropping the runtime ends the connection tasks still running.
        });
        AxumServe {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for AxumServe {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn axum_serve_is_not_defended_against_slowloris() {
    let server = AxumServe::start();
    let report = slowloris::run(server.addr, &expectations()).unwrap();
    assert!(!report.passed(), "{}", report.table());
    let failures = report.failures();
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("slowloris: 20 of 20 connections still open")),
        "{failures:?}"
    );
    // Idle keep-alive connections are not closed early: the failure is the
    // missing header deadline, not everything at once.
    assert!(
        !failures.iter().any(|f| f.starts_with("idle:")),
        "{failures:?}"
    );
    let panicked = panic::catch_unwind(|| report.assert_defended()).unwrap_err();
    let message = panicked
        .downcast_ref::<String>()
        .expect("assert_defended panics with a formatted message");
    assert!(
        message.contains("is not defended against slow clients")
            && message.contains("FAIL slowloris: 20 of 20 connections still open"),
        "{message}"
    );
}

#[test]
fn ringwall_is_defended_against_slowloris() {
    let handle = ringwall::Server::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .header_timeout(HEADER)
        .idle_timeout(IDLE)
        .build()
        .unwrap()
        .serve(
            |_: &ringwall::Request<'_>, resp: &mut ringwall::Response<'_>| {
                let _ = resp.send(200, &[("Content-Type", b"text/plain")], b"Hello, World!");
            },
        )
        .unwrap();
    let report = slowloris::run(handle.local_addr(), &expectations()).unwrap();
    report.assert_defended();
    let slowloris = &report.modes[0].attack;
    assert_eq!(slowloris.closed, 20, "{}", report.table());
    handle.shutdown().unwrap();
}
