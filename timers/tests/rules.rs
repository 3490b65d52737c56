//! One test per deadline rule, on virtual time (microseconds, no sleeping).
//! Each drives the public API the way the engine does: transitions, then
//! `plan()`, then a timer fire at the instant the kernel would deliver it.

use std::time::Duration;

use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRate, MinRates, MonoTime, Timeouts, TimerAction,
};

const HEADER: Duration = Duration::from_secs(10);
const BODY: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(60);
const WRITE: Duration = Duration::from_secs(20);
const HANDLER: Duration = Duration::from_secs(45);

/// Virtual time: `us` microseconds after boot.
fn t(us: u64) -> MonoTime {
    MonoTime::from_nanos(us * 1_000)
}

/// Virtual time in whole seconds.
fn s(secs: u64) -> MonoTime {
    t(secs * 1_000_000)
}

fn timers() -> ConnTimers {
    ConnTimers::new(Timeouts {
        header: HEADER,
        body: BODY,
        idle: IDLE,
        write: WRITE,
        handler: HANDLER,
    })
}

/// A connection accepted at `at`, with its first kernel timer submitted.
fn accepted(at: MonoTime) -> ConnTimers {
    let mut c = timers();
    c.on_accept(at);
    assert_eq!(c.plan(), TimerAction::Submit(at.saturating_add(HEADER)));
    c
}

/// A keep-alive connection that answered one request and went idle at `at`;
/// its kernel timer is the one submitted at accept (time 0).
fn idle_since(at: MonoTime) -> ConnTimers {
    let mut c = accepted(s(0));
    c.on_request_bytes(t(1));
    c.on_head_complete(t(1), false);
    c.on_send_started(t(2));
    c.on_send_drained(at, true);
    assert_eq!(c.plan(), TimerAction::Nothing);
    c
}

#[test]
fn drip_bytes_do_not_extend_header_deadline() {
    let mut c = accepted(s(0));
    // One byte a second, the head never completing.
    for sec in 1..10 {
        c.on_request_bytes(s(sec));
        c.on_head_started(s(sec));
        assert_eq!(c.plan(), TimerAction::Nothing, "drip at {sec}s");
        assert_eq!(c.deadline(DeadlineKind::Header), Some(s(10)));
    }
    assert_eq!(c.on_fire(s(10)), FireOutcome::Expired(DeadlineKind::Header));
}

#[test]
fn second_arm_does_not_move_deadline() {
    let mut c = timers();
    assert!(c.arm(DeadlineKind::Header, s(0)));
    let before = c.clone();
    assert!(!c.arm(DeadlineKind::Header, s(5)));
    assert_eq!(c, before, "a refused arm changes nothing");
    assert_eq!(c.deadline(DeadlineKind::Header), Some(s(10)));
}

#[test]
fn keep_alive_idle_is_never_judged_by_header_deadline() {
    // The idle timeout (60 s) is longer than the header timeout (10 s): a
    // client idling 30 s between requests is well-behaved and must live.
    let mut c = idle_since(s(1));
    // The accept-time timer (10 s) fires first: early, re-armed for idle.
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(61)));
    // Well past any header timeout measured from the last activity, the
    // next request arrives whole and is served.
    c.on_request_bytes(s(30));
    c.on_head_complete(s(30), false);
    c.on_send_started(s(30));
    c.on_send_drained(s(31), true);
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.on_fire(s(61)), FireOutcome::Rearm(s(91)));
    assert_eq!(c.on_fire(s(91)), FireOutcome::Expired(DeadlineKind::Idle));
}

#[test]
fn idle_connection_has_no_header_deadline() {
    let c = idle_since(s(1));
    assert_eq!(c.deadline(DeadlineKind::Header), None);
    assert_eq!(c.deadline(DeadlineKind::Idle), Some(s(61)));
    assert_eq!(c.earliest(), Some((DeadlineKind::Idle, s(61))));
}

#[test]
fn head_arriving_whole_never_touches_the_timer() {
    // The idle timer is pending (re-armed for 61 s after the accept timer's
    // early fire). A whole head arrives in one recv: the engine does not call
    // on_head_started, and nothing is submitted or updated.
    let mut c = idle_since(s(1));
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(61)));
    c.on_request_bytes(s(20));
    c.on_head_complete(s(20), false);
    assert_eq!(c.deadline(DeadlineKind::Header), None);
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.pending_timer(), Some(s(61)));
}

