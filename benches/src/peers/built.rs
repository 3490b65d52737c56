//! The peers built by this workspace: `ringwall serve`, this crate's
//! `hyper-peer`, and the axum pair (ringwall's `axum` example and this
//! crate's `axum-serve`). They are found next to the running bench
//! executable (or through `$RINGWALL_BIN`, `$HYPER_PEER_BIN`,
//! `$AXUM_RINGWALL_BIN`, `$AXUM_SERVE_BIN`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use super::deadlines::format_duration;
use super::process::{sibling_binary, ServerProcess};
use super::scratch::Scratch;
use super::{PeerConfig, StartError};

/// `ringwall serve` with the four deadlines and the connection cap, and
/// `--backend` when `backend` names one (`None`: the server's default).
pub(super) fn start_ringwall(
    config: &PeerConfig,
    addr: SocketAddr,
    backend: Option<&str>,
) -> Result<(ServerProcess, Scratch), StartError> {
    let binary = sibling_binary("RINGWALL_BIN", "ringwall").map_err(|e| StartError::Missing {
        reason: format!("{e}: build it: cargo build --release -p ringwall-cli"),
    })?;
    let mut command = ringwall_command(&binary, config, addr);
    if let Some(backend) = backend {
        command.arg("--backend").arg(backend);
    }
    spawn_in_scratch("ringwall", command)
}

/// The `ringwall serve` command line for `config` on `addr`.
pub fn ringwall_command(binary: &Path, config: &PeerConfig, addr: SocketAddr) -> Command {
    let mut command = Command::new(binary);
    command.arg("serve");
    server_args(&mut command, config, addr, WithIdle::Yes);
    command
        .arg("--max-connections")
        .arg(config.max_connections.to_string());
    command
}

/// Whether the server takes `--idle-timeout`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WithIdle {
    Yes,
    No,
}

/// `--addr`, `--workers` and the deadlines, as every peer built here
/// spells them.
fn server_args(command: &mut Command, config: &PeerConfig, addr: SocketAddr, idle: WithIdle) {
    let d = &config.deadlines;
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--workers")
        .arg(config.workers.to_string())
        .arg("--header-timeout")
        .arg(format_duration(d.header))
        .arg("--body-timeout")
        .arg(format_duration(d.body));
    if idle == WithIdle::Yes {
        command.arg("--idle-timeout").arg(format_duration(d.idle));
    }
    command.arg("--write-timeout").arg(format_duration(d.write));
}

/// hyper 1.x on tokio (`src/bin/hyper_peer.rs`). hyper has no idle timeout
/// of its own: its `header_read_timeout` also bounds the keep-alive wait, so
/// `idle` is not passed.
pub(super) fn start_hyper(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let binary =
        sibling_binary("HYPER_PEER_BIN", "hyper-peer").map_err(|e| StartError::Missing {
            reason: format!(
                "{e}: build it: cargo build --release -p ringwall-bench --bin hyper-peer"
            ),
        })?;
    let mut command = Command::new(binary);
    server_args(&mut command, config, addr, WithIdle::No);
    spawn_in_scratch("hyper", command)
}

/// `engine/examples/axum.rs`, built into `target/<profile>/examples/`,
/// with the four deadlines.
pub(super) fn start_axum_ringwall(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let binary =
        sibling_binary("AXUM_RINGWALL_BIN", "examples/axum").map_err(|e| StartError::Missing {
            reason: format!(
                "{e}: build it: cargo build --release -p ringwall --features tower --example axum"
            ),
        })?;
    let mut command = Command::new(binary);
    server_args(&mut command, config, addr, WithIdle::Yes);
    spawn_in_scratch("axum-ringwall", command)
}

/// The same router on `axum::serve` (`src/bin/axum_serve/main.rs`), with
/// `workers` tokio threads; it has no deadlines to pass.
pub(super) fn start_axum_serve(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let binary =
        sibling_binary("AXUM_SERVE_BIN", "axum-serve").map_err(|e| StartError::Missing {
            reason: format!(
                "{e}: build it: cargo build --release -p ringwall-bench --bin axum-serve"
            ),
        })?;
    let mut command = Command::new(binary);
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--workers")
        .arg(config.workers.to_string());
    spawn_in_scratch("axum-serve", command)
}

pub(super) fn spawn_in_scratch(
    label: &str,
    command: Command,
) -> Result<(ServerProcess, Scratch), StartError> {
    let failed = |what: &str, e: std::io::Error| StartError::Failed {
        reason: format!("{what}: {e}"),
    };
    let scratch = Scratch::new(label).map_err(|e| failed("temp dir", e))?;
    let process = ServerProcess::spawn(command, &scratch.path().join("server.log"))
        .map_err(|e| failed("spawn", e))?;
    Ok((process, scratch))
}
