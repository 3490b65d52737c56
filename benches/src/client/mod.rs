//! The client side both test suites share: `tests/` (ringwall's integration
//! tests) and this crate's runners and tests read responses and see closes
//! through these, so one rule decides what a well-formed answer and a timely
//! close are.
//!
//! ```text
//!   bytes from a socket ──► response::parse_response ──► Response (status, headers,
//!            │                                           framed body, raw bytes)
//!            └─ both readers ──► framing::parse_head, BodyDecoder (where a response ends)
//!   a socket left alone ──► close::wait_for_close ────► Closed { Fin | Reset | StillOpen, at }
//!   a socket left unread ──► close::wait_for_close_unread ──► Some(at) | None (still open)
//!   many sockets        ──► close::watch_for_closes ──► Watched per socket
//!   a close instant     ──► close::assert_closed_within(deadline, EARLY_SLACK, LATE_SLACK)
//! ```
//!
//! The slow clients (slowloris, slow body, slow read, idle) are
//! [`crate::attack`]; socket options set before the handshake, linger-zero
//! and the descriptor limit are [`crate::sys`]. The load client's streaming
//! checker is [`crate::check`]; it and [`response`] share [`framing`], the one
//! place that knows where an HTTP/1.1 response ends. None of it starts a
//! server.

pub mod close;
pub mod framing;
pub mod response;

pub use close::{
    assert_closed_within, wait_for_close, wait_for_close_unread, watch_for_closes, CloseKind,
    Closed, Watched, EARLY_SLACK, LATE_SLACK,
};
pub use response::{
    imf_fixdate_unix_secs, is_imf_fixdate, parse_response, read_response, Response,
};