#[test]
fn first_byte_after_idle_starts_header_deadline() {
    // An idle keep-alive connection fed bytes that never make a head as the
    // decoder sees it (say, one CRLF at a time, which RFC 9112 2.2 lets a
    // server skip): the engine never calls on_head_started, yet the header
    // deadline runs from the first byte and is not extended by the rest.
    let mut c = idle_since(s(1));
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(61)));
    c.on_request_bytes(s(20));
    assert_eq!(c.deadline(DeadlineKind::Idle), None);
    assert_eq!(c.deadline(DeadlineKind::Header), Some(s(30)));
    assert_eq!(c.plan(), TimerAction::Update(s(30)));
    for sec in 21..30 {
        c.on_request_bytes(s(sec));
        assert_eq!(c.plan(), TimerAction::Nothing, "drip at {sec}s");
    }
    assert_eq!(c.on_fire(s(30)), FireOutcome::Expired(DeadlineKind::Header));
}

#[test]
fn body_bytes_start_no_header_deadline() {
    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    c.on_request_bytes(s(2));
    assert_eq!(c.deadline(DeadlineKind::Header), None);
}

#[test]
fn fire_after_clear_is_a_no_op() {
    let mut c = accepted(s(0));
    // The head arrives whole: the header deadline ends, nothing else is live.
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), false);
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.on_fire(s(10)), FireOutcome::Nothing);
    assert_eq!(c.pending_timer(), None);
    assert_eq!(c.plan(), TimerAction::Nothing);
}

#[test]
fn early_fire_rearms_for_current_deadline() {
    let mut c = accepted(s(0));
    // Head complete at 1 s with a body: header cleared, body due at 31 s.
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    assert_eq!(c.plan(), TimerAction::Nothing);
    // The 10 s timer fires early; the body deadline is what is live now.
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(31)));
    assert_eq!(c.pending_timer(), Some(s(31)));
    assert_eq!(
        c.plan(),
        TimerAction::Nothing,
        "the re-arm is the one timer"
    );
    assert_eq!(c.on_fire(s(31)), FireOutcome::Expired(DeadlineKind::Body));
}

#[test]
fn rearm_while_timer_in_flight_neither_duplicates_nor_moves_it() {
    let mut c = accepted(s(0));
    // Arming again while the timer is in flight: no second timer (Submit),
    // no move (Update), same deadline.
    c.on_request_bytes(s(3));
    c.on_head_started(s(3));
    assert!(!c.arm(DeadlineKind::Header, s(4)));
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.pending_timer(), Some(s(10)));
    assert_eq!(c.deadline(DeadlineKind::Header), Some(s(10)));
}

#[test]
fn earlier_deadline_than_pending_timer_causes_update() {
    let mut c = idle_since(s(1));
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(61)));
    // A partial head on the idle connection: header due at 30 s, before the
    // idle timer at 61 s.
    c.on_request_bytes(s(20));
    c.on_head_started(s(20));
    assert_eq!(c.plan(), TimerAction::Update(s(30)));
    assert_eq!(c.pending_timer(), Some(s(30)));
    assert_eq!(c.on_fire(s(30)), FireOutcome::Expired(DeadlineKind::Header));
}

#[test]
fn later_deadline_leaves_pending_timer() {
    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    c.on_send_started(s(1));
    // Body (31 s) and write (21 s) are both later than the 10 s timer.
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.pending_timer(), Some(s(10)));
}

#[test]
fn header_timeout_cannot_be_bypassed_by_partial_pipelined_request() {
    let mut c = accepted(s(0));
    // One recv at 1 s: request 1 whole, then the first bytes of request 2.
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), false);
    c.on_head_started(s(1));
    // Response 1 is sent and drains; request 2 is in progress, not idle.
    c.on_send_started(s(1));
    c.on_send_drained(t(1_000_500), false);
    assert_eq!(c.plan(), TimerAction::Nothing);
    assert_eq!(c.deadline(DeadlineKind::Header), Some(s(11)));
    // Request 2 drips one byte a second and never completes.
    for sec in 2..11 {
        c.on_request_bytes(s(sec));
        c.on_head_started(s(sec));
        assert_eq!(c.plan(), TimerAction::Nothing, "drip at {sec}s");
    }
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(11)));
    assert_eq!(c.on_fire(s(11)), FireOutcome::Expired(DeadlineKind::Header));
}

