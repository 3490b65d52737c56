//! Errors from starting the server, with the cause named.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use crate::ops::stats::Stats;
use crate::sys::socket::NotAListener;

/// Why io_uring cannot be used on this machine.
#[derive(Debug)]
#[non_exhaustive]
pub enum UringUnavailable {
    /// `kernel.io_uring_disabled` is set (1: only `kernel.io_uring_group` may
    /// use it; 2: nobody may).
    DisabledBySysctl {
        /// The sysctl's value, 1 or 2.
        value: u8,
    },
    /// `io_uring_setup` was refused with EPERM while the sysctl allows it:
    /// a seccomp filter (Docker's and many sandboxes' default) blocks it.
    Seccomp,
    /// ENOSYS: the kernel was built without io_uring or predates it.
    NoKernelSupport,
    /// The kernel has io_uring but lacks something ringwall needs.
    MissingFeature {
        /// What is missing, such as provided buffer rings.
        feature: &'static str,
        /// The kernel that has it, such as `"Linux 5.19 or later"`.
        needs: &'static str,
    },
    /// Any other setup failure.
    Setup(io::Error),
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UringUnavailable::DisabledBySysctl { value } => write!(
                f,
                "io_uring is disabled by sysctl kernel.io_uring_disabled={value}; \
                 set it to 0 (`sysctl kernel.io_uring_disabled=0`){}",
                if *value == 1 {
                    " or run as a member of kernel.io_uring_group"
                } else {
                    ""
                }
            ),
            UringUnavailable::Seccomp => write!(
                f,
                "io_uring_setup was denied (EPERM) although kernel.io_uring_disabled allows it: \
                 a seccomp filter blocks io_uring (container runtimes do by default); \
                 run with a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register"
            ),
            UringUnavailable::NoKernelSupport => write!(
                f,
                "io_uring_setup returned ENOSYS: this kernel has no io_uring \
                 (built without CONFIG_IO_URING, or older than 5.1); ringwall needs Linux 6.0 or later"
            ),
            UringUnavailable::MissingFeature { feature, needs } => {
                write!(f, "the kernel's io_uring lacks {feature} (needs {needs})")
            }
            UringUnavailable::Setup(e) => write!(f, "io_uring setup failed: {e}"),
        }
    }
}

impl std::error::Error for UringUnavailable {}

impl UringUnavailable {
    /// io_uring is refused here (a policy, or the kernel lacks it), as
    /// opposed to failing for want of a resource (memory, descriptors),
    /// which falling back to another backend would only hide.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, UringUnavailable::Setup(_))
    }

    /// Names the cause of a failed `io_uring_setup`.
    pub(crate) fn diagnose(err: io::Error) -> UringUnavailable {
        match err.raw_os_error() {
            Some(libc::ENOSYS) => UringUnavailable::NoKernelSupport,
            Some(libc::EPERM) | Some(libc::EACCES) => match read_io_uring_disabled() {
                Some(value) if value > 0 => UringUnavailable::DisabledBySysctl { value },
                _ => UringUnavailable::Seccomp,
            },
            _ => UringUnavailable::Setup(err),
        }
    }
}

fn read_io_uring_disabled() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Why [`crate::Server::serve`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// io_uring cannot be used; the cause says why and what to do.
    IoUring(UringUnavailable),
    /// A listener could not be created or bound.
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The error from the socket call that failed.
        source: io::Error,
    },
    /// Another socket already listens on this address, and
    /// [`crate::ServerBuilder::reuse_port`] is off: serving it too would
    /// split its connections with whoever holds it.
    AddrInUse {
        /// The address another socket listens on.
        addr: SocketAddr,
    },
    /// A socket passed to [`crate::ServerBuilder::listen_fd`] is not a
    /// listening IPv4 or IPv6 TCP socket. Checked before any worker starts.
    Inherited {
        /// The passed descriptor.
        fd: RawFd,
        /// What it is instead of a listening TCP socket.
        problem: NotAListener,
    },
    /// A worker thread or its resources could not be set up.
    Worker(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::IoUring(cause) => write!(f, "io_uring unavailable: {cause}"),
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::AddrInUse { addr } => write!(
                f,
                "cannot listen on {addr}: another socket already listens on it \
                 (another process, or another server in this one), and serving it \
                 too would split its connections; to share it on purpose, set \
                 ServerBuilder::reuse_port"
            ),
            StartError::Inherited { fd, problem } => {
                write!(f, "cannot serve the passed socket (fd {fd}): {problem}")
            }
            StartError::Worker(e) => write!(f, "cannot start a worker: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::IoUring(cause) => Some(cause),
            StartError::Bind { source, .. } => Some(source),
            StartError::AddrInUse { .. } => None,
            StartError::Inherited { problem, .. } => Some(problem),
            StartError::Worker(e) => Some(e),
        }
    }
}

/// Why a running server stopped on its own: returned by
/// [`crate::ServerHandle::wait`] and [`crate::ServerHandle::shutdown`].
///
/// One failed worker stops the whole server: the others shut down
/// gracefully (as on [`crate::ServerHandle::shutdown`]), so the caller
/// learns of it at once and a supervisor can restart the process, rather
/// than serving on with part of its listening capacity gone.
#[derive(Debug)]
#[non_exhaustive]
pub struct ServeError {
    /// The worker that failed first (its thread is `ringwall-worker-N`).
    /// Each failure is also logged as it happens.
    pub worker: usize,
    /// What ended that worker.
    pub failure: WorkerFailure,
    /// The counters summed over every worker, once all had stopped (boxed:
    /// they are a few hundred bytes, and this error is returned by value).
    pub stats: Box<Stats>,
}

/// What ended a worker.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerFailure {
    /// `io_uring_enter` failed with an error no retry mends (not EINTR,
    /// EBUSY, EAGAIN or ENOMEM, which the worker rides out).
    Ring(io::Error),
    /// The worker's thread panicked, with this message: a bug in ringwall.
    /// (A handler's panic is caught and answered 500.)
    Panicked(String),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let worker = self.worker;
        match &self.failure {
            WorkerFailure::Ring(e) => write!(
                f,
                "worker {worker} stopped: io_uring_enter failed: {e}; the server shut down"
            ),
            WorkerFailure::Panicked(message) => write!(
                f,
                "worker {worker} panicked: {message}; the server shut down"
            ),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            WorkerFailure::Ring(e) => Some(e),
            WorkerFailure::Panicked(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enosys_names_missing_kernel_support() {
        let cause = UringUnavailable::diagnose(io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(matches!(cause, UringUnavailable::NoKernelSupport));
        assert!(cause.to_string().contains("ENOSYS"));
    }

    #[test]
    fn eperm_names_sysctl_or_seccomp() {
        let cause = UringUnavailable::diagnose(io::Error::from_raw_os_error(libc::EPERM));
        let text = cause.to_string();
        match read_io_uring_disabled() {
            Some(v) if v > 0 => assert!(text.contains("kernel.io_uring_disabled"), "{text}"),
            _ => assert!(text.contains("seccomp"), "{text}"),
        }
    }
}
