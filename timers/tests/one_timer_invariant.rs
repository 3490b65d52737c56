//! The one-timer invariant, checked over random transition sequences against
//! a simulated kernel timer (virtual time, no io_uring).
//!
//! The simulation plays the engine and the kernel, interleaving at random:
//! protocol and low-level transitions (on the engine's cached batch clock)
//! followed by `plan()`; the kernel
//! applying queued updates; time advancing (never past an armed timer, which
//! fires instead); a timer being cancelled; the engine reaping CQEs in order,
//! with the clock read afresh for a fire. The fire/update race happens in
//! both orders: an update reaching a timer that already fired (its fire CQE
//! not yet reaped) gets `-ENOENT` after the fire CQE; an update reaching a
//! timer that is due but not yet fired gets `-EALREADY` before it.
//!
//! After every step it checks:
//!
//! 1. the model invariant: a live deadline means `pending_timer()` is
//!    `Some(p)` with `p <=` the earliest live deadline;
//! 2. one timer: at most one timer exists in the kernel (armed, or its final
//!    CQE unreaped), and the model believes one is pending exactly when one
//!    exists; `Submit`/`Rearm` only ever happen when none does;
//! 3. agreement: with no update queued, the armed kernel timer expires at
//!    `pending_timer()`;
//! 4. coverage (nothing is enforced late): the earliest live deadline is
//!    covered by an armed timer due at or before it, a queued update to at or
//!    before it, or an unreaped final timer CQE;
//! 5. expiry is honest: `Expired(kind)` names the earliest live deadline,
//!    which has passed by the fresh `now`.
//!
//! Sequences come from a seeded generator; a failure names its seed and the
//! steps that led to it.

use std::collections::VecDeque;
use std::time::Duration;

use ringwall_timers::{
    ConnTimers, DeadlineKind, FireOutcome, MinRate, MinRates, MonoTime, Timeouts, TimerAction,
};

const SEEDS: u64 = 2_000;
const STEPS: usize = 400;

/// SplitMix64: small, seedable, good enough to shuffle transitions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    /// A kind for the low-level `arm` / `clear`: any but the rate kinds,
    /// which arm only with a configured rate and have transitions of their
    /// own.
    fn kind(&mut self) -> DeadlineKind {
        const KINDS: [DeadlineKind; 5] = [
            DeadlineKind::Header,
            DeadlineKind::Body,
            DeadlineKind::Idle,
            DeadlineKind::Write,
            DeadlineKind::Handler,
        ];
        KINDS[self.below(KINDS.len() as u64) as usize]
    }

    /// A timeout of 0..=50 ms in whole microseconds (zero included).
    fn timeout(&mut self) -> Duration {
        Duration::from_micros(self.below(50_001))
    }
}

