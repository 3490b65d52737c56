//! Deadlines enforced by the kernel timer, measured from the client: header
//! (slowloris), body, keep-alive idle and write (ARCHITECTURE.md, Deadline rules).
//!
//! Bounds: a close may not come before the deadline (beyond `EARLY_SLACK`
//! of clock granularity, measured from just before `connect`, so the server
//! cannot have started its clock earlier), nor later than `LATE_SLACK` after
//! it. Tests here take `heavy_test_lock` so they are measured one at a time.

use std::io::Write;
use std::time::{Duration, Instant};

use ringwall_tests::{
    app, assert_closed_within, builder, connect_with_rcvbuf, heavy_test_lock, slowloris,
    slowloris_summary, start_or_skip, wait_until, Client, CloseKind,
};

#[test]
fn slowloris_connections_are_closed_at_the_header_deadline() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().header_timeout(header), app) else {
        return;
    };
    let report = slowloris(server.local_addr(), 300, Duration::from_millis(100), header);
    let summary = slowloris_summary(&report);
    eprintln!("slowloris: {summary}");
    assert_eq!(report.early_closes, 0, "{summary}");
    assert_eq!(report.hangs, 0, "{summary}");
    assert_eq!(report.closed, 300, "{summary}");
    // Every connection kept dripping until its close: the drip did not extend
    // the deadline (arm-if-unarmed).
    assert!(report.fewest_drips >= Some(5), "{summary}");
    let stats = server.stats();
    assert_eq!(stats.closes.header_timeout, 300, "{stats}");
    assert_eq!(stats.requests, 0, "{stats}");
}

#[test]
fn slowloris_close_is_a_fin_not_a_reset() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(500);
    let Some(server) = start_or_skip(builder().header_timeout(header), app) else {
        return;
    };
    let before = Instant::now();
    let mut client = Client::connect(server.local_addr());
    let connected = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Partial: ");
    let closed = client.wait_for_close(header + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within("partial head", closed.at, before, connected, header);
    assert_eq!(server.stats().closes.header_timeout, 1);
}

#[test]
fn silent_connection_is_closed_at_the_header_deadline() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(500);
    let Some(server) = start_or_skip(builder().header_timeout(header), app) else {
        return;
    };
    let before = Instant::now();
    let mut client = Client::connect(server.local_addr());
    let connected = Instant::now();
    let closed = client.wait_for_close(header + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");
    assert_closed_within("silent connection", closed.at, before, connected, header);
    assert_eq!(server.stats().closes.header_timeout, 1);
}

