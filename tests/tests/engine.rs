//! Engine invariants under load: a full submission queue loses no timer,
//! churn leaks no slot, the connection cap holds under a connect burst,
//! graceful shutdown, and handlers that panic or answer nothing.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringwall::{Request, Response};
use ringwall_tests::{
    app, builder, heavy_test_lock, raise_nofile_limit, set_linger_zero, slowloris,
    slowloris_summary, start_or_skip, wait_until, watch_for_closes, Client, CloseKind,
};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

#[track_caller]
fn assert_serves(addr: std::net::SocketAddr) {
    let r = Client::connect(addr).request(GET);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"Hello, World!"[..]),
        "{r:?}"
    );
}

#[test]
fn tiny_submission_queue_loses_no_timer() {
    if !ringwall_tests::runs_only_on_io_uring("the submission queue") {
        return;
    }
    let _heavy = heavy_test_lock();
    let header = Duration::from_secs(1);
    // One worker, so every connection's SQEs compete for the same 8 entries.
    let config = builder().workers(1).ring_entries(8).header_timeout(header);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let report = slowloris(server.local_addr(), 300, Duration::from_millis(100), header);
    let summary = slowloris_summary(&report);
    let stats = server.stats();
    eprintln!("tiny SQ: {summary}; {stats}");
    assert_eq!(report.hangs, 0, "{summary}");
    assert_eq!(report.early_closes, 0, "{summary}");
    assert_eq!(report.closed, 300, "{summary}");
    assert_eq!(stats.closes.header_timeout, 300, "{stats}");
    assert!(
        stats.sq_full_retries > 0,
        "the submission queue never filled, so this test proved nothing: {stats}"
    );
    // Every slot is freed once its cancels complete, full queue or not.
    assert!(
        wait_until(Duration::from_secs(2), || server.open_connections() == 0),
        "{}",
        server.stats()
    );
    assert_serves(server.local_addr());
}

#[test]
fn churn_with_pending_timers_leaks_nothing() {
    let _heavy = heavy_test_lock();
    raise_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    let config = builder().header_timeout(Duration::from_secs(30));
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let addr = server.local_addr();
    const THREADS: usize = 2;
    const CYCLES: usize = 1500;
    let churners: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..CYCLES {
                    let mut stream = TcpStream::connect(addr)
                        .unwrap_or_else(|e| panic!("churn connect {t}/{i}: {e}"));
                    match i % 3 {
                        // Partial head, then RST (SO_LINGER 0).
                        0 => {
                            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-");
                            set_linger_zero(&stream);
                        }
                        // Partial head, then FIN.
                        1 => {
                            let _ = stream.write_all(b"POST / HTTP/1.1\r\nHo");
                        }
                        // Nothing at all, then FIN.
                        _ => {}
                    }
                    drop(stream);
                }
            })
        })
        .collect();
    for churner in churners {
        churner.join().expect("a churn thread panicked");
    }
    let total = (THREADS * CYCLES) as u64;
    let settled = wait_until(Duration::from_secs(10), || {
        let s = server.stats();
        s.accepted == total && s.open_connections == 0 && server.open_connections() == 0
    });
    let stats = server.stats();
    eprintln!("churn: {stats}");
    assert!(
        settled,
        "after {total} cycles: open_connections()={} stats: {stats}",
        server.open_connections()
    );
    assert_eq!(
        stats.closes.peer_eof + stats.closes.peer_reset,
        total,
        "every close was the peer's: {stats}"
    );
    assert_eq!(stats.closes.total(), total, "{stats}");
    assert!(
        stats.timer_submits >= total,
        "every accepted connection arms its header timer: {stats}"
    );
    // The slots were recycled correctly: the server still answers exactly.
    let mut client = Client::connect(addr);
    for _ in 0..3 {
        let r = client.request(GET);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello, World!"[..]));
    }
}

