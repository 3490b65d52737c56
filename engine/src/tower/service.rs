//! The ringwall [`Handler`]s that serve a tower service: a request service
//! ([`ServiceHandler`]) or a make-service ([`MakeServiceHandler`]).

use std::future::poll_fn;

use tokio::runtime::Handle;
use tower_service::Service;

use super::exchange::answer;
use super::request::{http_request, IncomingConnection};
use super::{Body, BoxError};
use crate::{Handler, Request, Response};

/// A ringwall [`Handler`] that serves a tower [`Service`] on a tokio
/// runtime. [`serve`](super::serve) builds one; this is for a caller that
/// drives the [`ServerHandle`](crate::ServerHandle) itself.
///
/// ```no_run
/// use axum::{routing::get, Router};
///
/// let app = Router::new().route("/", get(|| async { "Hello, World!" }));
/// let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// let handler = ringwall::tower::ServiceHandler::new(app, runtime.handle().clone());
/// let server = ringwall::Server::builder()
///     .bind("127.0.0.1:8080".parse().unwrap())
///     .build()?
///     .serve(handler)?;
/// server.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServiceHandler<S> {
    service: S,
    runtime: Handle,
}

impl<S> ServiceHandler<S> {
    /// Serves `service`; its futures run in `runtime`'s context.
    pub fn new(service: S, runtime: Handle) -> ServiceHandler<S> {
        ServiceHandler { service, runtime }
    }
}

impl<S, B> Handler for ServiceHandler<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        let Some(http_request) = http_request(request, request.peer_addr()) else {
            bad_request(response);
            return;
        };
        let _context = self.runtime.enter();
        let mut service = self.service.clone();
        answer(&self.runtime, response, async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(http_request).await.map_err(Into::into)
        });
    }

    fn streams_request_bodies(&self) -> bool {
        true
    }
}

/// A ringwall [`Handler`] that serves a make-service: a [`Service`] called
/// with the [`IncomingConnection`] that returns the request service, as
/// axum's `into_make_service_with_connect_info` returns. Called once per
/// request (see [`IncomingConnection`]).
#[derive(Clone, Debug)]
pub struct MakeServiceHandler<M> {
    make: M,
    runtime: Handle,
}

impl<M> MakeServiceHandler<M> {
    /// Serves the services `make` makes; their futures run in `runtime`'s
    /// context.
    pub fn new(make: M, runtime: Handle) -> MakeServiceHandler<M> {
        MakeServiceHandler { make, runtime }
    }
}

impl<M, S, B> Handler for MakeServiceHandler<M>
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
    fn handle(&self, request: &Request<'_>, response: &mut Response<'_>) {
        let peer_addr = request.peer_addr();
        let Some(http_request) = http_request(request, peer_addr) else {
            bad_request(response);
            return;
        };
        let _context = self.runtime.enter();
        let mut make = self.make.clone();
        let connection = IncomingConnection { peer_addr };
        answer(&self.runtime, response, async move {
            poll_fn(|cx| make.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let mut service = make.call(connection).await.map_err(Into::into)?;
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            service.call(http_request).await.map_err(Into::into)
        });
    }

    fn streams_request_bodies(&self) -> bool {
        true
    }
}

fn bad_request(response: &mut Response<'_>) {
    let _ = response.send(
        400,
        &[("Content-Type", b"text/plain")],
        b"Bad Request: the request is not one the http crate accepts\n",
    );
}
