//! Zero-downtime restart on SIGUSR2, as nginx's binary upgrade: start this
//! executable again with the same arguments and every listening socket
//! passed down; once the successor says it serves, stop accepting and drain
//! (`ServerHandle::hand_over`), then exit.
//!
//! ```text
//!   SIGUSR2 ─► spawn_with_listeners(current exe, same args)
//!                 │ fds 3..: every worker's SO_REUSEPORT socket (+ metrics)
//!                 ▼
//!   wait ≤ READY_TIMEOUT ── "serving" byte ──► hand_over, drain, exit 0
//!        ├── successor exited / silent ──► SIGTERM it, keep serving
//!        ├── SIGUSR2 ──► ignored: one upgrade at a time
//!        └── SIGINT/SIGTERM ──► SIGTERM the successor, shut down
//! ```
//!
//! Every socket is passed, not one per address: each worker accepts on its
//! own `SO_REUSEPORT` socket with its own accept queue, and a socket the
//! old process closed would take the connections queued in it down with
//! it. Passed, the sockets stay open in the successor, which accepts on all
//! of them; the old process only cancels its accepts.

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringwall::activation::{spawn_with_listeners, Readiness, Successor};

use crate::signals::{self, Signals};

/// How long a successor may take to serve before the upgrade is given up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the readiness pipe is looked at while an upgrade runs.
const READY_POLL: Duration = Duration::from_millis(20);
/// How often the wait for a signal looks whether a worker failure stopped
/// the server.
const FAILURE_POLL: Duration = Duration::from_millis(200);

/// The name a passed metrics socket goes by in `LISTEN_FDNAMES`; the
/// served sockets keep theirs (`http` when bound here).
pub const METRICS_FD_NAME: &str = "ringwall-metrics";

/// Why serving ended.
pub enum Ending {
    /// SIGINT or SIGTERM: shut down.
    Stop(i32),
    /// A successor serves on our sockets: hand over.
    HandedOver { successor: u32 },
    /// The server stopped on its own: a worker failed.
    Finished,
}

/// Waits for signals and runs upgrades until one succeeds or a stop signal
/// comes. `listeners` are every socket to pass down, with their names.
pub fn serve_until_ended(
    signals: &Signals,
    listeners: &[(BorrowedFd<'_>, &str)],
    finished: impl Fn() -> bool,
) -> Ending {
    let mut upgrade: Option<(Successor, Instant)> = None;
    loop {
        // Polled: the server can also stop on its own (a worker failed).
        if upgrade.is_none() && finished() {
            return Ending::Finished;
        }
        let timeout = if upgrade.is_some() {
            READY_POLL
        } else {
            FAILURE_POLL
        };
        match signals.wait(Some(timeout)) {
            Some(libc::SIGUSR2) => match &upgrade {
                Some((successor, _)) => tracing::info!(
                    "ringwall: SIGUSR2 ignored: the upgrade to pid {} is still starting",
                    successor.id()
                ),
                None => match start_successor(listeners) {
                    Ok(successor) => {
                        tracing::info!(
                            "ringwall: SIGUSR2, upgrading: started pid {}",
                            successor.id()
                        );
                        upgrade = Some((successor, Instant::now() + READY_TIMEOUT));
                    }
                    Err(e) => tracing::info!("ringwall: upgrade failed: {e}; still serving"),
                },
            },
            Some(signal) => {
                if let Some((successor, _)) = upgrade.take() {
                    tracing::info!(
                        "ringwall: {}: stopping the upgrade to pid {} too",
                        signals::name(signal),
                        successor.id()
                    );
                    successor.abandon();
                }
                return Ending::Stop(signal);
            }
            None => {}
        }
        let Some((successor, deadline)) = &mut upgrade else {
            continue;
        };
        match successor.readiness() {
            Readiness::Serving => {
                let (successor, _) = upgrade.take().expect("matched above");
                let pid = successor.id();
                // It runs on after we exit; whoever started us reaps it (or
                // init does).
                drop(successor.into_child());
                return Ending::HandedOver { successor: pid };
            }
            Readiness::Failed(why) => {
                tracing::info!(
                    "ringwall: upgrade to pid {} failed: {why}; still serving",
                    successor.id()
                );
                let (successor, _) = upgrade.take().expect("matched above");
                successor.abandon();
            }
            Readiness::Starting if Instant::now() >= *deadline => {
                tracing::info!(
                    "ringwall: upgrade to pid {} failed: not serving within {READY_TIMEOUT:?}; \
                     stopping it, still serving",
                    successor.id()
                );
                let (successor, _) = upgrade.take().expect("matched above");
                successor.abandon();
            }
            Readiness::Starting => {}
        }
    }
}

/// This executable, again, with the arguments it was started with.
fn start_successor(listeners: &[(BorrowedFd<'_>, &str)]) -> std::io::Result<Successor> {
    let exe = executable()?;
    let mut command = std::process::Command::new(&exe);
    command.args(std::env::args_os().skip(1));
    spawn_with_listeners(command, listeners)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", exe.display())))
}

/// The running executable's path. Replaced on disk (a binary upgrade
/// installs a new file under the same name), `/proc/self/exe` names the old
/// inode with a ` (deleted)` suffix; the path without it is where the new
/// binary now is, and starting that is the point of the upgrade.
fn executable() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(strip_deleted(exe.into_os_string()).into())
}

fn strip_deleted(path: OsString) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    const SUFFIX: &[u8] = b" (deleted)";
    match path.as_bytes().strip_suffix(SUFFIX) {
        Some(live) => OsString::from_vec(live.to_vec()),
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_executable_is_started_from_its_path() {
        assert_eq!(
            strip_deleted("/usr/bin/ringwall (deleted)".into()),
            OsString::from("/usr/bin/ringwall")
        );
        assert_eq!(
            strip_deleted("/usr/bin/ringwall".into()),
            OsString::from("/usr/bin/ringwall")
        );
    }
}