#[test]
fn connection_cap_holds_under_connect_burst() {
    let _heavy = heavy_test_lock();
    raise_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    const CAP: usize = 50;
    const BURST: usize = 200;
    let config = builder().max_connections(CAP);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let addr = server.local_addr();
    // Every connection starts a request and holds it open (head unfinished),
    // so a served connection keeps its slot for the whole test. Four threads
    // connect at once, so both workers race for the cap.
    const THREADS: usize = 4;
    let go = Arc::new(std::sync::Barrier::new(THREADS));
    let connectors: Vec<_> = (0..THREADS)
        .map(|t| {
            let go = Arc::clone(&go);
            std::thread::spawn(move || {
                go.wait();
                (0..BURST / THREADS)
                    .map(|i| {
                        let mut s = TcpStream::connect(addr)
                            .unwrap_or_else(|e| panic!("connect {t}/{i}: {e}"));
                        s.set_nodelay(true).expect("TCP_NODELAY");
                        // Fails if the server already closed this one (over the cap).
                        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n");
                        s
                    })
                    .collect::<Vec<TcpStream>>()
            })
        })
        .collect();
    let streams: Vec<TcpStream> = connectors
        .into_iter()
        .flat_map(|c| c.join().expect("a connect thread panicked"))
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || server.stats().accepted
            == BURST as u64),
        "{}",
        server.stats()
    );
    let watched =
        watch_for_closes(&streams, Duration::from_millis(300)).expect("watch the streams");
    let closed = watched.iter().filter(|w| w.closed.is_some()).count();
    let stats = server.stats();
    assert_eq!(
        server.open_connections(),
        CAP,
        "server-side open connections: {stats}"
    );
    assert_eq!(stats.closes.connection_cap, (BURST - CAP) as u64, "{stats}");
    assert_eq!(
        closed,
        BURST - CAP,
        "client-side closed connections: {stats}"
    );
    // Held connections sent a partial head: nothing may answer it. A
    // refused one may have read the best-effort 503 before its close.
    assert!(
        watched.iter().all(|w| w.closed.is_some() || w.bytes == 0),
        "a partial head was answered"
    );
    assert_eq!(stats.cap_responses, (BURST - CAP) as u64, "{stats}");

    // The held ones finish their requests: exactly CAP get a 200.
    let mut served = 0;
    for (stream, w) in streams.iter().zip(&watched) {
        if w.closed.is_some() {
            continue;
        }
        stream.set_nonblocking(false).expect("blocking again");
        let mut client = Client::from_stream(stream.try_clone().expect("clone the stream"));
        client.send(b"\r\n");
        let r = client.read_response();
        assert_eq!(r.status, 200, "{r:?}");
        served += 1;
    }
    assert_eq!(served, CAP);
    // Closing them gives the slots back.
    drop(streams);
    assert!(
        wait_until(Duration::from_secs(3), || server.open_connections() == 0),
        "{}",
        server.stats()
    );
    assert_serves(addr);
}

#[test]
fn graceful_shutdown_completes_in_flight_request() {
    let shutdown_timeout = Duration::from_secs(3);
    let Some(server) = start_or_skip(builder().shutdown_timeout(shutdown_timeout), app) else {
        return;
    };
    let addr = server.local_addr();
    let head = b"POST /in-flight HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n";
    let mut in_flight = Client::connect(addr);
    in_flight.send(head);
    let mut idle = Client::connect(addr);
    assert_eq!(idle.request(GET).status, 200);
    let expected_in = (head.len() + GET.len()) as u64;
    assert!(
        wait_until(Duration::from_secs(2), || server.stats().bytes_in
            >= expected_in),
        "the head never arrived: {}",
        server.stats()
    );

    let started = Instant::now();
    let stopper = std::thread::spawn(move || {
        let stats = server.shutdown().expect("no worker failed");
        (Instant::now(), stats)
    });
    // The idle keep-alive connection is closed at once, with a FIN.
    let closed = idle.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "idle connection: {closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");

    // The in-flight request still completes.
    std::thread::sleep(Duration::from_millis(200));
    in_flight.send(b"hello");
    let r = in_flight.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]), "{r:?}");
    assert!(r.connection_has("close"), "{r:?}");
    let closed = in_flight.wait_for_close(Duration::from_secs(2));
    assert_eq!(
        closed.kind,
        CloseKind::Fin,
        "after the last response: {closed:?}"
    );
    drop(in_flight);

    let (returned, stats) = stopper.join().expect("shutdown panicked");
    let took = returned - started;
    assert!(
        took < shutdown_timeout,
        "shutdown() took {took:?}, shutdown_timeout is {shutdown_timeout:?}: {stats}"
    );
    assert_eq!(stats.requests, 2, "{stats}");
    assert_eq!(stats.closes.shutdown, 1, "{stats}");
    assert_eq!(stats.open_connections, 0, "{stats}");
}

