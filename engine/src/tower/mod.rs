//! Any tower [`Service`](tower_service::Service) on ringwall: an axum
//! `Router`, a hyper-style `service_fn`, a stack of tower-http layers.
//! Behind the `tower` feature.
//!
//! ```text
//!  worker thread                                   tokio runtime
//!  ─────────────                                   ─────────────
//!  Request ─► http::Request<Body> ─► service.call
//!             (Handle::enter)          │ polled once, here
//!                     ready at once ◄──┤
//!  Response::send_sized ◄── frames ────┘ pending, or a body that waits
//!                                      └──► Response::defer ─► spawn ─► Responder
//!                                                                       │ BodySender
//!  the worker's mailbox ◄───────────────────────────────────────────────┘ (ready().await
//!                                                                          before each send)
//! ```
//!
//! Most handlers answer without waiting, so the service's future is polled
//! once on the worker thread, inside the runtime's context (tokio timers
//! and I/O register with its drivers), and a response whose body frames are
//! all ready at once is written inline: no thread hop, no wake. Only a
//! future (or body) that waits is spawned onto the runtime, answering
//! through a [`Responder`](crate::Responder); it is dropped, and so
//! cancelled, when the connection goes (disconnect, deadline, shutdown). A
//! panic, inline or in the task, answers 500.
//!
//! Request bodies stream from the socket as they arrive ([`Body`]), with
//! ringwall's flow control; response bodies stream back with its
//! backpressure, so memory per connection is bounded both ways.
//!
//! What it does not do: HTTP upgrades (WebSocket), trailers (dropped), or
//! build a runtime: pass the [`Handle`](tokio::runtime::Handle) of yours.

mod body;
mod exchange;
mod request;
mod service;

pub use body::Body;
pub use service::ServiceHandler;

/// The error type a service and its response body convert theirs into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
