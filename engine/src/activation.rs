//! Socket activation: listening sockets handed to us already bound, by
//! systemd's protocol (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, first fd
//! 3) or by whoever calls [`crate::ServerBuilder::listen_fd`].
//!
//! An inherited socket is shared with whoever passed it (systemd keeps its
//! own copy, to hand to the next instance after a restart), so the engine
//! never `shutdown()`s one: that would stop it listening for everyone
//! (ARCHITECTURE.md, Engine invariants).

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::socket;

/// `SD_LISTEN_FDS_START`: the first passed fd (after stdin, stdout, stderr).
pub const SD_LISTEN_FDS_START: RawFd = 3;

/// One listening socket passed by systemd.
#[derive(Debug)]
#[non_exhaustive]
pub struct InheritedListener {
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=` in the socket
    /// unit), or `"unknown"` when none were passed, as `sd_listen_fds_with_names`.
    pub name: String,
    pub fd: OwnedFd,
}

/// Why the systemd environment could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActivationError {
    /// A variable that is not a positive number where one is required.
    NotANumber { var: &'static str, value: String },
    /// More fds than fit after fd 3.
    TooManyFds(u64),
    /// `LISTEN_FDNAMES` names a different number of fds than `LISTEN_FDS`.
    NameCount { names: usize, fds: usize },
    /// A passed fd that cannot be served.
    Unusable { fd: RawFd, problem: NotAListener },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivationError::NotANumber { var, value } => {
                write!(f, "{var}={value:?} is not a valid number")
            }
            ActivationError::TooManyFds(n) => write!(f, "LISTEN_FDS={n} is too many fds"),
            ActivationError::NameCount { names, fds } => write!(
                f,
                "LISTEN_FDNAMES names {names} fds but LISTEN_FDS passes {fds}"
            ),
            ActivationError::Unusable { fd, problem } => {
                write!(f, "passed fd {fd} cannot be served: {problem}")
            }
        }
    }
}

impl std::error::Error for ActivationError {}

/// Why an fd is not a listening TCP socket the engine can accept on.
#[derive(Debug)]
#[non_exhaustive]
pub enum NotAListener {
    /// Not open (EBADF) or not a socket (ENOTSOCK), or the query failed.
    NotASocket(io::Error),
    /// A socket of another type (datagram, seqpacket).
    NotStream { so_type: i32 },
    /// Neither IPv4 nor IPv6 (e.g. a Unix socket).
    NotInet { domain: i32 },
    /// A stream socket on which `listen()` was never called.
    NotListening,
}

impl fmt::Display for NotAListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAListener::NotASocket(e) => write!(f, "not a socket: {e}"),
            NotAListener::NotStream { so_type } => {
                write!(f, "not a stream socket (SO_TYPE {so_type})")
            }
            NotAListener::NotInet { domain } => {
                write!(f, "not an IPv4 or IPv6 socket (SO_DOMAIN {domain})")
            }
            NotAListener::NotListening => write!(f, "not listening (no listen() call)"),
        }
    }
}

impl std::error::Error for NotAListener {}

/// What the three variables say, before any fd is looked at: the fd numbers
/// passed and their names. Empty when the variables are absent or meant for
/// another process. Pure, so the parsing is tested without touching the
/// process environment.
pub(crate) fn parse_listen_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    our_pid: u32,
) -> Result<Vec<(RawFd, String)>, ActivationError> {
    let number = |var: &'static str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| ActivationError::NotANumber {
                var,
                value: value.to_owned(),
            })
    };
    // As sd_listen_fds: no LISTEN_PID means nothing was passed to us.
    let Some(pid) = listen_pid else {
        return Ok(Vec::new());
    };
    // A LISTEN_PID for another process means a parent was activated and we
    // inherited its environment, not its sockets' ownership.
    if number("LISTEN_PID", pid)? != u64::from(our_pid) {
        return Ok(Vec::new());
    }
    let Some(fds) = listen_fds else {
        return Ok(Vec::new());
    };
    let count = number("LISTEN_FDS", fds)?;
    if count > (RawFd::MAX - SD_LISTEN_FDS_START) as u64 {
        return Err(ActivationError::TooManyFds(count));
    }
    let count = count as usize;
    let names: Vec<String> = match listen_fdnames {
        Some(names) => {
            let names: Vec<String> = names.split(':').map(str::to_owned).collect();
            if names.len() != count {
                return Err(ActivationError::NameCount {
                    names: names.len(),
                    fds: count,
                });
            }
            names
        }
        None => vec!["unknown".to_owned(); count],
    };
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| (SD_LISTEN_FDS_START + i as RawFd, name))
        .collect())
}

/// Takes the listening sockets systemd passed to this process, as
/// `sd_listen_fds_with_names(1)` does: each is checked to be a listening
/// IPv4 or IPv6 TCP socket and marked close-on-exec, and `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` are removed from the environment so a
/// child process does not take them for its own. Empty when nothing was
/// passed to this process. Hand each fd to
/// [`crate::ServerBuilder::listen_fd`].
///
/// Call it once, early in `main`, before other threads exist: it changes
/// the environment, which is not safe while another thread reads it. On an
/// error no fd is taken or closed.
pub fn listen_fds_from_env() -> Result<Vec<InheritedListener>, ActivationError> {
    let var = |name| std::env::var(name).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    let passed = parse_listen_env(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )?;
    // Every fd is checked before any is owned: an OwnedFd for a number that
    // is not open would close someone else's fd later, or abort on EBADF.
    for &(fd, _) in &passed {
        socket::check_listener(fd).map_err(|problem| ActivationError::Unusable { fd, problem })?;
        socket::set_cloexec(fd).map_err(|e| ActivationError::Unusable {
            fd,
            problem: NotAListener::NotASocket(e),
        })?;
    }
    Ok(passed
        .into_iter()
        .map(|(fd, name)| InheritedListener {
            name,
            // SAFETY: the fd is open (checked above) and systemd's protocol
            // passes it to this process alone; the variables are removed, so
            // no later call takes it a second time.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    #[test]
    fn fds_for_our_pid_start_at_three_and_are_named_unknown_without_names() {
        let passed = parse_listen_env(Some("4242"), Some("2"), None, PID).unwrap();
        assert_eq!(
            passed,
            vec![(3, "unknown".to_owned()), (4, "unknown".to_owned())]
        );
    }

    #[test]
    fn listen_fdnames_name_each_fd_in_order() {
        let passed = parse_listen_env(Some("4242"), Some("2"), Some("http:admin"), PID).unwrap();
        assert_eq!(
            passed,
            vec![(3, "http".to_owned()), (4, "admin".to_owned())]
        );
    }

    #[test]
    fn a_listen_pid_for_another_process_is_ignored() {
        let passed = parse_listen_env(Some("4243"), Some("2"), Some("a:b"), PID).unwrap();
        assert!(passed.is_empty(), "{passed:?}");
    }

    #[test]
    fn no_listen_pid_or_no_listen_fds_passes_nothing() {
        assert!(parse_listen_env(None, Some("2"), None, PID)
            .unwrap()
            .is_empty());
        assert!(parse_listen_env(Some("4242"), None, None, PID)
            .unwrap()
            .is_empty());
        assert!(parse_listen_env(Some("4242"), Some("0"), None, PID)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn invalid_values_are_errors_naming_the_variable() {
        let err = parse_listen_env(Some("x42"), Some("1"), None, PID).unwrap_err();
        assert!(
            matches!(
                err,
                ActivationError::NotANumber {
                    var: "LISTEN_PID",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_listen_env(Some("4242"), Some("-1"), None, PID).unwrap_err();
        assert!(err.to_string().contains("LISTEN_FDS"), "{err}");
        let err = parse_listen_env(Some("4242"), Some("99999999999"), None, PID).unwrap_err();
        assert!(matches!(err, ActivationError::TooManyFds(_)), "{err}");
    }

    #[test]
    fn a_name_count_that_differs_from_listen_fds_is_an_error() {
        let err = parse_listen_env(Some("4242"), Some("2"), Some("only-one"), PID).unwrap_err();
        assert!(
            matches!(err, ActivationError::NameCount { names: 1, fds: 2 }),
            "{err}"
        );
    }
}
