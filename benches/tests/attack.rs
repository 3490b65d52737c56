//! The attack client against servers whose close times are known.
//!
//! Timing bounds here are loose on purpose (the machines are shared and
//! noisy): they separate "saw the close when it happened" from "saw it only
//! at deadline + slack", which is what a blind client would report. The
//! tests run one at a time so they do not load each other.

mod common;

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ringwall_bench::slow_read::SlowReadEnd;
use ringwall_bench::{run_attack, AttackConfig, AttackMode, AttackReport};

const SLACK: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_millis(300);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn config(target: SocketAddr, mode: AttackMode, connections: usize) -> AttackConfig {
    AttackConfig {
        target,
        mode,
        connections,
        open_over: Duration::from_millis(50),
        expected_timeout: DEADLINE,
        slack: SLACK,
    }
}

fn slowloris(target: SocketAddr) -> AttackConfig {
    let mode = AttackMode::Slowloris {
        interval: Duration::from_millis(20),
    };
    config(target, mode, 40)
}

/// Runs the attack, again (three tries at most) when the machine starved
/// the client: with the client's own schedule 100 ms late, what it timed is
/// the machine, not the server.
fn attack(cfg: &AttackConfig) -> AttackReport {
    let mut r = run_attack(cfg).unwrap();
    for _ in 0..2 {
        if r.client_lag.max_us < 100_000 {
            break;
        }
        eprintln!("client lag {:?}: machine busy, running again", r.client_lag);
        r = run_attack(cfg).unwrap();
    }
    r
}

/// Closes were seen when they happened: a client that only noticed them at
/// its deadline + slack check would report overshoots of about `SLACK`.
fn assert_seen_promptly(r: &AttackReport) {
    assert!(r.overshoot.p50_us >= 0.0, "{:?}", r.overshoot);
    assert!(r.overshoot.p50_us < 50_000.0, "{:?}", r.overshoot);
    assert!(r.overshoot.max_us < 400_000.0, "{:?}", r.overshoot);
}

#[test]
fn closes_at_the_deadline_are_timed_with_small_overshoot() {
    let _serial = serial();
    let server = common::spawn(Duration::from_secs(10), common::close_after(DEADLINE));
    let r = attack(&slowloris(server.addr));
    assert_eq!(r.opened, 40, "{r:?}");
    assert_eq!(r.closed, 40, "{r:?}");
    assert_eq!((r.hangs, r.early_closes), (0, 0), "{r:?}");
    assert_eq!(r.fin_seen, 40, "{r:?}");
    assert_eq!(r.overshoots_ns.len(), 40);
    assert_seen_promptly(&r);
}

#[test]
fn a_server_that_never_closes_is_all_hangs() {
    let _serial = serial();
    let server = common::spawn(Duration::from_secs(10), common::never_close());
    let r = attack(&slowloris(server.addr));
    assert_eq!(r.opened, 40, "{r:?}");
    assert_eq!(r.hangs, 40, "{r:?}");
    assert_eq!(r.closed, 0, "{r:?}");
    assert_eq!(r.failures(), 40);
}

#[test]
fn closes_well_before_the_deadline_are_early() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::close_after(Duration::from_millis(100)),
    );
    let r = attack(&slowloris(server.addr));
    assert_eq!(r.closed, 40, "{r:?}");
    assert_eq!(r.early_closes, 40, "{r:?}");
    assert_eq!(r.hangs, 0, "{r:?}");
    // Early closes are kept raw (negative) but not in the summary.
    assert!(
        r.overshoots_ns.iter().all(|&o| o < -5_000_000),
        "{:?}",
        r.overshoots_ns
    );
    assert_eq!(r.overshoot.count, 0);
}

#[test]
fn slow_body_is_timed_from_the_head() {
    let _serial = serial();
    let server = common::spawn(Duration::from_secs(10), common::close_after_head(DEADLINE));
    let mode = AttackMode::SlowBody {
        interval: Duration::from_millis(20),
    };
    let r = attack(&config(server.addr, mode, 20));
    assert_eq!(r.closed, 20, "{r:?}");
    assert_eq!((r.hangs, r.early_closes), (0, 0), "{r:?}");
    assert_seen_promptly(&r);
}

#[test]
fn slow_read_sees_a_reset_behind_queued_data() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::stall_then_close(DEADLINE, true),
    );
    let mode = AttackMode::SlowRead {
        response_bytes: 4 << 20,
        interval: Duration::from_millis(20),
    };
    let r = attack(&config(server.addr, mode, 20));
    assert_eq!(r.closed, 20, "{r:?}");
    assert_eq!(r.reset_seen, 20, "{r:?}");
    assert_eq!((r.hangs, r.early_closes), (0, 0), "{r:?}");
    assert_seen_promptly(&r);
    // The reset dropped the server's queue: nothing left to arrive.
    let s = r.slow_read.as_ref().expect("slow read reports its closes");
    assert_eq!((s.resets, s.fins), (20, 0), "{s:?}");
    assert_eq!(s.fins_with_bytes_after_deadline, 0, "{s:?}");
    assert_eq!(s.bytes_after_deadline_total, 0, "{s:?}");
    assert!(
        s.connections
            .iter()
            .all(|c| c.end == SlowReadEnd::Reset && c.overshoot_ns.is_some()),
        "{s:?}"
    );
}

#[test]
fn slow_read_finds_a_fin_stuck_behind_unsent_data() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::stall_then_close(DEADLINE, false),
    );
    let mode = AttackMode::SlowRead {
        response_bytes: 4 << 20,
        interval: Duration::from_millis(20),
    };
    let r = attack(&config(server.addr, mode, 20));
    assert_eq!(r.closed_behind_data, 20, "{r:?}");
    assert_eq!(r.hangs, 0, "{r:?}");
    // The server's kernel still held its 64 KiB send buffer, and delivered
    // it after the deadline, ahead of the FIN.
    let s = r.slow_read.as_ref().expect("slow read reports its closes");
    assert_eq!((s.fins, s.resets), (20, 0), "{s:?}");
    assert_eq!(s.fins_with_bytes_after_deadline, 20, "{s:?}");
    assert!(
        s.connections
            .iter()
            .all(|c| c.end == SlowReadEnd::FinBehindData && c.bytes_after_deadline >= 16 * 1024),
        "{s:?}"
    );
    assert_eq!(s.connections.len(), 20);
}

#[test]
fn idle_connections_held_open_are_not_false_kills() {
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::respond_with(common::HELLO, None),
    );
    let mode = AttackMode::Idle {
        hold: Duration::from_millis(300),
    };
    let r = attack(&config(server.addr, mode, 20));
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
    let _serial = serial();
    let server = common::spawn(
        Duration::from_secs(10),
        common::answer_then_close(Duration::from_millis(100)),
    );
    let mode = AttackMode::Idle {
        hold: Duration::from_millis(300),
    };
    let r = attack(&config(server.addr, mode, 20));
    assert_eq!(r.false_kills, 20, "{r:?}");
    assert_eq!(r.fin_seen, 20, "{r:?}");
}

#[test]
fn a_refused_attack_counts_failed_connects() {
    let _serial = serial();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = attack(&slowloris(addr));
    assert_eq!(r.connect_failed, 40, "{r:?}");
    assert_eq!(r.opened, 0);
}
