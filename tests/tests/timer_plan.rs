//! The one-kernel-timer plan as the wire sees it: an earlier deadline moves
//! the pending timer (TIMEOUT_REMOVE with the update flag), and the
//! single-shot recv fallback keeps every behaviour of the multishot path.

use std::time::{Duration, Instant};

use ringwall_tests::{
    app, assert_closed_within, builder, heavy_test_lock, start_or_skip, Client, CloseKind,
};

/// The accept arms a 5 s header timer; the response's 200 ms write deadline is
/// earlier, so the pending timer must be updated. It then fires early (the
/// write deadline was cleared when the response left) and re-arms for the
/// 1.2 s idle deadline. Without the update the connection would live until
/// the 5 s header timer fired.
#[test]
fn earlier_deadline_updates_the_pending_kernel_timer() {
    let _heavy = heavy_test_lock();
    // Far enough past the write deadline that a loaded machine still
    // handles the early fire before the idle deadline is due.
    let idle = Duration::from_millis(1200);
    let config = builder()
        .header_timeout(Duration::from_secs(5))
        .write_timeout(Duration::from_millis(200))
        .idle_timeout(idle);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let r = client.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let answered = Instant::now();
    assert_eq!(r.status, 200);
    let closed = client.wait_for_close(Duration::from_secs(6));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within(
        "idle after an updated timer",
        closed.at,
        answered,
        answered,
        idle,
    );
    let stats = server.stats();
    assert!(stats.timer_updates >= 1, "{stats}");
    assert!(stats.timer_early_fires >= 1, "{stats}");
    assert_eq!(stats.closes.idle_timeout, 1, "{stats}");
}

#[test]
fn single_shot_recv_serves_pipelined_requests_and_enforces_deadlines() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(500);
    let config = builder().recv_multishot(false).header_timeout(header);
    let Some(server) = start_or_skip(config, app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(
            format!("POST /{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{i:03}").as_bytes(),
        );
    }
    client.send(&batch);
    for i in 0..20 {
        let r = client.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("{i:03}").as_bytes());
    }
    let connected = Instant::now();
    let mut slow = Client::connect(server.local_addr());
    let started = Instant::now();
    slow.send(b"GET / HTTP/1.1\r\nHo");
    let closed = slow.wait_for_close(header + Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert_closed_within(
        "single-shot slowloris",
        closed.at,
        connected,
        started,
        header,
    );
    assert_eq!(server.stats().closes.header_timeout, 1);
}
