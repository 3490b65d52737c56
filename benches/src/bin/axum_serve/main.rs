//! `axum-serve`: the axum app of `engine/examples/axum.rs` (the same
//! router, included from that file) on `axum::serve`, the peer that axum on
//! ringwall is measured against. Run as the example is:
//! `axum-serve --addr 127.0.0.1:PORT --workers 2`.
//!
//! `axum::serve` has no header, body, idle or write deadline of its own,
//! and this peer adds none: it is what an axum app gets by default, which
//! is what the comparison is about. Stops on SIGTERM (the default action).

// A symlink to engine/examples/axum_app/router.rs: one router for both, and
// `cargo package` copies the file it points to into this crate.
mod router;

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "axum-serve",
    about = "The axum example's router on axum::serve (a peer for ringwall-bench)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8082")]
    addr: SocketAddr,
    /// tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        println!("axum::serve listening on {}", listener.local_addr()?);
        axum::serve(listener, router::router()).await
    })
}