/// A completion the engine has not reaped yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cqe {
    /// The timer's own CQE, `-ETIME`.
    Fire,
    /// The timer's own CQE, `-ECANCELED`.
    TimerGone,
    /// The update operation's CQE (`0`, `-ENOENT` or `-EALREADY`).
    Update(&'static str),
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: MonoTime,
    /// The engine's cached clock, read at the top of a batch: transitions
    /// use it (and may arm deadlines already in the kernel's past); timer
    /// fires never do.
    batch_now: MonoTime,
    conn: ConnTimers,
    /// The armed `IORING_OP_TIMEOUT`, if any.
    timer: Option<MonoTime>,
    /// Updates submitted but not yet applied by the kernel, oldest first.
    updates: VecDeque<MonoTime>,
    cq: VecDeque<Cqe>,
    trace: Vec<String>,
    /// Connections closed by an expiry so far; the slot is then reused by a
    /// fresh connection with the same timeouts.
    expired: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let timeouts = Timeouts {
            header: rng.timeout(),
            body: rng.timeout(),
            idle: rng.timeout(),
            write: rng.timeout(),
            handler: rng.timeout(),
        };
        let rate = |rng: &mut Rng| {
            rng.bool()
                .then(|| MinRate::new(1 + rng.below(100_000) as u32, rng.timeout()))
        };
        let rates = MinRates {
            body: rate(&mut rng),
            send: rate(&mut rng),
        };
        // Start far from zero so a saturating subtraction would show.
        let now = MonoTime::from_nanos(1_000_000_000 + rng.below(1_000_000));
        Sim {
            seed,
            rng,
            now,
            batch_now: now,
            conn: ConnTimers::with_min_rates(timeouts, rates),
            timer: None,
            updates: VecDeque::new(),
            cq: VecDeque::new(),
            trace: vec![format!("{timeouts:?} {rates:?}")],
            expired: 0,
        }
    }

    fn fail(&self, why: &str) -> ! {
        let tail = self.trace.len().saturating_sub(60);
        panic!(
            "seed {}: {why}\nnow {:?}\nconn {:?}\nkernel timer {:?} updates {:?} cq {:?}\nsteps:\n  {}",
            self.seed,
            self.now,
            self.conn,
            self.timer,
            self.updates,
            self.cq,
            self.trace[tail..].join("\n  ")
        );
    }

    fn log(&mut self, step: String) {
        self.trace.push(format!("@{} {step}", self.now.as_nanos()));
    }

    /// Timers that exist in the kernel: the armed one, plus any whose final
    /// CQE is not reaped yet.
    fn timers_in_kernel(&self) -> usize {
        usize::from(self.timer.is_some())
            + self
                .cq
                .iter()
                .filter(|c| matches!(c, Cqe::Fire | Cqe::TimerGone))
                .count()
    }

    fn submit(&mut self, at: MonoTime, what: &str) {
        // The kernel consumes SQEs in ring order: an update queued before
        // this timeout SQE reaches the old timer (or finds none), never the
        // new one, although both carry the same user_data.
        while !self.updates.is_empty() {
            self.apply_update();
        }
        if self.timers_in_kernel() != 0 {
            self.fail(&format!(
                "{what}({at:?}) while a timer exists: a second timer"
            ));
        }
        self.timer = Some(at);
    }

    /// The engine's `sync_timer`: plan, then carry it out.
    fn plan(&mut self) {
        let action = self.conn.plan();
        self.log(format!("plan -> {action:?}"));
        match action {
            TimerAction::Nothing => {}
            TimerAction::Submit(at) => self.submit(at, "Submit"),
            TimerAction::Update(at) => {
                if self.timers_in_kernel() == 0 {
                    self.fail("Update with no timer in the kernel");
                }
                self.updates.push_back(at);
            }
        }
        // Rule 1, right after plan().
        if let Some((_, earliest)) = self.conn.earliest() {
            match self.conn.pending_timer() {
                Some(p) if p <= earliest => {}
                other => self.fail(&format!(
                    "after plan: pending {other:?}, earliest {earliest:?}"
                )),
            }
        }
    }

    fn transition(&mut self) {
        let now = self.batch_now;
        let c = &mut self.conn;
        let step = match self.rng.below(19) {
            0 => {
                c.on_accept(now);
                "on_accept".to_string()
            }
            1 | 2 => {
                c.on_request_bytes(now);
                "on_request_bytes".to_string()
            }
            3 | 4 => {
                c.on_head_started(now);
                "on_head_started".to_string()
            }
            5 => {
                let body = self.rng.bool();
                c.on_head_complete(now, body);
                format!("on_head_complete(body {body})")
            }
            6 => {
                c.on_body_complete();
                "on_body_complete".to_string()
            }
            7 => {
                c.on_send_started(now);
                "on_send_started".to_string()
            }
            8 => {
                let idle = self.rng.bool();
                c.on_send_drained(now, idle);
                format!("on_send_drained(keep_alive_idle {idle})")
            }
            9 | 10 => {
                let kind = self.rng.kind();
                let before = c.clone();
                let armed = c.arm(kind, now);
                if armed == before.deadline(kind).is_some() {
                    self.fail("arm's answer disagrees with the deadline it found");
                }
                if !armed && *c != before {
                    self.fail("a refused arm changed the model");
                }
                format!("arm({kind:?}) -> {armed}")
            }
            11 => {
                let kind = self.rng.kind();
                c.clear(kind);
                format!("clear({kind:?})")
            }
            13 => {
                let bytes = self.rng.below(1 << 20);
                let short = self.rng.bool();
                c.on_send_progress(now, bytes, short);
                format!("on_send_progress({bytes}, short {short})")
            }
            14 => {
                let bytes = self.rng.below(1 << 16);
                c.on_body_progress(now, bytes);
                format!("on_body_progress({bytes})")
            }
            15 => {
                c.on_reading_paused();
                "on_reading_paused".to_string()
            }
            16 => {
                c.on_reading_resumed(now);
                "on_reading_resumed".to_string()
            }
            17 => {
                c.on_handler_started(now);
                let client_side = [
                    DeadlineKind::Header,
                    DeadlineKind::Idle,
                    DeadlineKind::Body,
                    DeadlineKind::BodyRate,
                ];
                if let Some(kind) = client_side.into_iter().find(|&k| c.deadline(k).is_some()) {
                    self.fail(&format!(
                        "{kind:?} still runs while the handler has the request"
                    ));
                }
                if c.deadline(DeadlineKind::Handler).is_none() {
                    self.fail("on_handler_started left the handler deadline unarmed");
                }
                "on_handler_started".to_string()
            }
            18 => {
                c.on_handler_answered();
                if c.deadline(DeadlineKind::Handler).is_some() {
                    self.fail("on_handler_answered left the handler deadline armed");
                }
                "on_handler_answered".to_string()
            }
            _ => {
                c.clear_all();
                "clear_all".to_string()
            }
        };
        self.log(step);
        self.plan();
    }

    /// The kernel applies the oldest queued update.
    fn apply_update(&mut self) {
        let Some(at) = self.updates.pop_front() else {
            return;
        };
        match self.timer {
            Some(expiry) if expiry <= self.now => {
                // Due and firing as the update arrives: -EALREADY, and the
                // fire CQE follows.
                self.cq.push_back(Cqe::Update("-EALREADY"));
                self.timer = None;
                self.cq.push_back(Cqe::Fire);
                self.log(format!("kernel: update({at:?}) -EALREADY, timer fires"));
            }
            Some(_) => {
                self.timer = Some(at);
                self.cq.push_back(Cqe::Update("0"));
                self.log(format!("kernel: update({at:?}) applied"));
            }
            None => {
                self.cq.push_back(Cqe::Update("-ENOENT"));
                self.log(format!("kernel: update({at:?}) -ENOENT"));
            }
        }
    }

    /// A due timer fires.
    fn fire_due(&mut self) {
        if self.timer.is_some_and(|t| t <= self.now) {
            self.timer = None;
            self.cq.push_back(Cqe::Fire);
            self.log("kernel: timer fires".to_string());
        }
    }

    /// Time moves on: by a random step, or straight to the next deadline.
    /// Queued updates reach the kernel first (they were submitted at an
    /// earlier instant), and time stops at an armed timer, which fires.
    fn advance(&mut self) {
        while !self.updates.is_empty() {
            self.apply_update();
        }
        self.fire_due();
        let target = match self.rng.below(3) {
            0 => self
                .conn
                .earliest()
                .map_or(self.now, |(_, at)| at.max(self.now)),
            _ => self
                .now
                .saturating_add(Duration::from_micros(self.rng.below(20_001))),
        };
        let target = match self.timer {
            Some(t) if t < target => t,
            _ => target,
        };
        self.now = target;
        self.log("advance".to_string());
        self.fire_due();
    }

    /// The timer is cancelled or fails (`-ECANCELED`).
    fn cancel_timer(&mut self) {
        if self.timer.take().is_some() {
            self.cq.push_back(Cqe::TimerGone);
            self.log("kernel: timer cancelled".to_string());
        }
    }

    /// The connection closed on expiry; the next one takes the slot. No timer
    /// exists (rule 2 held for the old one); updates it left queued find
    /// nothing (they name the old generation).
    fn reuse_slot(&mut self) {
        while !self.updates.is_empty() {
            self.apply_update();
        }
        self.conn = ConnTimers::with_min_rates(self.conn.timeouts(), self.conn.min_rates());
        self.batch_now = self.now;
        self.conn.on_accept(self.now);
        self.log("close; slot reused: on_accept".to_string());
        self.plan();
    }

    /// The engine reaps the oldest CQE.
    fn reap(&mut self) {
        let Some(cqe) = self.cq.pop_front() else {
            return;
        };
        match cqe {
            // Whatever the update's result, the model is not told.
            Cqe::Update(res) => self.log(format!("reap update {res}: ignored")),
            Cqe::TimerGone => {
                self.conn.on_timer_gone();
                self.log("reap -ECANCELED: on_timer_gone".to_string());
                self.plan();
            }
            Cqe::Fire => {
                let before = self.conn.clone();
                // The clock is read afresh: the simulation's now.
                let outcome = self.conn.on_fire(self.now);
                self.log(format!("reap -ETIME: on_fire -> {outcome:?}"));
                match outcome {
                    FireOutcome::Expired(kind) => {
                        // Rule 5.
                        match (before.earliest(), before.deadline(kind)) {
                            (Some((first, at)), Some(d))
                                if first == kind && d == at && d <= self.now => {}
                            other => self.fail(&format!("Expired({kind:?}) but {other:?}")),
                        }
                        if self.conn.earliest().is_some() || self.conn.pending_timer().is_some() {
                            self.fail("Expired left a deadline or a timer behind");
                        }
                        self.expired += 1;
                        self.reuse_slot();
                        return;
                    }
                    FireOutcome::Rearm(at) => {
                        match before.earliest() {
                            Some((_, e)) if e == at && at > self.now => {}
                            other => self.fail(&format!("Rearm({at:?}) but earliest {other:?}")),
                        }
                        self.submit(at, "Rearm");
                    }
                    FireOutcome::Nothing => {
                        if before.earliest().is_some() {
                            self.fail("Nothing with a live deadline");
                        }
                    }
                }
                self.plan();
            }
        }
    }

    fn check(&self) {
        let in_kernel = self.timers_in_kernel();
        // Rule 2.
        if in_kernel > 1 {
            self.fail("two timers in the kernel");
        }
        if self.conn.pending_timer().is_some() != (in_kernel == 1) {
            self.fail("the model and the kernel disagree on whether a timer exists");
        }
        // Rule 3.
        if let (Some(armed), true) = (self.timer, self.updates.is_empty()) {
            if self.conn.pending_timer() != Some(armed) {
                self.fail("the armed timer is not the one the model believes");
            }
        }
        // Rule 4 (and rule 1 between steps).
        if let Some((_, earliest)) = self.conn.earliest() {
            if self.conn.pending_timer().is_none_or(|p| p > earliest) {
                self.fail("pending timer later than the earliest live deadline");
            }
            let covered = self
                .cq
                .iter()
                .any(|c| matches!(c, Cqe::Fire | Cqe::TimerGone))
                || self.timer.is_some_and(|t| t <= earliest)
                || self.updates.iter().any(|&u| u <= earliest);
            if !covered {
                self.fail("the earliest live deadline has no timer due at or before it");
            }
        }
    }

    fn run(mut self) -> Stats {
        let mut stats = Stats::default();
        for _ in 0..STEPS {
            match self.rng.below(20) {
                0..=8 => self.transition(),
                9 => self.apply_update(),
                10 => {
                    self.batch_now = self.now;
                    self.log("engine: new batch, clock read".to_string());
                }
                11..=14 => self.advance(),
                15 => self.cancel_timer(),
                _ => self.reap(),
            }
            self.check();
        }
        for step in &self.trace {
            stats.count(step);
        }
        stats.expired += self.expired;
        stats
    }
}

