//! ringwall-bench: clients that check what they receive, peer servers, and
//! the benchmark runners built on them.
//!
//! ```text
//!   load    ── keep-alive | pipelined | churn HTTP/1.1 ──► server ──► every response
//!                                                                     parsed and checked
//!   attack  ── slowloris | slow body | slow read | idle ─► server ──► the moment each
//!                                                                     close is seen, on
//!                                                                     CLOCK_MONOTONIC
//!   run_attack_with_load: baseline load, then the same load beside the attack
//!   slowloris::run: every mode that way, judged ─► Report, report.assert_defended()
//!   soak    ── all of it at once, plus resets, half-closes, malformed requests,
//!              deep pipelines and non-readers, for minutes ─► did the server
//!              answer right, close on time, and give back its fds and memory?
//! ```
//!
//! The clients run on std threads with one epoll each and nonblocking
//! sockets: no async runtime, so a timestamp is taken the moment the kernel
//! reports the event. They never talk to anything but the target they are
//! given. They do not start servers (see `peers`) or decide what a result
//! means beyond the counts (see `runners`, `soak`, and `verdict` for the
//! `slowloris` command, whose report `json_report` writes for CI).
//!
//! [`slowloris`] is the regression harness for a test of your own server:
//! `slowloris::run(target, &Expectations::new(header_timeout))` returns a
//! [`slowloris::Report`], and `assert_defended()` panics naming each
//! failure.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ringwall-bench runs on Linux only: its clients are built on epoll and \
     read the kernel's TCP table (/proc/net/tcp)"
);

pub mod attack;
pub mod check;
pub mod client;
pub mod commands;
pub mod json_report;
pub mod load;
pub mod report;
pub mod slow_read;
pub mod slowloris;
pub mod soak;
pub mod stats;
pub mod sys;
pub mod verdict;

pub mod peers;
pub mod runners;

pub use attack::{
    run_attack, run_attack_on, run_attack_on_with_load, run_attack_with_load, AttackConfig,
    AttackMode, AttackPaths, AttackReport, AttackWithLoad,
};
pub use check::{ErrorCounts, ErrorKind};
pub use load::{run_load, LoadConfig, LoadMode, LoadReport, RequestSpec};
pub use stats::{LatencySummary, OvershootSummary};
