//! ringwall: an io_uring HTTP/1.1 server engine whose deadlines are enforced
//! by the kernel's own timer.
//!
//! ```text
//!             ┌──────────── worker thread (one per core, own ring) ───────────┐
//!  SO_REUSEPORT│ multishot accept ─► slot ─► multishot recv (provided buffers)│
//!   listener   │                              │ bytes                          │
//!              │                              ▼                                │
//!              │        ringwall_h1::Decoder ─► Handler ─► SendQueue ─► send   │
//!              │                 │ transitions                                 │
//!              │                 ▼                                             │
//!              │        ringwall_timers::ConnTimers ─► one IORING_OP_TIMEOUT   │
//!              │                                       (ABS, CLOCK_MONOTONIC)  │
//!              └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! Under socket activation each worker accepts on its own `dup` of the
//! passed socket instead ([`ServerBuilder::listen_fd`],
//! [`activation::listen_fds_from_env`]).
//!
//! A framework plugs in a [`Handler`]; ringwall owns sockets, parsing,
//! framing, deadlines, limits and shutdown. Each connection has one kernel
//! timer, due at or before its earliest live deadline (header, body, idle,
//! write stall, and the minimum body and response rates); a connection
//! whose deadline passes is closed with `shutdown(SHUT_WR)` then `close`,
//! or reset (SO_LINGER 0) when response bytes are still unsent, so a
//! timed-out slow reader pins no kernel memory.
//!
//! Against hostile clients: a connection yields its worker after 16
//! requests, 256 KiB of output or 32 KiB of parsed heads and chunk framing
//! per turn; partial request heads, request bodies and queued output have
//! server-wide budgets (503, or reading pauses); the connection cap
//! and an optional per-address cap answer 503; every part of the request
//! line, the head and the body have their own limits.
//!
//! A handler that must wait calls [`Response::defer`] and answers later,
//! from any thread, through a [`Responder`] (whole, or streamed with
//! backpressure through a [`BodySender`]); one whose
//! [`Handler::streams_request_bodies`] is true reads request bodies as they
//! arrive ([`Request::body_stream`](crate::app::handler::Request::body_stream)). With the `tower` feature,
//! `tower::ServiceHandler` runs any `tower::Service` over `http` types,
//! an axum `Router` among them (`examples/axum.rs`).
//!
//! Two backends serve through the same connection driver: io_uring and
//! epoll ([`Backend`]); [`Backend::Auto`] falls back to epoll only where
//! io_uring is refused.
//!
//! What it does not do: TLS, HTTP/2, WebSocket upgrades.
//!
//! ```no_run
//! use ringwall::{Request, Response, Server};
//!
//! let handle = Server::builder()
//!     .bind("127.0.0.1:8080".parse().unwrap())
//!     .build()?
//!     .serve(|_req: &Request<'_>, resp: &mut Response<'_>| {
//!         let _ = resp.send(200, &[("Content-Type", b"text/plain")], b"Hello, World!");
//!     })?;
//! println!("{}", handle.shutdown()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Logging: with the default-on `tracing` feature the engine emits
//! [`tracing`](https://docs.rs/tracing) events (to the `log` facade when no
//! tracing subscriber is installed): the start line (`ringwall::server`,
//! info, with the key limits as fields), each fallback to an older kernel
//! path (warn), fatal worker errors (error), and the shutdown line with the
//! counters (info). Nothing per request. Protocol errors and deadline
//! closes, with the peer's address, are debug events under the
//! `ringwall::closes` target, off unless that target is enabled and at most
//! 10 per second per worker. Without the feature every event compiles to
//! nothing.
//!
//! A worker whose ring fails stops the server: [`ServerHandle::wait`] and
//! [`ServerHandle::shutdown`] return a [`ServeError`].
//!
//! The `ringwall` binary (`ringwall serve`) is the separate `ringwall-cli`
//! package, so depending on this crate compiles no command-line parser. The
//! `benchmark-app` feature exports `benchmark_app`, the app it serves.

// Every unsafe block says why the kernel's or libc's contract holds.
#![deny(clippy::undocumented_unsafe_blocks)]
// docs.rs (`--cfg docsrs`, nightly rustdoc) marks feature-gated items.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ringwall runs on Linux only: its workers are built on io_uring, or on \
     epoll with timerfd, over SO_REUSEPORT listeners"
);

mod app;
mod backend;
mod config;
mod driver;
mod error;
mod ops;
mod server;
mod sys;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

#[cfg(feature = "benchmark-app")]
#[cfg_attr(docsrs, doc(cfg(feature = "benchmark-app")))]
pub use app::benchmark_app::{benchmark_app, BENCHMARK_MAX_BYTES};
pub use app::deferred::{BodySender, Gone, Responder};
pub use app::handler::{BodyWriter, Handler, Request, Response, ResponseError};
pub use app::request_body::{BodyError, RequestBody};
pub use config::{Backend, Config, ConfigError, ServerBuilder};
pub use error::{ServeError, StartError, UringUnavailable, WorkerFailure};
pub use ops::stats::{CloseReason, Stats};
// Named, not `pub use ringwall_h1 as h1`: the h1 types that appear in this
// crate's own API, so that ringwall's semver follows what it exposes rather
// than all of ringwall-h1.
pub use ringwall_h1::{EncodeError, Limits, LimitsError, PreparedHeaders, Version};
pub use ringwall_timers::MinRate;
pub use server::{Server, ServerHandle};

/// The defaults `ServerBuilder` starts from, each with the reason for its
/// value (see the constant's docs).
pub mod defaults {
    pub use crate::config::{
        DEFAULT_BODY_TIMEOUT, DEFAULT_HANDLER_TIMEOUT, DEFAULT_HEADER_TIMEOUT,
        DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BUFFERED_BODY_BYTES, DEFAULT_MAX_BUFFERED_HEAD_BYTES,
        DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_QUEUED_OUTPUT_BYTES, DEFAULT_MIN_RATE,
        DEFAULT_RECV_BUFFERS, DEFAULT_RECV_BUFFER_SIZE, DEFAULT_RING_ENTRIES,
        DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WRITE_TIMEOUT,
    };
}

/// Serving sockets another process passed: systemd socket activation
/// (`LISTEN_FDS`) and the zero-downtime hand-over to a successor
/// (SIGUSR2 in `ringwall serve`), both ends of it.
pub mod activation {
    pub use crate::ops::activation::{
        activation_from_env, listen_fds_from_env, Activation, ActivationError, InheritedListener,
        ListenerOrigin, LISTEN_FDS_FROM_PARENT, READY_FD, SD_LISTEN_FDS_START,
    };
    pub use crate::ops::handover::{spawn_with_listeners, Readiness, ReadyNotifier, Successor};
    pub use crate::sys::socket::NotAListener;
}

/// How far streamed bodies run ahead of their consumer before the producer
/// (or the socket) is held back.
pub mod backpressure {
    pub use crate::app::deferred::{STREAM_HIGH_WATER, STREAM_LOW_WATER};
    pub use crate::app::request_body::{BODY_HIGH_WATER, BODY_LOW_WATER};
}

/// The counters: read from any thread while the server runs, and in
/// Prometheus' text format.
pub mod metrics {
    pub use crate::ops::prometheus::PROMETHEUS_CONTENT_TYPE;
    pub use crate::ops::stats::CloseCounts;
    pub use crate::server::StatsReader;
}
