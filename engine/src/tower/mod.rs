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
//! [`serve`] is the async entry point, awaited on the caller's runtime as
//! `axum::serve` is; [`ServiceHandler`] (a request service) and
//! [`MakeServiceHandler`] (a make-service, as axum's
//! `into_make_service_with_connect_info` returns) are the
//! [`Handler`](crate::Handler)s it builds, for a caller that drives a
//! [`ServerHandle`](crate::ServerHandle) itself.
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
//! Every request carries the client's address as a [`PeerAddr`] extension
//! (the PROXY protocol's, when the server takes one). With the `axum`
//! feature, `router.into_make_service_with_connect_info::<SocketAddr>()`
//! gets the same address as `ConnectInfo<SocketAddr>`.
//!
//! Request bodies stream from the socket as they arrive ([`Body`]), with
//! ringwall's flow control; response bodies stream back with its
//! backpressure, so memory per connection is bounded both ways.
//!
//! What it does not do: HTTP upgrades (WebSocket), trailers (dropped), or
//! build a runtime: it runs on the caller's.

mod body;
#[cfg(feature = "axum")]
mod connect_info;
mod exchange;
mod request;
mod serve;
mod service;

pub use body::Body;
pub use request::{IncomingConnection, PeerAddr};
pub use serve::{serve, Error, IntoHandler, IntoServer, Serve, WithGracefulShutdown};
pub use service::{MakeServiceHandler, ServiceHandler};

/// The error type a service and its response body convert theirs into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