#[test]
fn idle_is_not_armed_while_a_request_is_in_progress() {
    // Even if the engine claims the connection is idle, a live header (or
    // body) deadline means a request is in progress: idle must not be armed
    // beside it (an idle deadline shorter than the header's would close a
    // request in progress; a longer one is noise).
    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), false);
    c.on_head_started(s(1));
    c.on_send_started(s(1));
    c.on_send_drained(s(2), true);
    assert_eq!(c.deadline(DeadlineKind::Idle), None);

    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    c.on_send_started(s(1)); // 100 Continue
    c.on_send_drained(s(2), true);
    assert_eq!(c.deadline(DeadlineKind::Idle), None);
    assert_eq!(c.deadline(DeadlineKind::Body), Some(s(31)));
}

#[test]
fn body_deadline_armed_only_when_body_announced() {
    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), false);
    assert_eq!(c.deadline(DeadlineKind::Body), None);

    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    assert_eq!(c.deadline(DeadlineKind::Body), Some(s(31)));
    // Body bytes trickling in do not extend it.
    c.on_request_bytes(s(5));
    assert_eq!(c.deadline(DeadlineKind::Body), Some(s(31)));
    c.on_body_complete();
    assert_eq!(c.deadline(DeadlineKind::Body), None);
}

#[test]
fn write_deadline_cleared_when_send_drains() {
    let mut c = timers();
    c.on_send_started(s(0));
    assert_eq!(c.plan(), TimerAction::Submit(s(20)));
    // More responses queued behind the first do not extend it.
    c.on_send_started(s(5));
    assert_eq!(c.deadline(DeadlineKind::Write), Some(s(20)));
    c.on_send_drained(s(6), false);
    assert_eq!(c.deadline(DeadlineKind::Write), None);
    assert_eq!(c.earliest(), None, "not keep-alive: nothing else is armed");
    assert_eq!(c.on_fire(s(20)), FireOutcome::Nothing);
}

#[test]
fn expired_reports_the_earliest_kind() {
    let mut c = timers();
    c.on_send_started(s(0)); // write due at 20 s
    assert_eq!(c.plan(), TimerAction::Submit(s(20)));
    c.on_head_started(s(5)); // header due at 15 s
    assert_eq!(c.plan(), TimerAction::Update(s(15)));
    // Reaped late: both have passed; the earlier one is the cause.
    assert_eq!(c.on_fire(s(25)), FireOutcome::Expired(DeadlineKind::Header));
}

#[test]
fn ties_are_reported_in_all_order() {
    let same = Duration::from_secs(7);
    let mut c = ConnTimers::new(Timeouts::uniform(same));
    // Armed in reverse order, so insertion order cannot be what decides.
    // Every kind but the rate kinds, which exist only with rates (their
    // place in the order is pinned in rates.rs).
    let kinds: Vec<DeadlineKind> = DeadlineKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, DeadlineKind::BodyRate | DeadlineKind::SendRate))
        .collect();
    for &kind in kinds.iter().rev() {
        c.arm(kind, s(0));
    }
    for &kind in &kinds {
        assert_eq!(c.earliest(), Some((kind, s(7))));
        let mut fired = c.clone();
        assert_eq!(fired.on_fire(s(7)), FireOutcome::Expired(kind));
        c.clear(kind);
    }
}

#[test]
fn expired_clears_every_deadline_so_plan_submits_nothing() {
    let mut c = accepted(s(0));
    c.on_send_started(s(1));
    assert_eq!(c.on_fire(s(10)), FireOutcome::Expired(DeadlineKind::Header));
    assert_eq!(c.earliest(), None);
    assert_eq!(c.pending_timer(), None);
    // The engine closes; a plan() on the way must not submit a timer for a
    // closing connection (it would fire at once, again and again).
    assert_eq!(c.plan(), TimerAction::Nothing);
    // A deadline armed afterwards (bounding a last response) gets a timer.
    c.on_send_started(s(10));
    assert_eq!(c.plan(), TimerAction::Submit(s(30)));
}

