//! `serve`: a tower service on ringwall, awaited on the caller's runtime,
//! as `axum::serve` is.
//!
//! ```text
//!  caller's task                       "ringwall-serve" thread
//!  ─────────────                       ───────────────────────
//!  .await ─ spawn ────────────────────► Server::serve(handler)
//!    │ shutdown signal resolves ─stop─► ServerHandle::shutdown (blocking:
//!    │                                  in-flight requests get the
//!    │                                  shutdown timeout)
//!    ▼ resolves ◄────────── oneshot ─── the counters, or the worker failure
//! ```
//!
//! The blocking start and stop run on a thread of their own, so no runtime
//! worker is held while requests drain.

use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tower_service::Service;

use super::request::IncomingConnection;
use super::{Body, BoxError, MakeServiceHandler, ServiceHandler};
use crate::{ConfigError, Handler, Server, ServerBuilder, ServerHandle, StartError, Stats};

/// How often the serving thread looks for a worker that failed (which
/// stops the server on its own) while it waits for the shutdown signal.
const FAILURE_CHECK: Duration = Duration::from_millis(100);

/// Serves `app` with `server`'s settings (deadlines, caps, workers,
/// addresses) on the tokio runtime that awaits the returned [`Serve`].
///
/// `app` is a request service (an axum `Router`, a `service_fn`) or a
/// make-service called with an [`IncomingConnection`] (axum's
/// `router.into_make_service_with_connect_info::<SocketAddr>()`, with the
/// `axum` feature). Either way every request carries a
/// [`PeerAddr`](super::PeerAddr) extension.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// #[tokio::main]
/// async fn main() -> Result<(), ringwall::tower::Error> {
///     let app = Router::new().route("/", get(|| async { "Hello, World!" }));
///     let server = ringwall::Server::builder().bind("127.0.0.1:8080".parse().unwrap());
///     ringwall::tower::serve(server, app)
///         .with_graceful_shutdown(async {
///             let _ = tokio::signal::ctrl_c().await;
///         })
///         .await?;
///     Ok(())
/// }
/// ```
///
/// A port-0 address is resolved when the server starts; to know it
/// beforehand, bind a listener and pass it with
/// [`ServerBuilder::listen_fd`].
pub fn serve<A, Marker>(server: impl IntoServer, app: A) -> Serve
where
    A: IntoHandler<Marker>,
{
    Serve {
        server: server.into_server(),
        start: Box::new(move |server, runtime| server.serve(app.into_handler(runtime))),
    }
}

/// The server [`serve`] starts: a [`ServerBuilder`] or a built [`Server`].
pub trait IntoServer {
    /// The server to start; a builder is built here, so an invalid setting
    /// is a [`ConfigError`].
    fn into_server(self) -> Result<Server, ConfigError>;
}

impl IntoServer for ServerBuilder {
    fn into_server(self) -> Result<Server, ConfigError> {
        self.build()
    }
}

impl IntoServer for Server {
    fn into_server(self) -> Result<Server, ConfigError> {
        Ok(self)
    }
}

/// What [`serve`] accepts: a request service, or a make-service called
/// with an [`IncomingConnection`]. `Marker` tells the two apart and is
/// inferred; it is not named.
pub trait IntoHandler<Marker>: Send + 'static {
    /// The engine handler that serves it.
    type Handler: Handler;
    /// The handler that serves `self`, its futures running in `runtime`'s
    /// context.
    fn into_handler(self, runtime: Handle) -> Self::Handler;
}

/// [`IntoHandler`]'s markers.
#[doc(hidden)]
pub mod markers {
    /// The app is a request service.
    pub enum RequestService {}
    /// The app is a make-service.
    pub enum MakeService {}
}

impl<S, B> IntoHandler<markers::RequestService> for S
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Handler = ServiceHandler<S>;
    fn into_handler(self, runtime: Handle) -> ServiceHandler<S> {
        ServiceHandler::new(self, runtime)
    }
}

impl<M, S, B> IntoHandler<markers::MakeService> for M
where
    M: Service<IncomingConnection, Response = S> + Clone + Send + Sync + 'static,
    M::Future: Send + 'static,
    M::Error: Into<BoxError>,
    S: Service<http::Request<Body>, Response = http::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Handler = MakeServiceHandler<M>;
    fn into_handler(self, runtime: Handle) -> MakeServiceHandler<M> {
        MakeServiceHandler::new(self, runtime)
    }
}

