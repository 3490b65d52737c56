//! `hyper-peer`: the benchmark app on hyper 1.x and tokio, the Rust peer that
//! ringwall is measured against.
//!
//! - POST, PUT, PATCH: the request body is echoed back;
//! - `GET /bytes/N`: N bytes of `x`, N up to 64 MiB;
//! - anything else: 200 `Hello, World!` (text/plain).
//!
//! Deadlines, as close to ringwall's as hyper allows:
//! - header: `http1::Builder::header_read_timeout`, driven by hyper-util's
//!   `TokioTimer` (without a timer the timeout never fires). In hyper 1.x it
//!   starts whenever hyper waits for a head, so it bounds the keep-alive idle
//!   wait as well: hyper has no separate idle timeout.
//! - body: the service collects the body under `tokio::time::timeout`; on
//!   expiry it returns an error and hyper closes the connection.
//! - write: no write may stay blocked longer than this (`StalledWriteLimit`).
//!   Like nginx's `send_timeout`, progress resets it.
//!
//! Stops on SIGTERM (the default action).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ringwall_bench::peers::parse_duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Sleep;

#[derive(Parser)]
#[command(
    name = "hyper-peer",
    about = "The benchmark app on hyper 1.x (a peer for ringwall-bench)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Time for a request head to arrive; also bounds keep-alive idle.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    header_timeout: Duration,
    /// Time for an announced body to arrive.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    body_timeout: Duration,
    /// Longest a write may stay blocked.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    write_timeout: Duration,
}

const MAX_BYTES: usize = 64 << 20;
const LISTEN_BACKLOG: u32 = 4096;

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn app(request: Request<Incoming>, body_timeout: Duration) -> Result<Reply, AppError> {
    let method = request.method().clone();
    if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        let body = Limited::new(request.into_body(), MAX_BYTES);
        let collected = tokio::time::timeout(body_timeout, body.collect())
            .await
            .map_err(|_| AppError("body timeout"))?
            .map_err(|_| AppError("body read failed or too large"))?;
        return Ok(reply(
            StatusCode::OK,
            "application/octet-stream",
            collected.to_bytes(),
        ));
    }
    let path = request.uri().path();
    if (method == Method::GET || method == Method::HEAD) && path.starts_with("/bytes/") {
        return Ok(match path["/bytes/".len()..].parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => {
                reply(StatusCode::OK, "application/octet-stream", vec![b'x'; n])
            }
            Ok(_) => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "at most 67108864 bytes\n",
            ),
            Err(_) => reply(StatusCode::BAD_REQUEST, "text/plain", "bad byte count\n"),
        });
    }
    Ok(reply(StatusCode::OK, "text/plain", "Hello, World!"))
}

/// An error from the service: hyper closes the connection.
#[derive(Debug)]
struct AppError(&'static str);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for AppError {}

/// A socket whose writes fail with `TimedOut` once one has been blocked for
/// `limit`: hyper has no write timeout, and a slow reader must not hold a
/// connection forever.
struct StalledWriteLimit {
    stream: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StalledWriteLimit {
    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for StalledWriteLimit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StalledWriteLimit {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.on_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.on_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn serve(args: Args) -> io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(args.addr)?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    println!(
        "hyper-peer listening on {} workers={} header_timeout={:?} body_timeout={:?} write_timeout={:?}",
        listener.local_addr()?,
        args.workers,
        args.header_timeout,
        args.body_timeout,
        args.write_timeout
    );
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(args.header_timeout)
        .keep_alive(true)
        // One write for the answers to a pipelined batch, as hyper's own
        // benchmark configurations do.
        .pipeline_flush(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("hyper-peer: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StalledWriteLimit {
            stream,
            limit: args.write_timeout,
            stalled: None,
        });
        let body_timeout = args.body_timeout;
        let connection =
            builder.serve_connection(io, service_fn(move |req| app(req, body_timeout)));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyper-peer: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper-peer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
