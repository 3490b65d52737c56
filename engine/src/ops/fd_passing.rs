//! The protocol by which listening sockets pass from one process to the
//! next, shared by both ends: systemd's numbering (`LISTEN_FDS`, from fd
//! 3), ringwall's two variables for a parent that hands its sockets to a
//! successor, and the readiness byte the successor writes back. The
//! receiving end is `activation`, the handing end `handover`; neither
//! imports the other.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{OwnedFd, RawFd};

/// `SD_LISTEN_FDS_START`: the first passed fd (after stdin, stdout, stderr).
pub const SD_LISTEN_FDS_START: RawFd = 3;

/// Names the parent that handed its listening sockets down
/// ([`crate::activation::spawn_with_listeners`]), in place of `LISTEN_PID`: the parent
/// cannot know its child's pid before the fork, and setting a variable
/// between fork and exec is not async-signal-safe. The child takes the
/// sockets when this is its parent's pid.
pub const LISTEN_FDS_FROM_PARENT: &str = "RINGWALL_LISTEN_FDS_FROM_PARENT";

/// The fd, passed by a parent after its listeners, to which the child
/// writes one byte once it serves ([`ReadyNotifier`]).
pub const READY_FD: &str = "RINGWALL_READY_FD";

/// Checks that a passed fd number is an open pipe, before it is owned.
pub(crate) fn check_pipe(fd: RawFd) -> io::Result<()> {
    // SAFETY: zeroed stat is a valid out-buffer for fstat.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd number writes only into `stat`.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::other("not a pipe"));
    }
    Ok(())
}

/// The successor's end of the readiness pipe.
#[derive(Debug)]
pub struct ReadyNotifier {
    pipe: File,
}

impl ReadyNotifier {
    pub(crate) fn new(fd: OwnedFd) -> ReadyNotifier {
        ReadyNotifier {
            pipe: File::from(fd),
        }
    }

    /// Tells the parent this process serves (call it once `serve` has
    /// returned: every worker accepts); the parent then hands over.
    pub fn notify(mut self) -> io::Result<()> {
        self.pipe.write_all(b"R")
    }
}
