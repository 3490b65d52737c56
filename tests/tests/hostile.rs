//! Hostile clients: one connection must not freeze its worker, a timed-out
//! slow reader must not pin kernel memory, an honest slow reader must not be
//! cut off, and memory and connection limits answer instead of growing.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ringwall::{MinRate, Request, Response};
use ringwall_bench::peers::tcp_table;
use ringwall_tests::{
    app, builder, connect_with_rcvbuf, heavy_test_lock, start_or_skip, wait_until, Client,
    CloseKind,
};

/// How much later than its deadline a close may come while one connection
/// hammers the same worker (the bar).
const FAIRNESS_BOUND: Duration = Duration::from_millis(50);

/// The benchmark app, plus `GET /spin`: 1 ms of CPU per request, the
/// stand-in for any expensive handler.
fn spin_app(request: &Request<'_>, response: &mut Response<'_>) {
    if request.path() == "/spin" {
        let end = Instant::now() + Duration::from_millis(1);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        let _ = response.send(200, &[], b"spun");
    } else {
        app(request, response);
    }
}

/// Opens `n` slowloris connections (a head that never ends); returns them
/// with the instant after the last connect.
fn slowloris(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, Instant) {
    let streams = (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .expect("partial head");
            s
        })
        .collect();
    (streams, Instant::now())
}

/// Asserts each slowloris connection was closed no later than `bound` after
/// its header deadline (which started before `connected`).
fn assert_closed_on_time(streams: Vec<TcpStream>, connected: Instant, header: Duration) {
    for (i, mut s) in streams.into_iter().enumerate() {
        let closed =
            ringwall_tests::wait_for_close(&mut s, header + Duration::from_secs(20)).expect("read");
        assert_ne!(
            closed.kind,
            CloseKind::StillOpen,
            "slowloris {i} never closed"
        );
        let late = closed
            .at
            .saturating_duration_since(connected)
            .saturating_sub(header);
        assert!(
            late <= FAIRNESS_BOUND,
            "slowloris {i} closed {late:?} after its deadline: its worker was held"
        );
    }
}

/// Sends `count` copies of `request` in one write on a fresh connection and
/// checks every response, in a thread; returns its handle.
fn pipeline(
    addr: SocketAddr,
    request: &'static [u8],
    count: usize,
    head: bool,
    body: &'static [u8],
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.send(&request.repeat(count));
        for i in 0..count {
            let r = client
                .try_read_response(head)
                .unwrap_or_else(|e| panic!("pipelined response {i}: {e}"));
            assert_eq!(r.status, 200, "pipelined response {i}");
            assert_eq!(r.body, body, "pipelined response {i}");
        }
    })
}

/// `n` keep-alive connections, each with one answered request: held open.
fn keep_alive_clients(addr: SocketAddr, n: usize) -> Vec<Client> {
    (0..n)
        .map(|_| {
            let mut c = Client::connect(addr);
            assert_eq!(c.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
            c
        })
        .collect()
}

/// A new connection the server refuses: its best-effort 503, checked.
fn refused_connection(addr: SocketAddr) -> ringwall_tests::Response {
    let mut c = Client::connect(addr);
    let refused = c.try_read_response(false).expect("a 503 before the close");
    assert_eq!(refused.status, 503);
    refused
}

/// `n` clients with a 4 KiB receive buffer that ask for `bytes` and never
/// read.
fn non_readers(addr: SocketAddr, n: usize, bytes: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect_with_rcvbuf(addr, 4096).expect("connect");
            s.write_all(format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .expect("request");
            s
        })
        .collect()
}

#[test]
fn deep_pipeline_of_expensive_requests_delays_no_deadline_on_its_worker() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().workers(1).header_timeout(header), spin_app) else {
        return;
    };
    let addr = server.local_addr();
    let mut legit = Client::connect(addr);
    assert_eq!(
        legit.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    let (attack, connected) = slowloris(addr, 3);
    // 400 requests of 1 ms each arrive just before the deadlines: without a
    // per-turn budget the worker is busy with them for 400 ms.
    thread::sleep(header - Duration::from_millis(150));
    let pipelined = pipeline(
        addr,
        b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
        b"spun",
    );
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    let r = legit.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let waited = asked.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        waited <= FAIRNESS_BOUND,
        "a legit request waited {waited:?} behind another connection's pipeline"
    );
    assert_closed_on_time(attack, connected, header);
    pipelined
        .join()
        .expect("every pipelined response arrived in order");
    assert!(server.stats().turn_yields > 0, "{}", server.stats());
}