/// How often each interesting path was taken, so a change that stops the
/// simulation from reaching a race is noticed.
#[derive(Default)]
struct Stats {
    expired: u64,
    rearms: u64,
    updates: u64,
    enoent: u64,
    ealready: u64,
    gone: u64,
    handler_expiries: u64,
}

impl Stats {
    fn count(&mut self, step: &str) {
        self.rearms += u64::from(step.contains("Rearm("));
        self.updates += u64::from(step.contains("plan -> Update"));
        self.enoent += u64::from(step.contains("reap update -ENOENT"));
        self.ealready += u64::from(step.contains("reap update -EALREADY"));
        self.gone += u64::from(step.contains("on_timer_gone"));
        self.handler_expiries += u64::from(step.contains("Expired(Handler)"));
    }

    fn add(&mut self, o: Stats) {
        self.expired += o.expired;
        self.rearms += o.rearms;
        self.updates += o.updates;
        self.enoent += o.enoent;
        self.ealready += o.ealready;
        self.gone += o.gone;
        self.handler_expiries += o.handler_expiries;
    }
}

#[test]
fn one_timer_invariant_holds_over_random_transition_sequences() {
    let mut total = Stats::default();
    for seed in 0..SEEDS {
        total.add(Sim::new(seed).run());
    }
    // The races must actually have been exercised, in both orders.
    let paths = [
        ("expiries", total.expired),
        ("re-arms after an early fire", total.rearms),
        ("updates", total.updates),
        (
            "updates losing to the fire (-ENOENT after the fire CQE)",
            total.enoent,
        ),
        (
            "updates losing to the fire (-EALREADY before the fire CQE)",
            total.ealready,
        ),
        ("cancelled timers", total.gone),
        ("handler deadline expiries", total.handler_expiries),
    ];
    for (what, n) in paths {
        println!("{n:>7} {what}");
    }
    for (what, n) in paths {
        assert!(n >= 20, "only {n} {what} in {SEEDS} sequences");
    }
}