type Start = Box<dyn FnOnce(Server, Handle) -> Result<ServerHandle, StartError> + Send>;

/// A server that starts when awaited and resolves when it stops: with the
/// final counters once a [`with_graceful_shutdown`](Serve::with_graceful_shutdown)
/// signal has stopped it, or with the error of a worker that failed.
/// Dropped while it runs (a `select!` that took another branch), it shuts
/// the server down gracefully, on its own thread.
#[must_use = "a server does nothing unless awaited"]
pub struct Serve {
    server: Result<Server, ConfigError>,
    start: Start,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Stops the server once `signal` resolves: it stops accepting, closes
    /// idle connections, lets in-flight requests finish within the
    /// builder's [`shutdown_timeout`](ServerBuilder::shutdown_timeout), and
    /// then the future resolves.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }
}

impl IntoFuture for Serve {
    type Output = Result<Stats, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Stats, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self, std::future::pending()))
    }
}

/// [`Serve`] with a shutdown signal; see [`Serve::with_graceful_shutdown`].
#[must_use = "a server does nothing unless awaited"]
pub struct WithGracefulShutdown<F> {
    serve: Serve,
    signal: F,
}

impl<F> fmt::Debug for WithGracefulShutdown<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithGracefulShutdown")
            .field("serve", &self.serve)
            .finish_non_exhaustive()
    }
}

impl<F> IntoFuture for WithGracefulShutdown<F>
where
    F: Future<Output = ()> + Send + 'static,
{
    type Output = Result<Stats, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Stats, Error>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

/// # Panics
///
/// Outside a tokio runtime.
async fn run<F: Future<Output = ()>>(serve: Serve, signal: F) -> Result<Stats, Error> {
    let server = serve.server.map_err(Error::Config)?;
    let runtime = Handle::try_current()
        .expect("ringwall::tower::serve must be awaited inside a tokio runtime");
    let (stop, stopped) = mpsc::channel::<()>();
    let (done, outcome) = oneshot::channel();
    let start = serve.start;
    std::thread::Builder::new()
        .name("ringwall-serve".into())
        .spawn(move || {
            let result = match start(server, runtime) {
                Err(e) => Err(Error::Start(e)),
                Ok(handle) => supervise(handle, &stopped),
            };
            let _ = done.send(result);
        })
        .map_err(Error::Thread)?;
    let mut signal = pin!(signal);
    let mut stop = Some(stop);
    let mut outcome = pin!(outcome);
    poll_fn(|cx| {
        if stop.is_some() && signal.as_mut().poll(cx).is_ready() {
            // Sent, not dropped: the thread tells the two apart only by
            // timing, and either way shuts down.
            let _ = stop.take().map(|stop| stop.send(()));
        }
        outcome.as_mut().poll(cx)
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::Thread(io::Error::other(
            "the ringwall-serve thread ended without an outcome",
        )))
    })
}

/// Waits for the stop (a signal, or the `Serve` dropped) and shuts down;
/// or, when a worker failed and so stopped the server, returns its error.
fn supervise(handle: ServerHandle, stopped: &mpsc::Receiver<()>) -> Result<Stats, Error> {
    loop {
        match stopped.recv_timeout(FAILURE_CHECK) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                return handle.shutdown().map_err(Error::Serve);
            }
            Err(RecvTimeoutError::Timeout) if handle.is_finished() => {
                return handle.wait().map_err(Error::Serve);
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Why [`serve`] ended without a clean stop.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting of the builder is invalid.
    Config(ConfigError),
    /// The server could not start (bind, io_uring, workers).
    Start(StartError),
    /// A worker failed while serving, which stopped the server.
    Serve(crate::ServeError),
    /// The thread that starts and stops the server could not be spawned,
    /// or ended without an outcome.
    Thread(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid server configuration: {e}"),
            Error::Start(e) => write!(f, "the server did not start: {e}"),
            Error::Serve(e) => write!(f, "the server failed: {e}"),
            Error::Thread(e) => write!(f, "the serving thread failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Start(e) => Some(e),
            Error::Serve(e) => Some(e),
            Error::Thread(e) => Some(e),
        }
    }
}

/// For an `async fn main() -> std::io::Result<()>`, as `axum::serve`'s.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::other(e)
    }
}
