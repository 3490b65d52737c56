//! Shared pieces of ringwall's integration tests: a server started on a
//! loopback port, the benchmark app it serves, and blocking clients that
//! check what reaches the wire.
//!
//! ```text
//!   test ──► start_or_skip(builder, app) ──► ringwall::ServerHandle (127.0.0.1:0)
//!    │                                              ▲
//!    └──► Client (blocking TcpStream) ── bytes ─────┘
//!             │ parse_response: status, headers, framed body, raw bytes
//!             └ wait_for_close: FIN or reset, and when
//!   slowloris: hundreds of dripping sockets, ringwall-bench's attack client
//! ```
//!
//! The response parser, close detection and its slacks, the slow clients
//! and the socket helpers are ringwall-bench's (`ringwall_bench::client`,
//! `attack`, `sys`), re-exported here: the benchmarks judge the server by
//! the same rules.
//!
//! What it does not do: mock anything. Every test talks to the real engine
//! over real sockets; a kernel without io_uring makes a test print why and
//! skip (see [`start_or_skip`]).

mod app;
mod client;
mod server;
mod slowloris;

pub use app::{app, MAX_BYTES_RESPONSE};
pub use client::{connect_with_rcvbuf, set_linger_zero, Client};
pub use ringwall_bench::client::{
    assert_closed_within, imf_fixdate_unix_secs, is_imf_fixdate, parse_response, wait_for_close,
    watch_for_closes, CloseKind, Closed, Response, Watched, EARLY_SLACK, LATE_SLACK,
};
pub use ringwall_bench::sys::raise_nofile_limit;
pub use server::{
    builder, heavy_test_lock, runs_only_on_io_uring, skip_without_io_uring, start_or_skip,
    test_backend, wait_until,
};
pub use slowloris::{slowloris, slowloris_summary};