#[test]
fn fire_with_stale_now_is_not_trusted() {
    // The kernel fires the 10 s timer exactly at the deadline, but the CQE is
    // handled with the clock read at the top of a batch 60 ms earlier.
    let c = accepted(s(0));
    let stale_now = t(9_940_000);

    let mut stale = c.clone();
    // Judged by the stale clock, a due deadline looks early: the connection
    // survives a fire that should have closed it.
    assert_eq!(stale.on_fire(stale_now), FireOutcome::Rearm(s(10)));
    // The re-arm is for the absolute deadline, not stale_now + timeout (seed
    // 001 re-armed a fresh timeout): the cost is bounded to one round trip.
    assert_eq!(stale.pending_timer(), Some(s(10)));

    // With the clock read afresh for the CQE, it closes on time.
    let mut fresh = c.clone();
    assert_eq!(
        fresh.on_fire(s(10)),
        FireOutcome::Expired(DeadlineKind::Header)
    );
}

#[test]
fn update_failure_then_fire_replans() {
    // An idle connection whose timer is due at 61 s; a partial head at 55 s
    // with a 2 s header timeout moves it earlier.
    let mut c = ConnTimers::new(Timeouts {
        header: Duration::from_secs(2),
        body: BODY,
        idle: IDLE,
        write: WRITE,
        handler: HANDLER,
    });
    c.on_accept(s(0));
    assert_eq!(c.plan(), TimerAction::Submit(s(2)));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), false);
    c.on_send_started(s(1));
    c.on_send_drained(s(1), true);
    assert_eq!(c.on_fire(s(2)), FireOutcome::Rearm(s(61)));
    c.on_request_bytes(s(55));
    c.on_head_started(s(55));
    assert_eq!(c.plan(), TimerAction::Update(s(57)));

    // The update's CQE says -ENOENT (the timer had fired; its -ETIME CQE is
    // on its way, before or after the update's). The engine ignores the
    // update CQE: no call into the model. Then the fire is handled.

    // Case 1: the header deadline is still live and has passed: closes.
    let mut live = c.clone();
    assert_eq!(
        live.on_fire(s(61)),
        FireOutcome::Expired(DeadlineKind::Header)
    );

    // Case 2: the head completed and the connection went idle again before
    // the fire was handled: re-plan for what is live now.
    let mut moved_on = c.clone();
    moved_on.on_request_bytes(s(56));
    moved_on.on_head_complete(s(56), false);
    moved_on.on_send_started(s(56));
    moved_on.on_send_drained(s(56), true);
    assert_eq!(moved_on.plan(), TimerAction::Nothing);
    assert_eq!(moved_on.on_fire(s(61)), FireOutcome::Rearm(s(116)));
    // An update CQE reaped after the re-arm is still ignored: the model holds
    // exactly the re-armed timer, and plan() adds no second one.
    assert_eq!(moved_on.pending_timer(), Some(s(116)));
    assert_eq!(moved_on.plan(), TimerAction::Nothing);
}

#[test]
fn timer_gone_then_plan_resubmits() {
    let mut c = accepted(s(0));
    // The timer's CQE says -ECANCELED: no timer is in flight.
    c.on_timer_gone();
    assert_eq!(c.pending_timer(), None);
    assert_eq!(c.plan(), TimerAction::Submit(s(10)));
}

#[test]
fn clear_all_disarms_every_deadline_and_keeps_the_timer() {
    let mut c = accepted(s(0));
    c.on_send_started(s(1));
    c.clear_all();
    assert_eq!(c.earliest(), None);
    for kind in DeadlineKind::ALL {
        assert_eq!(c.deadline(kind), None, "{}", kind.name());
    }
    // The kernel timer is still in flight; it will fire early.
    assert_eq!(c.pending_timer(), Some(s(10)));
    assert_eq!(c.plan(), TimerAction::Nothing);
}

/// A connection whose request (head at 1 s, a 10-byte body still arriving)
/// has its header timer in flight from accept, due at 10 s.
fn receiving_body() -> ConnTimers {
    let mut c = accepted(s(0));
    c.on_request_bytes(s(1));
    c.on_head_complete(s(1), true);
    assert_eq!(c.deadline(DeadlineKind::Body), Some(s(31)));
    assert_eq!(c.plan(), TimerAction::Nothing);
    c
}