#[test]
fn pipelined_head_requests_for_huge_bodies_build_nothing() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().workers(1).header_timeout(header), app) else {
        return;
    };
    let addr = server.local_addr();
    let (attack, connected) = slowloris(addr, 3);
    thread::sleep(header - Duration::from_millis(150));
    // The attack: each HEAD used to build a 64 MiB body (14.8 s for 400).
    let pipelined = pipeline(
        addr,
        b"HEAD /bytes/67108864 HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        true,
        b"",
    );
    assert_closed_on_time(attack, connected, header);
    pipelined.join().expect("every HEAD response arrived");
}

#[test]
fn write_deadline_reset_leaves_no_send_queue_in_the_kernel() {
    let _heavy = heavy_test_lock();
    let write = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().write_timeout(write).min_response_rate(None), app)
    else {
        return;
    };
    let addr = server.local_addr();
    let readers: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect_with_rcvbuf(addr, 4096).expect("connect");
            s.write_all(b"GET /bytes/8388608 HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("request");
            s
        })
        .collect();
    // They never read.
    assert!(
        wait_until(write + Duration::from_secs(3), || server
            .stats()
            .closes
            .write_timeout_reset
            == 4),
        "{}",
        server.stats()
    );
    // Every server-side socket on the port, orphans in FIN-WAIT included.
    let server_sockets = || -> Vec<tcp_table::TcpSocket> {
        let sockets = tcp_table::read().expect("/proc/net/tcp is readable");
        sockets
            .into_iter()
            .filter(|s| s.local_port == addr.port())
            .collect()
    };
    let pinned = || server_sockets().iter().filter(|s| s.send_q > 0).count();
    assert!(
        wait_until(Duration::from_secs(1), || pinned() == 0),
        "1 s after the write deadline {} server sockets still hold a send queue: {:?}",
        pinned(),
        server_sockets()
    );
    assert_eq!(server.stats().resets, 4, "{}", server.stats());
    for mut s in readers {
        let closed = ringwall_tests::wait_for_close(&mut s, Duration::from_secs(5)).expect("read");
        assert_eq!(closed.kind, CloseKind::Reset);
    }
}

/// Reads `stream` at about `bytes_per_sec` until EOF or an error; returns
/// what arrived.
fn read_at(stream: &mut TcpStream, bytes_per_sec: usize, max: usize) -> Vec<u8> {
    let tick = Duration::from_millis(50);
    let per_tick = bytes_per_sec / 20;
    let mut got = Vec::new();
    let mut buf = vec![0u8; per_tick];
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    while got.len() < max {
        let due = start + tick * (got.len() / per_tick) as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn honest_slow_reader_gets_the_whole_response() {
    let _heavy = heavy_test_lock();
    // Half a MiB at 100 KiB/s takes 5 s, five write timeouts: the write
    // deadline must bound a stall, not the whole response.
    let write = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().write_timeout(write), app) else {
        return;
    };
    let size = 512 * 1024;
    let mut s = connect_with_rcvbuf(server.local_addr(), 16 * 1024).expect("connect");
    s.write_all(format!("GET /bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    let started = Instant::now();
    let got = read_at(&mut s, 100 * 1024, usize::MAX);
    let (head, body) = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| got.split_at(at + 4))
        .expect("a response head");
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(head)
    );
    assert_eq!(
        body.len(),
        size,
        "the reader got {} of {size} body bytes in {:?}: {}",
        body.len(),
        started.elapsed(),
        server.stats()
    );
    assert!(body.iter().all(|&b| b == b'x'));
    let stats = server.stats();
    assert_eq!(
        stats.closes.write_timeout + stats.closes.write_timeout_reset,
        0,
        "{stats}"
    );
    assert_eq!(stats.closes.min_response_rate_reset, 0, "{stats}");
}

#[test]
fn a_body_of_tiny_chunks_yields_its_worker_between_pieces() {
    // 65,536 one-byte chunks: 327,680 bytes of framing to parse, ten
    // budgets' worth. Without a budget on decoding the worker parsed each
    // read whole, and two such clients cut a worker's legit throughput to
    // 3 %.
    let Some(server) = start_or_skip(builder().workers(1), app) else {
        return;
    };
    let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend(b"1\r\nx\r\n".repeat(65_536));
    request.extend(b"0\r\n\r\n");
    let mut client = Client::connect(server.local_addr());
    let response = client.request(&request);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, vec![b'x'; 65_536], "the echo is the body");
    let stats = server.stats();
    assert!(stats.turn_yields >= 5, "{stats}");
}