#[test]
fn idle_keep_alive_outlives_header_timeout_and_closes_at_idle_timeout() {
    let _heavy = heavy_test_lock();
    let idle = Duration::from_secs(1);
    let config = builder()
        .header_timeout(Duration::from_millis(300))
        .idle_timeout(idle);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let sent = Instant::now();
    let r = client.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let answered = Instant::now();
    assert_eq!(r.status, 200);
    // Well past the header timeout: an idle connection has no header deadline.
    let closed = client.wait_for_close(idle + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within("idle keep-alive", closed.at, sent, answered, idle);
    let stats = server.stats();
    assert_eq!(stats.closes.idle_timeout, 1, "{stats}");
    assert_eq!(stats.closes.header_timeout, 0, "{stats}");
}

#[test]
fn header_deadline_of_second_request_starts_at_its_first_byte() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(400);
    let config = builder()
        .header_timeout(header)
        .idle_timeout(Duration::from_secs(5));
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    assert_eq!(
        client.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    // Idle longer than the header timeout: no deadline may carry over.
    assert!(client.stays_silent_for(Duration::from_millis(600)));
    let before = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHo");
    let sent = Instant::now();
    let closed = client.wait_for_close(header + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within("second request's head", closed.at, before, sent, header);
    let stats = server.stats();
    assert_eq!(stats.closes.header_timeout, 1, "{stats}");
    assert_eq!(stats.closes.idle_timeout, 0, "{stats}");
}

#[test]
fn slow_body_is_closed_at_body_timeout() {
    let _heavy = heavy_test_lock();
    let body = Duration::from_secs(1);
    let config = builder()
        .header_timeout(Duration::from_millis(300))
        .body_timeout(body);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let before = Instant::now();
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    let head_sent = Instant::now();
    // Drip the body, one byte every 100 ms: it would take 10 s to finish.
    let mut closed = None;
    for _ in 0..30 {
        let closed_now = client.wait_for_close(Duration::from_millis(100));
        if closed_now.kind != CloseKind::StillOpen {
            closed = Some(closed_now);
            break;
        }
        let _ = client.stream.write(b"b");
    }
    let closed = closed.expect("the slow body was never closed");
    // A 408 before the close is allowed, nothing else is.
    assert!(
        closed.data.is_empty() || closed.data.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert_closed_within("slow body", closed.at, before, head_sent, body);
    let stats = server.stats();
    assert_eq!(stats.closes.body_timeout, 1, "{stats}");
    assert_eq!(stats.closes.header_timeout, 0, "{stats}");
    assert_eq!(stats.requests, 0, "{stats}");
}

#[test]
fn client_that_never_reads_large_response_is_closed_at_write_timeout() {
    let _heavy = heavy_test_lock();
    let write = Duration::from_secs(1);
    let Some(server) = start_or_skip(builder().write_timeout(write), app) else {
        return;
    };
    let mut stream =
        connect_with_rcvbuf(server.local_addr(), 4096).expect("connect with a small SO_RCVBUF");
    let before = Instant::now();
    stream
        .write_all(b"GET /bytes/67108864 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send the request");
    let sent = Instant::now();
    // Never read; the server's view of the close is its counters.
    let mut closed_at = None;
    wait_until(write + Duration::from_secs(2), || {
        let stats = server.stats();
        if stats.closes.write_timeout_reset >= 1 && closed_at.is_none() {
            closed_at = Some(Instant::now());
        }
        closed_at.is_some() && server.open_connections() == 0
    });
    let stats = server.stats();
    let closed_at = closed_at.unwrap_or_else(|| panic!("no write timeout: {stats}"));
    assert_closed_within("unread response", closed_at, before, sent, write);
    // Response bytes were still queued: a reset, not a FIN that would
    // leave them pinned in the kernel.
    assert_eq!(stats.closes.write_timeout_reset, 1, "{stats}");
    assert_eq!(stats.closes.write_timeout, 0, "{stats}");
    assert_eq!(stats.resets, 1, "{stats}");
    assert_eq!(server.open_connections(), 0, "{stats}");
    // The client never gets the 64 MiB the handler produced: what reached
    // its buffers before the reset, then the reset.
    let mut client = Client::from_stream(stream);
    let closed = client.wait_for_close(Duration::from_secs(5));
    assert_eq!(closed.kind, CloseKind::Reset, "{} bytes", closed.data.len());
    assert!(
        closed.data.len() < 64 << 20,
        "all {} bytes arrived after the write timeout",
        closed.data.len()
    );
}

#[test]
fn partial_pipelined_request_starts_header_deadline() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(500);
    let config = builder()
        .header_timeout(header)
        .idle_timeout(Duration::from_secs(5));
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let before = Instant::now();
    // A whole request and the start of the next, in one write: the leftover
    // is a started head, not an idle connection.
    client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHo");
    let sent = Instant::now();
    assert_eq!(client.read_response().status, 200);
    let closed = client.wait_for_close(header + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within("leftover partial head", closed.at, before, sent, header);
    let stats = server.stats();
    assert_eq!(stats.closes.header_timeout, 1, "{stats}");
    assert_eq!(stats.requests, 1, "{stats}");
}

#[test]
fn each_request_restarts_the_idle_deadline() {
    let _heavy = heavy_test_lock();
    let idle = Duration::from_millis(600);
    let config = builder()
        .header_timeout(Duration::from_millis(300))
        .idle_timeout(idle);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut sent = Instant::now();
    let mut answered = sent;
    // Three requests 400 ms apart: 1.2 s in all, twice the idle timeout.
    for i in 0..3 {
        if i > 0 {
            assert!(
                client.stays_silent_for(Duration::from_millis(400)),
                "closed after an idle gap shorter than the idle timeout (request {i})"
            );
        }
        sent = Instant::now();
        let r = client.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        answered = Instant::now();
        assert_eq!(r.status, 200, "request {i}: {r:?}");
    }
    let closed = client.wait_for_close(idle + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within(
        "idle after the third request",
        closed.at,
        sent,
        answered,
        idle,
    );
    let stats = server.stats();
    assert_eq!(stats.closes.idle_timeout, 1, "{stats}");
    assert_eq!(stats.requests, 3, "{stats}");
}

/// The accept-time timer is due at the 5 s header deadline; the 500 ms idle
/// deadline is earlier, so the pending kernel timer must be moved forward
/// (`IORING_OP_TIMEOUT_REMOVE` with the update flag), not left to fire late.
#[test]
fn idle_deadline_shorter_than_header_timeout_updates_the_timer() {
    let _heavy = heavy_test_lock();
    let idle = Duration::from_millis(500);
    let config = builder()
        .header_timeout(Duration::from_secs(5))
        .idle_timeout(idle);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let sent = Instant::now();
    assert_eq!(
        client.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    let answered = Instant::now();
    let closed = client.wait_for_close(idle + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within("idle keep-alive", closed.at, sent, answered, idle);
    let stats = server.stats();
    assert_eq!(stats.closes.idle_timeout, 1, "{stats}");
    assert!(stats.timer_updates >= 1, "{stats}");
}

/// As above for the body deadline: 500 ms, earlier than the pending 5 s
/// header timer.
#[test]
fn body_deadline_shorter_than_header_timeout_updates_the_timer() {
    let _heavy = heavy_test_lock();
    let body = Duration::from_millis(500);
    let config = builder()
        .header_timeout(Duration::from_secs(5))
        .body_timeout(body);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let before = Instant::now();
    client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let sent = Instant::now();
    let closed = client.wait_for_close(body + Duration::from_secs(2));
    assert_ne!(closed.kind, CloseKind::StillOpen, "{closed:?}");
    assert!(
        closed.data.is_empty() || closed.data.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert_closed_within("stalled body", closed.at, before, sent, body);
    let stats = server.stats();
    assert_eq!(stats.closes.body_timeout, 1, "{stats}");
    assert!(stats.timer_updates >= 1, "{stats}");
}

/// After a rejection the server sends FIN and reads until the peer's EOF
/// (so the response is not destroyed by a reset), but a peer that never
/// closes must not hold the slot: the linger ends at the write timeout.
#[test]
fn lingering_after_rejection_is_bounded_by_write_timeout() {
    let _heavy = heavy_test_lock();
    let write = Duration::from_millis(500);
    let Some(server) = start_or_skip(builder().write_timeout(write), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let before = Instant::now();
    client.send(b"GET / HTTP/1.1\r\n\r\n");
    let r = client.read_response();
    let answered = Instant::now();
    assert_eq!(r.status, 400, "{r:?}");
    // The client keeps its side open and silent.
    let mut freed_at = None;
    wait_until(write + Duration::from_secs(2), || {
        if server.open_connections() == 0 {
            freed_at = Some(Instant::now());
        }
        freed_at.is_some()
    });
    let freed_at = freed_at
        .unwrap_or_else(|| panic!("the lingering slot was never freed: {}", server.stats()));
    assert_closed_within("lingering close", freed_at, before, answered, write);
    drop(client);
}
