//! The attack client against servers whose close times are known.

mod common;

use std::time::Duration;

use ringwall_bench::{run_attack, AttackConfig, AttackMode};

fn slowloris(target: std::net::SocketAddr, expected: Duration) -> AttackConfig {
    AttackConfig {
        target,
        mode: AttackMode::Slowloris {
            interval: Duration::from_millis(20),
        },
        connections: 40,
        open_over: Duration::from_millis(50),
        expected_timeout: expected,
        slack: Duration::from_millis(200),
    }
}

#[test]
fn closes_at_the_deadline_are_timed_with_small_overshoot() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::close_after(Duration::from_millis(300)),
    );
    let r = run_attack(&slowloris(server.addr, Duration::from_millis(300))).unwrap();
    assert_eq!(r.opened, 40, "{r:?}");
    assert_eq!(r.closed, 40, "{r:?}");
    assert_eq!(r.hangs, 0, "{r:?}");
    assert_eq!(r.early_closes, 0, "{r:?}");
    assert_eq!(r.fin_seen, 40, "{r:?}");
    assert_eq!(r.overshoots_ns.len(), 40);
    // The server's accept trails our connect by microseconds and its sleep is
    // a thread sleep: tens of milliseconds would mean the client is blind.
    assert!(
        r.overshoot.p50_us >= 0.0 && r.overshoot.p50_us < 20_000.0,
        "{:?}",
        r.overshoot
    );
    assert!(r.overshoot.max_us < 100_000.0, "{:?}", r.overshoot);
}

#[test]
fn a_server_that_never_closes_is_all_hangs() {
    let server = common::spawn(Duration::from_secs(3), common::never_close());
    let r = run_attack(&slowloris(server.addr, Duration::from_millis(300))).unwrap();
    assert_eq!(r.opened, 40, "{r:?}");
    assert_eq!(r.hangs, 40, "{r:?}");
    assert_eq!(r.closed, 0, "{r:?}");
    assert_eq!(r.failures(), 40);
}

#[test]
fn closes_well_before_the_deadline_are_early() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::close_after(Duration::from_millis(100)),
    );
    let r = run_attack(&slowloris(server.addr, Duration::from_millis(300))).unwrap();
    assert_eq!(r.closed, 40, "{r:?}");
    assert_eq!(r.early_closes, 40, "{r:?}");
    assert_eq!(r.hangs, 0, "{r:?}");
    assert!(
        r.overshoots_ns.iter().all(|&o| o < -150_000_000),
        "{:?}",
        r.overshoots_ns
    );
}

fn config(target: std::net::SocketAddr, mode: AttackMode, expected: Duration) -> AttackConfig {
    AttackConfig {
        target,
        mode,
        connections: 20,
        open_over: Duration::from_millis(50),
        expected_timeout: expected,
        slack: Duration::from_millis(200),
    }
}

#[test]
fn slow_body_is_timed_from_the_head() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::close_after_head(Duration::from_millis(300)),
    );
    let mode = AttackMode::SlowBody {
        interval: Duration::from_millis(20),
    };
    let r = run_attack(&config(server.addr, mode, Duration::from_millis(300))).unwrap();
    assert_eq!(r.closed, 20, "{r:?}");
    assert_eq!((r.hangs, r.early_closes), (0, 0), "{r:?}");
    assert!(r.overshoot.max_us < 100_000.0, "{:?}", r.overshoot);
}

#[test]
fn slow_read_sees_a_reset_behind_queued_data() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::stall_then_close(Duration::from_millis(300), true),
    );
    let mode = AttackMode::SlowRead {
        response_bytes: 4 << 20,
        interval: Duration::from_millis(20),
    };
    let r = run_attack(&config(server.addr, mode, Duration::from_millis(300))).unwrap();
    assert_eq!(r.closed, 20, "{r:?}");
    assert_eq!(r.reset_seen, 20, "{r:?}");
    assert_eq!((r.hangs, r.early_closes), (0, 0), "{r:?}");
    assert!(r.overshoot.max_us < 100_000.0, "{:?}", r.overshoot);
}

#[test]
fn slow_read_finds_a_fin_stuck_behind_unsent_data() {
    let server = common::spawn(
        Duration::from_secs(4),
        common::stall_then_close(Duration::from_millis(300), false),
    );
    let mode = AttackMode::SlowRead {
        response_bytes: 4 << 20,
        interval: Duration::from_millis(20),
    };
    let r = run_attack(&config(server.addr, mode, Duration::from_millis(300))).unwrap();
    assert_eq!(r.closed_behind_data, 20, "{r:?}");
    assert_eq!(r.hangs, 0, "{r:?}");
}

#[test]
fn idle_connections_held_open_are_not_false_kills() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::respond_with(common::HELLO, None),
    );
    let mode = AttackMode::Idle {
        hold: Duration::from_millis(300),
    };
    let r = run_attack(&config(server.addr, mode, Duration::from_secs(60))).unwrap();
    assert_eq!(r.opened, 20, "{r:?}");
    assert_eq!(
        (r.false_kills, r.closed, r.idle_unusable),
        (0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.failures(), 0);
}

#[test]
fn idle_connections_closed_during_the_hold_are_false_kills() {
    let server = common::spawn(
        Duration::from_secs(3),
        common::answer_then_close(Duration::from_millis(100)),
    );
    let mode = AttackMode::Idle {
        hold: Duration::from_millis(300),
    };
    let r = run_attack(&config(server.addr, mode, Duration::from_secs(60))).unwrap();
    assert_eq!(r.false_kills, 20, "{r:?}");
    assert_eq!(r.fin_seen, 20, "{r:?}");
}

#[test]
fn a_refused_attack_counts_failed_connects() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run_attack(&slowloris(addr, Duration::from_millis(300))).unwrap();
    assert_eq!(r.connect_failed, 40, "{r:?}");
    assert_eq!(r.opened, 0);
}