#[test]
fn shutdown_closes_idle_and_silent_connections_at_once() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let addr = server.local_addr();
    let mut idle = Client::connect(addr);
    assert_eq!(idle.request(GET).status, 200);
    let mut silent = Client::connect(addr);
    assert!(wait_until(Duration::from_secs(2), || server
        .open_connections()
        == 2));
    let started = Instant::now();
    let stats = server.shutdown().expect("no worker failed");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "shutdown() took {took:?} with no request in flight: {stats}"
    );
    for (name, client) in [("idle", &mut idle), ("silent", &mut silent)] {
        let closed = client.wait_for_close(Duration::from_secs(1));
        assert_eq!(closed.kind, CloseKind::Fin, "{name}: {closed:?}");
    }
    assert_eq!(stats.closes.shutdown, 2, "{stats}");
}

/// Once `shutdown()` has returned, the port no longer listens: a connect is
/// refused rather than completed by the kernel into the queue of a listener
/// nobody serves (and reset later). Several rounds, because the window, if
/// there is one, is a race.
#[test]
fn no_connection_is_accepted_after_shutdown_returns() {
    for round in 0..20 {
        let Some(server) = start_or_skip(builder(), app) else {
            return;
        };
        let addr = server.local_addr();
        let mut idle = Client::connect(addr);
        assert_eq!(idle.request(GET).status, 200);
        server.shutdown().expect("no worker failed");
        let returned = Instant::now();
        match TcpStream::connect(addr) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
            Ok(mut late) => {
                let closed = ringwall_tests::wait_for_close(&mut late, Duration::from_secs(1))
                    .expect("read");
                panic!(
                    "round {round}: a connection to {addr} completed after shutdown() returned; \
                     it saw {:?} {:?} after shutdown() returned",
                    closed.kind,
                    closed.at - returned
                );
            }
        }
    }
}

#[test]
fn shutdown_timeout_bounds_a_stalled_request() {
    let grace = Duration::from_secs(1);
    let config = builder()
        .shutdown_timeout(grace)
        .body_timeout(Duration::from_secs(30));
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut stalled = Client::connect(server.local_addr());
    let head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial";
    stalled.send(head);
    assert!(wait_until(Duration::from_secs(2), || server
        .stats()
        .bytes_in
        >= head.len() as u64));
    let started = Instant::now();
    let stats = server.shutdown().expect("no worker failed");
    let took = started.elapsed();
    assert!(
        took + Duration::from_millis(5) >= grace && took <= grace + Duration::from_millis(500),
        "shutdown() took {took:?} with a stalled request and a {grace:?} grace: {stats}"
    );
    assert_eq!(stats.closes.shutdown, 1, "{stats}");
    let closed = stalled.wait_for_close(Duration::from_secs(1));
    assert_ne!(closed.kind, CloseKind::StillOpen, "{closed:?}");
}