#[test]
fn handler_started_ends_every_request_deadline() {
    let mut c = receiving_body();
    c.on_body_complete();
    // A partial head of the next request started the header clock again:
    // it too is no longer the client's to finish while the handler works.
    c.on_head_started(s(2));
    c.on_handler_started(s(3));
    for kind in [
        DeadlineKind::Header,
        DeadlineKind::Idle,
        DeadlineKind::Body,
        DeadlineKind::BodyRate,
    ] {
        assert_eq!(c.deadline(kind), None, "{}", kind.name());
    }
    assert_eq!(c.earliest(), Some((DeadlineKind::Handler, s(48))));
}

#[test]
fn client_waiting_on_a_slow_handler_outlives_the_header_and_body_timeouts() {
    let mut c = receiving_body();
    c.on_body_complete();
    c.on_handler_started(s(2));
    assert_eq!(c.plan(), TimerAction::Nothing, "the 10 s timer fires early");
    // Past the header (10 s) and body (31 s) deadlines, the client is only
    // waiting: the fires re-arm for the handler deadline.
    assert_eq!(c.on_fire(s(10)), FireOutcome::Rearm(s(47)));
    assert_eq!(
        c.on_fire(s(47)),
        FireOutcome::Expired(DeadlineKind::Handler)
    );
}

#[test]
fn handler_started_arms_once_like_every_deadline() {
    let mut c = timers();
    c.on_handler_started(s(0));
    c.on_handler_started(s(30));
    assert_eq!(c.deadline(DeadlineKind::Handler), Some(s(45)));
}

#[test]
fn streamed_response_after_the_head_is_bounded_by_write_not_handler() {
    let mut c = timers();
    c.on_handler_started(s(0));
    // The head arrives at 10 s and an event stream follows for ten
    // minutes, well past the 45 s handler timeout, a send making progress
    // every 15 s.
    c.on_handler_answered();
    c.on_send_started(s(10));
    for sec in (25..=595).step_by(15) {
        c.on_send_progress(s(sec), 100, false);
        let mut fired = c.clone();
        assert!(
            matches!(fired.on_fire(s(sec)), FireOutcome::Rearm(_)),
            "the stream is cut at {sec} s"
        );
    }
    // It stalls after its last send: the write deadline closes it.
    assert_eq!(c.earliest(), Some((DeadlineKind::Write, s(615))));
    assert_eq!(c.on_fire(s(615)), FireOutcome::Expired(DeadlineKind::Write));
}

#[test]
fn earlier_response_draining_does_not_start_idle_under_the_handler() {
    // Idle shorter than the handler timeout: an idle clock armed here would
    // close the connection while the handler still works.
    let mut c = ConnTimers::new(Timeouts {
        idle: Duration::from_secs(5),
        ..Timeouts::uniform(HANDLER)
    });
    // Response 1 is still leaving when pipelined request 2 goes to its
    // handler; then response 1 drains, keep-alive.
    c.on_send_started(s(0));
    c.on_handler_started(s(1));
    c.on_send_drained(s(2), true);
    assert_eq!(c.deadline(DeadlineKind::Idle), None);
    assert_eq!(c.earliest(), Some((DeadlineKind::Handler, s(46))));
}

#[test]
fn handler_tie_with_a_send_deadline_reports_the_send_deadline() {
    // A stalled earlier response is the client's fault, and its close is
    // the right one: a 503 behind unread bytes would never arrive.
    let same = Duration::from_secs(7);
    let rates = MinRates {
        body: None,
        send: Some(MinRate::new(100, same)),
    };
    let mut stalled = ConnTimers::with_min_rates(Timeouts::uniform(same), rates);
    stalled.on_handler_started(s(0));
    stalled.on_send_started(s(0));
    assert_eq!(
        stalled.on_fire(s(7)),
        FireOutcome::Expired(DeadlineKind::Write)
    );

    let mut slow = ConnTimers::with_min_rates(Timeouts::uniform(same), rates);
    slow.on_handler_started(s(0));
    // A short send with no write deadline armed: only the rate clock runs.
    slow.on_send_progress(s(0), 0, true);
    assert_eq!(slow.deadline(DeadlineKind::Write), None);
    assert_eq!(
        slow.on_fire(s(7)),
        FireOutcome::Expired(DeadlineKind::SendRate)
    );
}
