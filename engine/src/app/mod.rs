//! The application API: what a handler sees (`Request`, `Response`), how
//! it answers later (`Responder`, streamed bodies both ways) and the
//! benchmark app. It may use the driver's types it hands out, nothing of a
//! backend; the tower adapter (`crate::tower`) is built on it.

#[cfg(feature = "benchmark-app")]
pub(crate) mod benchmark_app;
pub(crate) mod deferred;
pub(crate) mod handler;
pub(crate) mod large_buffers;
pub(crate) mod request_body;