fn misbehaving(
    calls: Arc<AtomicUsize>,
) -> impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static {
    move |req, resp| {
        calls.fetch_add(1, Ordering::Relaxed);
        match req.path() {
            "/panic" => panic!("this handler panics on purpose"),
            "/silent" => {}
            "/send-then-panic" => {
                resp.send(200, &[("Content-Type", b"text/plain")], b"half-done")
                    .expect("first send");
                panic!("this handler panics after sending, on purpose");
            }
            _ => app(req, resp),
        }
    }
}

#[track_caller]
fn assert_500_then_close(path: &str) {
    let calls = Arc::new(AtomicUsize::new(0));
    let Some(server) = start_or_skip(builder(), misbehaving(Arc::clone(&calls))) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let r = client.request(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.connection_has("close"), "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(
        closed.data.is_empty(),
        "bytes after the 500: {:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // The worker survived the handler: the server still serves.
    for _ in 0..4 {
        assert_serves(server.local_addr());
    }
}

#[test]
fn handler_panic_answers_500() {
    assert_500_then_close("/panic");
}

#[test]
fn handler_without_response_answers_500() {
    assert_500_then_close("/silent");
}

#[test]
fn handler_panic_after_send_answers_only_500() {
    assert_500_then_close("/send-then-panic");
}

/// ARCHITECTURE.md, Deadline rules: a head that arrives whole never touches the timer, and a
/// deadline later than the pending timer leaves it alone. With every other
/// timeout longer than the header timeout, a hundred keep-alive requests
/// cost no timer SQE beyond the one armed at accept.
#[test]
fn keep_alive_requests_with_whole_heads_submit_no_timer_sqes() {
    let config = builder()
        .header_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(10))
        .body_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_secs(10));
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    for i in 0..100 {
        let r = client.request(GET);
        assert_eq!(r.status, 200, "request {i}");
    }
    let stats = server.stats();
    assert_eq!(stats.requests, 100, "{stats}");
    assert_eq!(stats.timer_submits, 1, "{stats}");
    assert_eq!(stats.timer_updates, 0, "{stats}");
}

/// One 1 KiB provided receive buffer per worker: concurrent uploads keep
/// running the ring dry (ENOBUFS), and every multishot recv that ends that
/// way must be re-armed without losing or reordering a byte.
#[test]
fn tiny_receive_buffer_ring_loses_no_bytes() {
    let _heavy = heavy_test_lock();
    let config = builder().recv_buffers(1, 1024);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 16;
    const BODY: usize = 200_000;
    let uploads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let body: Vec<u8> = (0..BODY).map(|i| (i * 7 + c) as u8).collect();
                let mut client = Client::connect(addr);
                for round in 0..2 {
                    let mut request = format!(
                        "PUT /upload/{c}/{round} HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n"
                    )
                    .into_bytes();
                    request.extend_from_slice(&body);
                    let r = client.request(&request);
                    assert_eq!(r.status, 200, "client {c} round {round}");
                    assert!(r.body == body, "client {c} round {round}: echo differs");
                }
            })
        })
        .collect();
    for upload in uploads {
        upload.join().expect("an upload failed");
    }
    let stats = server.stats();
    assert_eq!(stats.requests, (CLIENTS * 2) as u64, "{stats}");
}

