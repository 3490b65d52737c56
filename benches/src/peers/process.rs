//! Starting a server process, waiting until it serves, and stopping it.
//!
//! Every process started here is remembered by PID and stopped by that PID
//! (SIGTERM, then SIGKILL after a grace period) with a `waitpid`, so nothing
//! is left running and no other process on the machine is touched.

use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::procfs;
use crate::client::read_response;
pub use crate::sys::raise_nofile_limit;

/// How long a server gets to start serving before it counts as failed.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a server ended when it was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It had exited before it was asked to (a crash), with this status.
    AlreadyExited(ExitStatus),
    /// It exited on SIGTERM within the grace period.
    OnSigterm(ExitStatus),
    /// It was still running after the grace period and was killed.
    Killed,
}

/// A running server process, stopped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with stdout and stderr going to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> io::Result<ServerProcess> {
        let out = File::create(log)?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn()?;
        Ok(ServerProcess {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The last lines the server wrote, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `addr` answers `GET /` with `200` and `Hello, World!`.
    /// A server that exits first, or never answers, is an error that carries
    /// the tail of its log.
    pub fn wait_ready(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        self.wait_until(addr, timeout, probe_hello)
    }

    /// Waits until `probe(addr)` succeeds, as [`ServerProcess::wait_ready`]
    /// does for the app's `GET /`: for servers that do not serve the app.
    pub fn wait_until(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
        probe: fn(SocketAddr) -> io::Result<()>,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log_tail()));
            }
            if probe(addr).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "not serving on {addr} after {timeout:?}: {}",
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait, SIGKILL if it is still there, and reap it. Descendants
    /// (nginx workers) that outlive their parent are killed by their PIDs.
    pub fn stop(&mut self) -> Stopped {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Stopped::AlreadyExited(status);
        }
        let pid = self.pid();
        let descendants: Vec<i32> = procfs::process_tree(pid).into_iter().skip(1).collect();
        signal(pid, libc::SIGTERM);
        let start = Instant::now();
        let mut stopped = Stopped::Killed;
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(status)) = self.child.try_wait() {
                stopped = Stopped::OnSigterm(status);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        if stopped == Stopped::Killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for d in descendants {
            if procfs::read_stat(d).is_ok() {
                signal(d, libc::SIGKILL);
            }
        }
        stopped
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers; `pid` is a process this module
    // started (or its descendant), never 0 or -1.
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join(" | ");
    if tail.is_empty() {
        "(no output)".to_string()
    } else {
        tail
    }
}

/// One `GET /` on a fresh connection; Ok if the answer is `200` with body
/// `Hello, World!`.
pub fn probe_hello(addr: SocketAddr) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n")?;
    read_hello(&mut s)
}

/// Reads one complete, well-framed `200` answer whose body is `Hello, World!`.
pub fn read_hello(stream: &mut TcpStream) -> io::Result<()> {
    let answer = read_response(stream, false)?;
    if answer.status == 200 && answer.body == b"Hello, World!" {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(&answer.raw)
            ),
        ))
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_loopback_addr() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

/// The soft `RLIMIT_NOFILE` now in force (what a server started now gets).
pub fn current_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// Finds an executable named `name` on `$PATH` or in `extra` directories
/// (`/usr/sbin` is often missing from an unprivileged `$PATH`).
pub fn find_executable(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where a binary built by this workspace lives: `$ENV_VAR` if set, else
/// next to the running executable (or one level up, for test executables
/// that live in `target/<profile>/deps/`).
pub fn sibling_binary(env_var: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "${env_var}={} is not an executable",
                path.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("current_exe has no directory")?;
    let candidates = [Some(dir.join(name)), dir.parent().map(|d| d.join(name))];
    candidates
        .into_iter()
        .flatten()
        .find(|c| is_executable(c))
        .ok_or_else(|| format!("no `{name}` next to {} (nor ${env_var})", exe.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nofile_limit_is_at_least_what_is_asked_or_the_hard_limit() {
        let got = raise_nofile_limit(1024).expect("getrlimit works");
        assert!(got >= 1024);
    }

    #[test]
    fn sh_is_found_on_path() {
        assert!(find_executable("sh", &["/bin"]).is_some());
        assert!(find_executable("no-such-binary-ringwall", &[]).is_none());
    }
}
