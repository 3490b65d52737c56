//! ringwall-timers: one connection's deadlines and its one kernel timer, as a
//! pure state machine.
//!
//! The engine keeps a [`ConnTimers`] per connection. After each protocol
//! transition it calls [`ConnTimers::plan`] and carries out the
//! [`TimerAction`] with io_uring; when the timer's CQE arrives it reads the
//! clock and calls [`ConnTimers::on_fire`], which either expires a deadline
//! or asks for a re-arm:
//!
//! ```text
//!                 on_accept / on_request_bytes / on_head_started /
//!                 on_head_complete / on_body_complete /
//!                 on_handler_started / on_handler_answered /
//!     engine      on_send_started / on_send_drained   (now)
//!   ┌─────────┐ ─────────────────────────────────────────► ┌──────────────┐
//!   │         │                  plan()                    │  ConnTimers  │
//!   │         │ ◄── TimerAction ───────────────────────────│ header  body │
//!   │         │     Submit(t): IORING_OP_TIMEOUT, ABS      │ idle   write │
//!   │         │     Update(t): TIMEOUT_REMOVE + UPDATE     │ handler rates│
//!   │         │     Nothing                                │ pending timer│
//!   │         │                                            └──────────────┘
//!   │         │                                                   ▲
//!   │         │  timer CQE -ETIME ──► on_fire(fresh now) ─────────┤
//!   │         │  ◄── FireOutcome: Expired(kind) → close           │
//!   │         │                   Rearm(t)      → submit          │
//!   │         │  timer CQE -ECANCELED ──► on_timer_gone(); plan() ┘
//!   └─────────┘
//! ```
//!
//! Deadlines are absolute instants on CLOCK_MONOTONIC ([`MonoTime`]), the
//! clock `IORING_TIMEOUT_ABS` uses, so the model's deadline is the kernel's
//! expiry to the nanosecond. The rules (each a bug that shipped somewhere;
//! see ARCHITECTURE.md, "Deadline rules"):
//!
//! - a deadline, once armed, does not move until it is cleared (drip bytes
//!   never extend it);
//! - an idle keep-alive connection is judged by the idle deadline only, never
//!   the header deadline; the next request's first byte ends idle and starts
//!   its header deadline;
//! - a head that arrives whole never reaches the kernel timer;
//! - one kernel timer per connection, always due at or before the earliest
//!   live deadline; an earlier deadline updates it, a later or cleared one
//!   leaves it to fire early and be re-armed;
//! - a fire is judged against a freshly read clock;
//! - a minimum data rate ([`MinRate`]) moves its deadline later with each
//!   byte of progress, banking at most its grace period, and its clock runs
//!   only while the server waits on the client;
//! - while a request is with a handler that deferred its answer, only the
//!   handler deadline judges it: the client is waiting, not stalling.
//!
//! # What this crate does not do
//!
//! It reads no clock, makes no syscall, submits nothing to io_uring and
//! allocates nothing; it holds no socket and closes nothing. It does not
//! parse HTTP: the engine tells it when a head has started or completed. It
//! does not know about slot generations: a timer CQE for a slot's previous
//! occupant must be dropped by the engine before it gets here. It never
//! sweeps: each connection's timer is its own.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn_timers;
mod deadline;
mod kernel_timer;
mod mono_time;
mod transitions;

pub use conn_timers::ConnTimers;
pub use deadline::{DeadlineKind, MinRate, MinRates, Timeouts};
pub use kernel_timer::{FireOutcome, TimerAction};
pub use mono_time::MonoTime;