/// Buffers move between connections (idle connections hand theirs to a
/// per-worker pool): under concurrent keep-alive, pipelined and reconnecting
/// clients, every response must still be exactly its own request's.
#[test]
fn concurrent_clients_get_their_own_responses() {
    let _heavy = heavy_test_lock();
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 8;
    const BATCHES: usize = 40;
    const PIPELINE: usize = 4;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                for b in 0..BATCHES {
                    if b % 10 == 9 {
                        // A fresh connection takes pooled buffers.
                        client = Client::connect(addr);
                    }
                    let mut batch = Vec::new();
                    let mut expected = Vec::new();
                    for p in 0..PIPELINE {
                        let n = (c * 7919 + b * 104_729 + p * 31) % 5000;
                        if p % 2 == 0 {
                            let body: Vec<u8> =
                                format!("<client {c} batch {b} request {p}>").repeat(n % 50 + 1).into_bytes();
                            batch.extend_from_slice(
                                format!("POST /{c}/{b}/{p} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len())
                                    .as_bytes(),
                            );
                            batch.extend_from_slice(&body);
                            expected.push(body);
                        } else {
                            batch.extend_from_slice(
                                format!("GET /bytes/{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                            );
                            expected.push(vec![b'x'; n]);
                        }
                    }
                    client.send(&batch);
                    for (p, body) in expected.iter().enumerate() {
                        let r = client.read_response();
                        assert_eq!(r.status, 200, "client {c} batch {b} request {p}");
                        assert!(
                            r.body == *body,
                            "client {c} batch {b} request {p}: got {:?}",
                            String::from_utf8_lossy(&r.body[..r.body.len().min(80)])
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client saw a wrong response");
    }
    assert_eq!(
        server.stats().requests,
        (CLIENTS * BATCHES * PIPELINE) as u64
    );
}

/// `Response::send` refuses the framing headers the engine owns and header
/// values that would inject lines, writes nothing when it refuses, and
/// refuses a second response.
#[test]
fn response_refuses_framing_headers_injection_and_a_second_send() {
    let handler = |_req: &Request<'_>, resp: &mut Response<'_>| {
        let text = [
            resp.send(200, &[("Content-Length", b"5")], b"hello")
                .is_err(),
            resp.send(200, &[("Date", b"yesterday")], b"hello").is_err(),
            resp.send(200, &[("Connection", b"close")], b"hello")
                .is_err(),
            resp.send(200, &[("X-Bad", b"a\r\nInjected: 1")], b"hello")
                .is_err(),
            resp.send(200, &[("X-Bad", b"a\nInjected: 1")], b"hello")
                .is_err(),
            resp.send(200, &[("X-Bad", b"a\0b")], b"hello").is_err(),
            !resp.is_sent(),
        ]
        .map(|refused| if refused { 'r' } else { 'W' })
        .iter()
        .collect::<String>();
        resp.send(200, &[("X-Refusals", text.as_bytes())], text.as_bytes())
            .expect("a valid response is written");
        assert!(resp.is_sent());
        assert!(
            resp.send(200, &[], b"again").is_err(),
            "a second send was accepted"
        );
    };
    let Some(server) = start_or_skip(builder(), handler) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let r = client.request(GET);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "rrrrrrr",
        "W marks a refused-header send that was accepted: {r:?}"
    );
    assert_eq!(r.header_count("content-length"), 1, "{r:?}");
    assert_eq!(r.header_count("injected"), 0, "{r:?}");
    // Exactly one response: the connection carries on cleanly.
    let r = client.request(GET);
    assert_eq!(r.status, 200, "{r:?}");
}

/// Slots are reused as soon as the last CQE naming them arrives. A hundred
/// connections close themselves 50 ms before their header deadline and a
/// hundred new ones take their slots at once: no timer armed for an old
/// occupant may close a new one early (generation check, timer removal).
#[test]
fn timers_of_closed_connections_do_not_close_the_next_occupants() {
    let _heavy = heavy_test_lock();
    raise_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    let header = Duration::from_millis(300);
    let Some(server) = start_or_skip(builder().header_timeout(header), app) else {
        return;
    };
    let addr = server.local_addr();
    let first: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHo");
            s
        })
        .collect();
    std::thread::sleep(header - Duration::from_millis(50));
    drop(first);
    let report = slowloris(addr, 100, Duration::from_millis(50), header);
    let summary = slowloris_summary(&report);
    let stats = server.stats();
    eprintln!("next occupants: {summary}; {stats}");
    assert_eq!(report.early_closes, 0, "{summary}");
    assert_eq!(report.hangs, 0, "{summary}");
    assert_eq!(stats.closes.header_timeout, 100, "{stats}");
    assert_eq!(
        stats.closes.peer_eof + stats.closes.peer_reset,
        100,
        "{stats}"
    );
}
