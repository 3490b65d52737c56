//! The ringwall [`Handler`] that serves a tower service.

use std::future::poll_fn;

use tokio::runtime::Handle;
use tower_service::Service;

use super::exchange::answer;
use super::request::http_request;
use super::{Body, BoxError};
use crate::{Handler, Request, Response};

/// A ringwall [`Handler`] that serves a tower [`Service`] on a tokio
/// runtime.
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
        let Some(http_request) = http_request(request) else {
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

fn bad_request(response: &mut Response<'_>) {
    let _ = response.send(
        400,
        &[("Content-Type", b"text/plain")],
        b"Bad Request: the request is not one the http crate accepts\n",
    );
}
