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
//!   drip_heads: hundreds of non-blocking slowloris sockets on one poll loop
//! ```
//!
//! What it does not do: mock anything. Every test talks to the real engine
//! over real sockets; a kernel without io_uring makes a test print why and
//! skip (see [`start_or_skip`]).

mod app;
mod client;
mod close;
mod drip;
mod fd_limit;
mod response;
mod server;

pub use app::{app, MAX_BYTES_RESPONSE};
pub use client::{connect_with_rcvbuf, set_linger_zero, Client};
pub use close::{
    assert_closed_within, wait_for_close, watch_for_closes, CloseKind, Closed, Watched,
    EARLY_SLACK, LATE_SLACK,
};
pub use drip::{drip_heads, DeadlineCheck, DripOutcome};
pub use fd_limit::raise_fd_limit;
pub use response::{imf_fixdate_unix_secs, is_imf_fixdate, parse_response, Response};
pub use server::{
    builder, heavy_test_lock, runs_only_on_io_uring, skip_without_io_uring, start_or_skip,
    test_backend, wait_until,
};
