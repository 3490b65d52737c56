//! Minimum data rates and the progress-based write deadline, on virtual
//! time: a slow but honest client keeps its connection, a drip does not.

use std::time::Duration;

use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRate, MinRates, MonoTime, Timeouts, TimerAction,
};

const WRITE: Duration = Duration::from_secs(30);
const BODY: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(5);
/// Kestrel's default minimum rate.
const RATE: u32 = 240;

fn ms(ms: u64) -> MonoTime {
    MonoTime::from_nanos(1_000_000_000_000 + ms * 1_000_000)
}

fn rate() -> MinRate {
    MinRate::new(RATE, GRACE)
}

fn timers(rates: MinRates) -> ConnTimers {
    ConnTimers::with_min_rates(
        Timeouts {
            header: Duration::from_secs(10),
            body: BODY,
            idle: Duration::from_secs(60),
            write: WRITE,
            handler: Duration::from_secs(60),
        },
        rates,
    )
}

/// A response whose first send at 0 was short: the server waits on the
/// client from then on.
fn sending() -> ConnTimers {
    let mut c = timers(MinRates {
        body: None,
        send: Some(rate()),
    });
    c.on_send_started(ms(0));
    // Nothing of it acknowledged yet: no credit beyond the grace.
    c.on_send_progress(ms(0), 0, true);
    c
}

/// Drives the timer the way the engine does: fire at the pending instant,
/// re-arm while early, until something expires or `until` passes.
fn run_until(c: &mut ConnTimers, until: MonoTime) -> Option<(DeadlineKind, MonoTime)> {
    let _ = c.plan();
    while let Some(at) = c.pending_timer() {
        if at > until {
            return None;
        }
        match c.on_fire(at) {
            FireOutcome::Expired(kind) => return Some((kind, at)),
            FireOutcome::Rearm(_) => {}
            FireOutcome::Nothing => return None,
        }
    }
    None
}

#[test]
fn send_rate_clock_starts_with_grace_at_the_first_short_send() {
    let mut c = timers(MinRates {
        body: None,
        send: Some(rate()),
    });
    c.on_send_started(ms(0));
    assert_eq!(c.deadline(DeadlineKind::SendRate), None);
    c.on_send_progress(ms(10), 0, true);
    assert_eq!(c.deadline(DeadlineKind::SendRate), Some(ms(5_010)));
}

#[test]
fn bytes_taken_by_the_send_that_starts_the_rate_clock_are_credited() {
    let mut c = timers(MinRates {
        body: None,
        send: Some(rate()),
    });
    c.on_send_started(ms(0));
    // The peer's receive buffer took 2,400 bytes of the first, short send:
    // 10 s at 240 B/s beyond the grace.
    c.on_send_progress(ms(10), 2_400, true);
    assert_eq!(c.deadline(DeadlineKind::SendRate), Some(ms(15_010)));
}

#[test]
fn response_that_leaves_whole_never_starts_the_rate_clock() {
    let mut c = timers(MinRates {
        body: None,
        send: Some(rate()),
    });
    c.on_accept(ms(0));
    let _ = c.plan();
    c.on_head_complete(ms(1), false);
    c.on_send_started(ms(1));
    // Nothing earlier than the pending timer: no update SQE per request.
    assert_eq!(c.plan(), TimerAction::Nothing);
    c.on_send_progress(ms(2), 200, false);
    assert_eq!(c.deadline(DeadlineKind::SendRate), None);
    assert_eq!(c.plan(), TimerAction::Nothing);
}

#[test]
fn reader_keeping_up_with_the_rate_never_expires() {
    let mut c = sending();
    // 240 B/s in 480-byte steps every 2 s, for ten minutes.
    for step in 1..=300u64 {
        let now = ms(step * 2_000);
        assert_eq!(run_until(&mut c, now), None, "expired at step {step}");
        c.on_send_progress(now, 480, true);
    }
}

#[test]
fn stalled_reader_expires_grace_and_its_last_burst_after_that_burst() {
    let mut c = sending();
    // 2,400 bytes taken at 10 ms buy 10 s at 240 B/s, on top of the grace
    // the clock started with; then nothing more.
    c.on_send_progress(ms(10), 2_400, true);
    assert_eq!(c.deadline(DeadlineKind::SendRate), Some(ms(15_000)));
    assert_eq!(
        run_until(&mut c, ms(60_000)),
        Some((DeadlineKind::SendRate, ms(15_000)))
    );
}

#[test]
fn bursty_reader_above_the_rate_outlives_pauses_longer_than_grace() {
    let mut c = sending();
    // curl --limit-rate 20K as the server sees it: half a MiB taken at
    // once, then nothing for 25 s (five times the grace, inside the write
    // timeout), and again, for an hour.
    for burst in 0..144u64 {
        let now = ms(burst * 25_000);
        assert_eq!(run_until(&mut c, now), None, "expired before burst {burst}");
        c.on_send_progress(now, 512 * 1024, true);
    }
}

#[test]
fn bursty_reader_below_the_rate_expires_within_grace_and_one_burst() {
    let mut c = sending();
    // 4 KiB every 20 s is 205 B/s, under the 240 B/s minimum: each burst
    // buys 17 s, so the reader falls 3 s behind per burst.
    let burst = 4096u64;
    let bought = MinRate::new(RATE, GRACE).credit(burst);
    let mut last_burst = ms(0);
    let mut expired = None;
    for step in 0..100u64 {
        let now = ms(step * 20_000);
        if let Some(hit) = run_until(&mut c, now) {
            expired = Some(hit);
            break;
        }
        c.on_send_progress(now, burst, true);
        last_burst = now;
    }
    let (kind, at) = expired.expect("a reader at 205 B/s must not outlive a 240 B/s minimum");
    assert_eq!(kind, DeadlineKind::SendRate);
    assert!(at <= last_burst.saturating_add(GRACE + bought), "{at:?}");
    assert!(at < ms(120_000), "{at:?}");
}

