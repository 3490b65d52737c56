//! Handing the listening sockets to a successor process: the parent side
//! of a zero-downtime restart (nginx's binary upgrade on `SIGUSR2`).
//!
//! ```text
//!   old process                               successor
//!   spawn_with_listeners ── fds 3.., ready ──► activation_from_env
//!        │                  pipe after them        serve
//!   Successor::readiness ◄──── one byte ────── ReadyNotifier::notify
//!   ServerHandle::hand_over: stops accepting, drains; the sockets stay
//!   listening, and the successor accepts what is queued in them
//! ```
//!
//! The successor gets `dup`s of the same open sockets, so both processes
//! accept from the same queues while they overlap and no queued connection
//! is lost when the old one stops. The protocol is systemd's (`LISTEN_FDS`,
//! `LISTEN_FDNAMES`, first fd 3) except that [`LISTEN_FDS_FROM_PARENT`]
//! replaces `LISTEN_PID` (see there why).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

pub use crate::ops::fd_passing::ReadyNotifier;
use crate::ops::fd_passing::{LISTEN_FDS_FROM_PARENT, READY_FD, SD_LISTEN_FDS_START};

/// A started successor and the pipe on which it says it serves.
#[derive(Debug)]
pub struct Successor {
    child: Child,
    /// Non-blocking read end; the write end is the child's alone, so the
    /// pipe reads EOF once the child exits without writing.
    ready: File,
}

/// How far a successor has come.
#[derive(Debug)]
pub enum Readiness {
    /// Not ready yet, still running.
    Starting,
    /// It serves: its workers accept on every passed socket.
    Serving,
    /// It closed the pipe without saying it serves: it exited, or it does
    /// not speak this protocol.
    Failed(String),
}

impl Successor {
    /// The successor's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Looks at the readiness pipe without blocking.
    pub fn readiness(&mut self) -> Readiness {
        let mut byte = [0u8; 1];
        match self.ready.read(&mut byte) {
            Ok(1..) => Readiness::Serving,
            Ok(0) => Readiness::Failed(match self.child.try_wait() {
                Ok(Some(status)) => format!("it exited ({status})"),
                _ => "it closed the readiness pipe without saying it serves".to_owned(),
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Readiness::Starting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Readiness::Starting,
            Err(e) => Readiness::Failed(format!("reading its readiness pipe: {e}")),
        }
    }

    /// Gives up on a successor that did not get ready in time: `SIGTERM`,
    /// a graceful shutdown that leaves the shared sockets listening (a
    /// `SIGKILL` would reset connections it may have accepted already); a
    /// thread reaps it.
    pub fn abandon(mut self) {
        // SAFETY: kill(2) on our child, not reaped yet (we own its `Child`),
        // so the pid still names it.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = std::thread::Builder::new()
            .name("ringwall-reap".to_owned())
            .spawn(move || self.child.wait());
    }

    /// Leaves the successor running on its own: it outlives this process.
    pub fn into_child(self) -> Child {
        self.child
    }
}

/// Starts `command` with `listeners` passed as fds 3.. and named in
/// `LISTEN_FDNAMES` (a name may not contain `:`), `LISTEN_FDS` set, and
/// [`LISTEN_FDS_FROM_PARENT`] naming this process; the write end of a
/// readiness pipe follows the listeners, named by [`READY_FD`]. The child
/// reads them with [`crate::activation::activation_from_env`].
///
/// Only the child's copies lose close-on-exec: the parent's fds keep it,
/// so a program started meanwhile from another thread inherits nothing.
pub fn spawn_with_listeners(
    mut command: Command,
    listeners: &[(BorrowedFd<'_>, &str)],
) -> io::Result<Successor> {
    if let Some((_, name)) = listeners.iter().find(|(_, name)| name.contains(':')) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("listener name {name:?} contains ':', the LISTEN_FDNAMES separator"),
        ));
    }
    let (ready_read, ready_write) = pipe()?;
    let count = listeners.len();
    let names: Vec<&str> = listeners.iter().map(|&(_, name)| name).collect();
    command
        .env_remove("LISTEN_PID")
        .env("LISTEN_FDS", count.to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env(LISTEN_FDS_FROM_PARENT, std::process::id().to_string())
        .env(READY_FD, (SD_LISTEN_FDS_START + count as RawFd).to_string());
    let mut sources: Vec<RawFd> = listeners
        .iter()
        .map(|(fd, _)| fd.as_raw_fd())
        .chain([ready_write.as_raw_fd()])
        .collect();
    // SAFETY: the hook runs in the forked child, where only async-signal-
    // safe calls are allowed: `place_fds` makes only fcntl(2) and dup2(2)
    // calls and writes into `sources`, allocated before the fork; its error
    // is `last_os_error`, which does not allocate. The fds it copies are
    // open until `spawn` returns (`listeners` are borrowed for this call,
    // `ready_write` is dropped after it).
    unsafe { command.pre_exec(move || place_fds(&mut sources)) };
    let child = command.spawn()?;
    drop(ready_write);
    Ok(Successor {
        child,
        ready: File::from(ready_read),
    })
}

/// Puts `sources` at fds 3, 4, .. without close-on-exec. Every source is
/// first copied above the target range, so placing one never overwrites
/// another that sits at a target number; `dup2` clears close-on-exec on the
/// copy (and a source already at its target would keep it, hence the copy).
fn place_fds(sources: &mut [RawFd]) -> io::Result<()> {
    let above_targets = SD_LISTEN_FDS_START + sources.len() as RawFd;
    for fd in sources.iter_mut() {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an open fd; the result is checked.
        let high = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, above_targets) };
        if high < 0 {
            return Err(io::Error::last_os_error());
        }
        *fd = high;
    }
    for (target, &fd) in (SD_LISTEN_FDS_START..).zip(sources.iter()) {
        // SAFETY: dup2 of an open fd onto a target number; whatever the
        // target held in this forked child was close-on-exec.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pipe, both ends close-on-exec and non-blocking: the parent polls the
/// read end, and the child's one-byte write never waits on an empty pipe.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array; the result is checked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    fn shell(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script);
        command
    }

