//! Go net/http as a peer: `benches/peers/go/main.go` (standard library only),
//! compiled with the local `go` at run time into the peer's private
//! directory, then run with `GOMAXPROCS = workers`.
//!
//! The source is embedded in this crate, so a bench binary run from anywhere
//! builds the same program. `GOCACHE` lives under the system temp dir so
//! that rebuilds are quick and an unwritable `$HOME` does not matter.

use std::fs;
use std::net::SocketAddr;
use std::process::Command;

use super::deadlines::format_duration;
use super::process::{find_executable, ServerProcess};
use super::scratch::Scratch;
use super::{PeerConfig, StartError};

const MAIN_GO: &str = include_str!("../../peers/go/main.go");
const GO_MOD: &str = include_str!("../../peers/go/go.mod");

const GO_DIRS: &[&str] = &["/usr/lib/go/bin", "/usr/local/go/bin"];

pub(super) fn start(
    config: &PeerConfig,
    addr: SocketAddr,
) -> Result<(ServerProcess, Scratch), StartError> {
    let go = find_executable("go", GO_DIRS).ok_or_else(|| StartError::Missing {
        reason: "Go is not installed (apt-get install -y golang-go)".into(),
    })?;
    let failed = |what: &str, e: &dyn std::fmt::Display| StartError::Failed {
        reason: format!("{what}: {e}"),
    };
    let scratch = Scratch::new("go").map_err(|e| failed("temp dir", &e))?;
    let dir = scratch.path();
    let src = dir.join("src");
    fs::create_dir_all(&src).map_err(|e| failed("src dir", &e))?;
    fs::write(src.join("main.go"), MAIN_GO).map_err(|e| failed("write main.go", &e))?;
    fs::write(src.join("go.mod"), GO_MOD).map_err(|e| failed("write go.mod", &e))?;
    let cache = std::env::temp_dir().join("ringwall-bench-go-cache");
    let binary = dir.join("go-peer");
    let build = Command::new(&go)
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .current_dir(&src)
        .env("GOCACHE", cache.join("build"))
        .env("GOPATH", cache.join("gopath"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .map_err(|e| failed("run go build", &e))?;
    if !build.status.success() {
        return Err(StartError::Failed {
            reason: format!(
                "go build failed: {}",
                String::from_utf8_lossy(&build.stderr).trim()
            ),
        });
    }
    let d = &config.deadlines;
    let mut command = Command::new(&binary);
    command
        .arg("-addr")
        .arg(addr.to_string())
        .arg("-workers")
        .arg(config.workers.to_string())
        .arg("-header-timeout")
        .arg(format_duration(d.header))
        .arg("-body-timeout")
        .arg(format_duration(d.body))
        .arg("-idle-timeout")
        .arg(format_duration(d.idle))
        .arg("-write-timeout")
        .arg(format_duration(d.write))
        .env("GOMAXPROCS", config.workers.to_string());
    let process = ServerProcess::spawn(command, &dir.join("server.log"))
        .map_err(|e| failed("spawn go-peer", &e))?;
    Ok((process, scratch))
}
