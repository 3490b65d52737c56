//! An ordinary axum app, served by ringwall: kernel-timed header, body,
//! idle and write deadlines in front of an unmodified `Router`, awaited
//! the way `axum::serve` is.
//!
//! ```text
//! cargo run --release -p ringwall --features tower --example axum -- \
//!     --addr 127.0.0.1:8080 --workers 2 --header-timeout 2s --idle-timeout 5s
//! ```

#[path = "axum_app/router.rs"]
mod router;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ringwall::Server;
use tokio::signal::unix::SignalKind;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// ringwall workers (threads with a ring each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Threads of the tokio runtime the handlers that wait run on.
    #[arg(long, default_value_t = 2)]
    runtime_threads: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    header_timeout: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    idle_timeout: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    body_timeout: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    write_timeout: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // What `#[tokio::main]` builds, with the thread count from the command
    // line.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.runtime_threads)
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .bind(args.addr)
        .workers(args.workers)
        .header_timeout(args.header_timeout)
        .idle_timeout(args.idle_timeout)
        .body_timeout(args.body_timeout)
        .write_timeout(args.write_timeout);
    println!("axum on ringwall serving {}", args.addr);
    // SIGINT or SIGTERM: a graceful shutdown (in-flight requests get up to
    // the shutdown timeout), then the counters.
    let stats = ringwall::tower::serve(server, router::router())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    println!("{stats}");
    Ok(())
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