#[test]
fn reader_whose_progress_shows_in_bursts_further_apart_than_grace_keeps_its_connection() {
    let _heavy = heavy_test_lock();
    // A steady 100 KB/s reader: its receive window reopens a segment (64
    // KiB on loopback) at a time, so the server sees progress every 0.65 s,
    // longer than this grace. The rule judges the bytes each burst took,
    // not the gaps between them.
    let grace = Duration::from_millis(500);
    let Some(server) = start_or_skip(
        builder().min_response_rate(Some(MinRate::new(240, grace))),
        app,
    ) else {
        return;
    };
    let size = 1 << 20;
    let mut client = Client::connect(server.local_addr());
    client.send(format!("GET /bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let response = client.read_response_at(100 * 1000);
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), size);
    let stats = server.stats();
    assert_eq!(stats.closes.min_response_rate_reset, 0, "{stats}");
    assert_eq!(stats.resets, 0, "{stats}");
}

#[test]
fn reader_below_the_minimum_rate_is_reset_after_the_grace_period() {
    let _heavy = heavy_test_lock();
    let grace = Duration::from_secs(2);
    // The bytes the reader's receive buffer takes at once (4 KiB asked,
    // 8 KiB as the kernel doubles it) are what it took: at this rate they
    // buy at most 4 s, the "one window" beyond the grace.
    let rate = MinRate::new(2048, grace);
    let window = Duration::from_secs(4);
    let Some(server) = start_or_skip(
        builder()
            .write_timeout(Duration::from_secs(30))
            .min_response_rate(Some(rate)),
        app,
    ) else {
        return;
    };
    let mut s = connect_with_rcvbuf(server.local_addr(), 4096).expect("connect");
    let before = Instant::now();
    s.write_all(b"GET /bytes/8388608 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    // 32 bytes every 500 ms: 64 B/s, a thirty-second of the minimum.
    let mut reset_at = None;
    let mut buf = [0u8; 32];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while before.elapsed() < grace + window + Duration::from_secs(3) {
        if server.stats().closes.min_response_rate_reset == 1 {
            reset_at = Some(Instant::now());
            break;
        }
        match s.read(&mut buf) {
            Ok(_) => thread::sleep(Duration::from_millis(400)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read failed before the server counted a reset: {e}"),
        }
    }
    let stats = server.stats();
    let reset_at = reset_at.unwrap_or_else(|| panic!("no minimum-rate reset: {stats}"));
    let after = reset_at.duration_since(before);
    // The grace period plus the receive window's credit, plus a second of
    // lateness (the fire, the check loop above, a loaded machine).
    assert!(
        after + Duration::from_millis(5) >= grace
            && after <= grace + window + Duration::from_secs(1),
        "reset {after:?} after the request (grace {grace:?}, window {window:?})"
    );
    assert_eq!(stats.resets, 1, "{stats}");
    let closed = ringwall_tests::wait_for_close(&mut s, Duration::from_secs(5)).expect("read");
    assert_eq!(closed.kind, CloseKind::Reset);
}

#[test]
fn connection_over_the_per_address_limit_gets_503() {
    let Some(server) = start_or_skip(builder().max_connections_per_ip(2), app) else {
        return;
    };
    let addr = server.local_addr();
    let mut held = keep_alive_clients(addr, 2);
    let refused = refused_connection(addr);
    assert!(refused.connection_has("close"));
    let stats = server.stats();
    assert_eq!(stats.closes.per_ip_cap, 1, "{stats}");
    assert_eq!(stats.cap_responses, 1, "{stats}");
    // A freed slot admits the address again.
    held.pop();
    assert!(wait_until(Duration::from_secs(2), || server
        .open_connections()
        == 1));
    let mut again = Client::connect(addr);
    assert_eq!(
        again.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
}

#[test]
fn connection_over_the_server_cap_gets_503() {
    let Some(server) = start_or_skip(builder().max_connections(2), app) else {
        return;
    };
    let addr = server.local_addr();
    let _held = keep_alive_clients(addr, 2);
    refused_connection(addr);
    assert_eq!(server.stats().closes.connection_cap, 1);
}

#[test]
fn body_bytes_over_the_body_budget_get_503() {
    let mib = 1 << 20;
    let Some(server) = start_or_skip(builder().workers(1).max_buffered_body_bytes(2 * mib), app)
    else {
        return;
    };
    let addr = server.local_addr();
    let post = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {mib}\r\n\r\n");
    // Two bodies of 1 MiB stall one byte short: the budget is taken.
    let mut stalled: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(post.as_bytes());
            c.send(&vec![b'a'; mib - 1]);
            c
        })
        .collect();
    assert!(wait_until(Duration::from_secs(2), || {
        server.stats().bytes_in >= 2 * (mib as u64 - 1)
    }));
    let mut third = Client::connect(addr);
    third.send(post.as_bytes());
    third.send(&vec![b'c'; 64 * 1024]);
    let refused = third
        .try_read_response(false)
        .expect("503 for bytes over the budget");
    assert_eq!(refused.status, 503);
    assert_eq!(server.stats().closes.body_budget, 1);
    // A finished body releases its share: the next one is served.
    stalled[0].send(b"a");
    let echoed = stalled[0].read_response();
    assert_eq!((echoed.status, echoed.body.len()), (200, mib));
    let mut fourth = Client::connect(addr);
    fourth.send(post.as_bytes());
    fourth.send(&vec![b'b'; mib]);
    assert_eq!(fourth.read_response().status, 200);
}

#[test]
fn announced_but_unsent_bodies_take_no_budget() {
    let mib = 1 << 20;
    let Some(server) = start_or_skip(builder().workers(1).max_buffered_body_bytes(2 * mib), app)
    else {
        return;
    };
    let addr = server.local_addr();
    let post = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {mib}\r\n\r\n");
    // Ten clients announce 1 MiB each (five times the budget) and send one
    // byte of it.
    let _announcers: Vec<Client> = (0..10)
        .map(|_| {
            let mut c = Client::connect(addr);
            c.send(post.as_bytes());
            c.send(b"a");
            c
        })
        .collect();
    assert!(wait_until(Duration::from_secs(2), || {
        server.stats().bytes_in >= 10 * post.len() as u64
    }));
    let mut upload = Client::connect(addr);
    upload.send(post.as_bytes());
    upload.send(&vec![b'u'; mib]);
    let r = upload.read_response();
    assert_eq!((r.status, r.body.len()), (200, mib));
    assert_eq!(server.stats().closes.body_budget, 0);
}

#[test]
fn output_budget_holds_new_requests_until_sends_drain() {
    let _heavy = heavy_test_lock();
    let mib = 1 << 20;
    let Some(server) = start_or_skip(builder().workers(1).max_queued_output_bytes(4 * mib), app)
    else {
        return;
    };
    let addr = server.local_addr();
    // Two non-readers queue about 3 MiB each: over the 4 MiB budget.
    let mut hoarders = non_readers(addr, 2, 3 * mib);
    assert!(wait_until(Duration::from_secs(2), || server
        .stats()
        .requests
        == 2));
    let mut late = TcpStream::connect(addr).expect("connect");
    late.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    late.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 256];
    let early = late.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "answered while the output budget was used up: {early:?}"
    );
    assert!(
        server.stats().output_budget_waits >= 1,
        "{}",
        server.stats()
    );
    // The hoarders read everything: the budget drains and the request runs.
    let drains: Vec<_> = hoarders
        .drain(..)
        .map(|mut s| {
            thread::spawn(move || {
                let mut sink = vec![0u8; 256 * 1024];
                let mut total = 0;
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                while total < 3 * mib {
                    match s.read(&mut sink) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
                total
            })
        })
        .collect();
    let mut late = Client::from_stream(late);
    let r = late.read_response();
    assert_eq!(r.status, 200);
    for d in drains {
        assert!(d.join().unwrap() >= 3 * mib);
    }
}

#[test]
fn output_budget_freed_by_closes_lets_waiting_requests_run() {
    let _heavy = heavy_test_lock();
    let mib = 1 << 20;
    let Some(server) = start_or_skip(builder().workers(1).max_queued_output_bytes(4 * mib), app)
    else {
        return;
    };
    let addr = server.local_addr();
    let hoarders = non_readers(addr, 2, 3 * mib);
    assert!(wait_until(Duration::from_secs(2), || server
        .stats()
        .requests
        == 2));
    let mut late = Client::connect(addr);
    late.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(Duration::from_secs(2), || {
        server.stats().output_budget_waits >= 1
    }));
    // The hoarders vanish without reading: their queues are dropped, not
    // sent, and that must free the budget just the same.
    for s in hoarders {
        ringwall_tests::set_linger_zero(&s);
    }
    let asked = Instant::now();
    let r = late.read_response();
    assert_eq!(r.status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}