#[test]
fn reader_slower_than_the_rate_expires_though_it_never_stalls() {
    let mut c = sending();
    // 32 bytes every second (a third of the rate's 96 bytes per 0.4 s):
    // never a stall as long as `grace`, yet behind the rate.
    let mut expired = None;
    for step in 1..=120u64 {
        let now = ms(step * 1_000);
        if let Some(hit) = run_until(&mut c, now) {
            expired = Some(hit);
            break;
        }
        c.on_send_progress(now, 32, true);
    }
    let (kind, at) = expired.expect("a reader at 32 B/s must not outlive a 240 B/s minimum");
    assert_eq!(kind, DeadlineKind::SendRate);
    // Behind by 1 - 32/240 s each second, from 5 s of grace: about 5.8 s.
    assert!(at > ms(5_000) && at < ms(7_000), "{at:?}");
}

#[test]
fn progress_never_moves_the_rate_deadline_earlier() {
    let mut c = sending();
    c.on_send_progress(ms(4_000), 240 * 10, true);
    let banked = c.deadline(DeadlineKind::SendRate).unwrap();
    assert_eq!(banked, ms(15_000), "the grace deadline plus 10 s of credit");
    // A transition's `now` may be a batch's stale clock: its lower cap must
    // not pull the deadline in.
    c.on_send_progress(ms(3_000), 1, true);
    assert_eq!(c.deadline(DeadlineKind::SendRate), Some(banked));
}

#[test]
fn write_deadline_bounds_a_stall_not_the_whole_response() {
    let mut c = timers(MinRates::default());
    c.on_send_started(ms(0));
    assert_eq!(c.deadline(DeadlineKind::Write), Some(ms(30_000)));
    // A response that takes 100 s at a steady pace is never cut off.
    for step in 1..=100u64 {
        let now = ms(step * 1_000);
        assert_eq!(run_until(&mut c, now), None, "cut off at {step} s");
        c.on_send_progress(now, 100 * 1024, true);
    }
    // Then it stalls: closed `write` after the last progress.
    assert_eq!(
        run_until(&mut c, ms(1_000_000)),
        Some((DeadlineKind::Write, ms(130_000)))
    );
}

#[test]
fn drained_queue_ends_write_and_send_rate() {
    let mut c = sending();
    c.on_send_drained(ms(100), true);
    assert_eq!(c.deadline(DeadlineKind::Write), None);
    assert_eq!(c.deadline(DeadlineKind::SendRate), None);
    assert!(c.deadline(DeadlineKind::Idle).is_some());
}

#[test]
fn no_configured_rate_arms_no_rate_deadline() {
    let mut c = timers(MinRates::default());
    c.on_head_complete(ms(0), true);
    c.on_send_started(ms(0));
    c.on_send_progress(ms(10), 100, true);
    assert_eq!(c.deadline(DeadlineKind::BodyRate), None);
    assert_eq!(c.deadline(DeadlineKind::SendRate), None);
}

fn receiving_body() -> ConnTimers {
    let mut c = timers(MinRates {
        body: Some(rate()),
        send: None,
    });
    c.on_head_complete(ms(0), true);
    c
}

#[test]
fn slow_body_below_the_rate_expires_before_the_body_deadline() {
    let mut c = receiving_body();
    let mut expired = None;
    for step in 1..=60u64 {
        let now = ms(step * 500);
        if let Some(hit) = run_until(&mut c, now) {
            expired = Some(hit);
            break;
        }
        c.on_body_progress(now, 1);
    }
    let (kind, at) = expired.expect("one byte per 0.5 s is below 240 B/s");
    assert_eq!(kind, DeadlineKind::BodyRate);
    assert!(at < ms(6_000), "{at:?}");
}

#[test]
fn body_rate_clock_stops_while_the_server_is_not_reading() {
    let mut c = receiving_body();
    c.on_reading_paused();
    assert_eq!(c.deadline(DeadlineKind::BodyRate), None);
    // The absolute body deadline keeps running.
    assert_eq!(c.deadline(DeadlineKind::Body), Some(ms(30_000)));
    c.on_reading_resumed(ms(20_000));
    assert_eq!(c.deadline(DeadlineKind::BodyRate), Some(ms(25_000)));
}

#[test]
fn resumed_reading_without_a_body_arms_no_rate() {
    let mut c = timers(MinRates {
        body: Some(rate()),
        send: None,
    });
    c.on_accept(ms(0));
    c.on_reading_resumed(ms(10));
    assert_eq!(c.deadline(DeadlineKind::BodyRate), None);
}

#[test]
fn body_complete_ends_the_body_rate() {
    let mut c = receiving_body();
    c.on_body_complete();
    assert_eq!(c.deadline(DeadlineKind::BodyRate), None);
    assert_eq!(c.plan(), TimerAction::Nothing);
}

#[test]
fn rate_deadline_moving_later_leaves_the_pending_timer_to_fire_early() {
    let mut c = sending();
    assert_eq!(c.plan(), TimerAction::Submit(ms(5_000)));
    c.on_send_progress(ms(1_000), 480, true);
    // Later (2 s of credit): no SQE now; the pending timer fires early
    // and re-arms.
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.on_fire(ms(5_000)), FireOutcome::Rearm(ms(7_000)));
}