    /// Polls until the successor is no longer starting (bounded).
    fn settle(successor: &mut Successor) -> Readiness {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match successor.readiness() {
                Readiness::Starting if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                outcome => return outcome,
            }
        }
    }

    #[test]
    fn the_child_finds_the_fds_at_three_on_and_the_protocol_variables() {
        // The same pipe twice, so whatever the child writes to fd 3 and 4
        // arrives here in order; `out` may itself sit at 3 or 4.
        let (read_end, write_end) = pipe().unwrap();
        let script = r#"echo "$LISTEN_FDS $LISTEN_FDNAMES $RINGWALL_READY_FD ${LISTEN_PID-unset}" >&3
            echo "parent=$RINGWALL_LISTEN_FDS_FROM_PARENT" >&4
            printf R >&5"#;
        let mut successor = spawn_with_listeners(
            shell(script),
            &[(write_end.as_fd(), "web"), (write_end.as_fd(), "admin")],
        )
        .unwrap();
        drop(write_end);
        assert!(matches!(settle(&mut successor), Readiness::Serving));
        let status = successor.into_child().wait().unwrap();
        assert!(status.success(), "{status}");
        let mut written = String::new();
        File::from(read_end).read_to_string(&mut written).unwrap();
        assert_eq!(
            written,
            format!("2 web:admin 5 unset\nparent={}\n", std::process::id())
        );
    }

    #[test]
    fn a_child_that_exits_without_notifying_has_failed() {
        let (_read_end, write_end) = pipe().unwrap();
        let mut successor =
            spawn_with_listeners(shell("exit 3"), &[(write_end.as_fd(), "web")]).unwrap();
        match settle(&mut successor) {
            Readiness::Failed(why) => assert!(why.contains("exit"), "{why}"),
            other => panic!("{other:?}"),
        }
        successor.abandon();
    }

    #[test]
    fn a_name_with_the_separator_is_refused() {
        let (_read_end, write_end) = pipe().unwrap();
        let err = spawn_with_listeners(shell("true"), &[(write_end.as_fd(), "a:b")]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
