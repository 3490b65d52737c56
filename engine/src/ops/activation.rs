//! Socket activation: listening sockets handed to us already bound, by
//! systemd's protocol (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, first fd
//! 3) or by whoever calls [`crate::ServerBuilder::listen_fd`], or by a
//! ringwall parent handing its sockets down to its successor
//! ([`crate::activation::spawn_with_listeners`]).
//!
//! An inherited socket is shared with whoever passed it (systemd keeps its
//! own copy, to hand to the next instance after a restart), so the engine
//! never `shutdown()`s one: that would stop it listening for everyone
//! (ARCHITECTURE.md, Engine invariants).

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::ops::fd_passing::{self, ReadyNotifier};
pub use crate::ops::fd_passing::{LISTEN_FDS_FROM_PARENT, READY_FD, SD_LISTEN_FDS_START};
use crate::sys::socket::{self, NotAListener};

/// Who passed the listening sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerOrigin {
    /// `LISTEN_PID` named this process: systemd, or a tool that speaks its
    /// protocol (`systemd-socket-activate`).
    SocketActivation,
    /// A ringwall parent handing over to this process
    /// ([`LISTEN_FDS_FROM_PARENT`]).
    Parent {
        /// The parent's process id.
        pid: u32,
    },
}

/// What the environment passed to this process.
#[derive(Debug, Default)]
pub struct Activation {
    /// The passed listening sockets, in fd order from fd 3; empty when
    /// nothing was passed.
    pub listeners: Vec<InheritedListener>,
    /// `None` when nothing was passed.
    pub origin: Option<ListenerOrigin>,
    /// From a parent: tell it once this process serves.
    pub ready: Option<ReadyNotifier>,
}

/// One listening socket passed by systemd or a parent.
#[derive(Debug)]
#[non_exhaustive]
pub struct InheritedListener {
    /// Its name from `LISTEN_FDNAMES` (`FileDescriptorName=` in the socket
    /// unit), or `"unknown"` when none were passed, as `sd_listen_fds_with_names`.
    pub name: String,
    /// The socket, checked to be a listening TCP socket and set close-on-exec.
    pub fd: OwnedFd,
}

/// Why the systemd environment could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum ActivationError {
    /// A variable that is not a positive number where one is required.
    NotANumber {
        /// The variable's name, such as `"LISTEN_FDS"`.
        var: &'static str,
        /// Its value as found.
        value: String,
    },
    /// More fds than fit after fd 3.
    TooManyFds(u64),
    /// `LISTEN_FDNAMES` names a different number of fds than `LISTEN_FDS`.
    NameCount {
        /// Names in `LISTEN_FDNAMES`.
        names: usize,
        /// The count in `LISTEN_FDS`.
        fds: usize,
    },
    /// A passed fd that cannot be served.
    Unusable {
        /// The passed descriptor.
        fd: RawFd,
        /// Why it cannot be served.
        problem: NotAListener,
    },
    /// [`LISTEN_FDS_FROM_PARENT`] names a process that is not our parent
    /// (any more): it exited before the handover, and nobody waits for us.
    ParentGone {
        /// The process id the variable names.
        named: u32,
        /// This process's actual parent.
        parent: u32,
    },
    /// The [`READY_FD`] a parent passed is not an open pipe.
    ReadyFd {
        /// The fd number given in the variable.
        fd: RawFd,
        /// Why it is refused: not right after the listeners, or not a pipe.
        problem: io::Error,
    },
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
            ActivationError::ParentGone { named, parent } => write!(
                f,
                "{LISTEN_FDS_FROM_PARENT}={named} but our parent is pid {parent}: \
                 it exited before handing its sockets over"
            ),
            ActivationError::ReadyFd { fd, problem } => {
                write!(f, "{READY_FD}={fd} is not a usable pipe: {problem}")
            }
        }
    }
}

impl std::error::Error for ActivationError {}

/// The variables as found, for [`parse_listen_env`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ListenEnv<'a> {
    pub listen_pid: Option<&'a str>,
    pub listen_fds: Option<&'a str>,
    pub listen_fdnames: Option<&'a str>,
    pub from_parent: Option<&'a str>,
    pub ready_fd: Option<&'a str>,
}

/// What the variables pass to us, before any fd is looked at.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Passed {
    /// The fd numbers and their names.
    pub fds: Vec<(RawFd, String)>,
    pub origin: Option<ListenerOrigin>,
    pub ready_fd: Option<RawFd>,
}

/// What the variables say, before any fd is looked at: the fd numbers
/// passed and their names. Empty when the variables are absent or meant for
/// another process. Pure, so the parsing is tested without touching the
/// process environment.
pub(crate) fn parse_listen_env(
    env: ListenEnv<'_>,
    our_pid: u32,
    our_parent: u32,
) -> Result<Passed, ActivationError> {
    let number = |var: &'static str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| ActivationError::NotANumber {
                var,
                value: value.to_owned(),
            })
    };
    let origin = match (env.listen_pid, env.from_parent) {
        // A LISTEN_PID for another process means a parent was activated and
        // we inherited its environment, not its sockets' ownership.
        (Some(pid), _) if number("LISTEN_PID", pid)? != u64::from(our_pid) => {
            return Ok(Passed::default())
        }
        (Some(_), _) => ListenerOrigin::SocketActivation,
        (None, Some(pid)) => {
            let named = number(LISTEN_FDS_FROM_PARENT, pid)?;
            if named != u64::from(our_parent) {
                return Err(ActivationError::ParentGone {
                    named: named as u32,
                    parent: our_parent,
                });
            }
            ListenerOrigin::Parent { pid: our_parent }
        }
        // As sd_listen_fds: no LISTEN_PID means nothing was passed to us.
        (None, None) => return Ok(Passed::default()),
    };
    let Some(fds) = env.listen_fds else {
        return Ok(Passed::default());
    };
    let count = number("LISTEN_FDS", fds)?;
    if count > (RawFd::MAX - SD_LISTEN_FDS_START - 1) as u64 {
        return Err(ActivationError::TooManyFds(count));
    }
    let count = count as usize;
    let names: Vec<String> = match env.listen_fdnames {
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
    // Only a parent passes a ready fd, and only right after the listeners:
    // any other number could be an fd this process already owns.
    let ready_fd = match (origin, env.ready_fd) {
        (ListenerOrigin::Parent { .. }, Some(fd)) => {
            let fd = number(READY_FD, fd)?;
            let expected = SD_LISTEN_FDS_START + count as RawFd;
            if fd != expected as u64 {
                return Err(ActivationError::ReadyFd {
                    fd: fd.min(RawFd::MAX as u64) as RawFd,
                    problem: io::Error::other(format!(
                        "the ready fd follows the {count} listeners, at {expected}"
                    )),
                });
            }
            Some(expected)
        }
        _ => None,
    };
    if count == 0 {
        return Ok(Passed {
            ready_fd,
            ..Passed::default()
        });
    }
    Ok(Passed {
        fds: names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (SD_LISTEN_FDS_START + i as RawFd, name))
            .collect(),
        origin: Some(origin),
        ready_fd,
    })
}

/// Takes the listening sockets systemd passed to this process, as
/// `sd_listen_fds_with_names(1)` does: each is checked to be a listening
/// IPv4 or IPv6 TCP socket and marked close-on-exec, and `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` are removed from the environment so a
/// child process does not take them for its own. Empty when nothing was
/// passed to this process. Hand each fd to
/// [`crate::ServerBuilder::listen_fd`].
///
/// Sockets a ringwall parent handed down are taken too; their readiness
/// pipe is closed unused, which the parent takes for a failed handover:
/// call [`activation_from_env`] to answer it.
///
/// Call it once, early in `main`, before other threads exist: it changes
/// the environment, which is not safe while another thread reads it. On an
/// error no fd is taken or closed.
pub fn listen_fds_from_env() -> Result<Vec<InheritedListener>, ActivationError> {
    activation_from_env().map(|activation| activation.listeners)
}

/// [`listen_fds_from_env`], plus who passed the sockets and, from a ringwall
/// parent, the [`ReadyNotifier`] to answer it with once serving.
pub fn activation_from_env() -> Result<Activation, ActivationError> {
    const VARS: [&str; 5] = [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        LISTEN_FDS_FROM_PARENT,
        READY_FD,
    ];
    let values = VARS.map(|name| std::env::var(name).ok());
    for name in VARS {
        std::env::remove_var(name);
    }
    let [listen_pid, listen_fds, listen_fdnames, from_parent, ready_fd] = &values;
    let env = ListenEnv {
        listen_pid: listen_pid.as_deref(),
        listen_fds: listen_fds.as_deref(),
        listen_fdnames: listen_fdnames.as_deref(),
        from_parent: from_parent.as_deref(),
        ready_fd: ready_fd.as_deref(),
    };
    let passed = parse_listen_env(env, std::process::id(), std::os::unix::process::parent_id())?;
    // Every fd is checked before any is owned: an OwnedFd for a number that
    // is not open would close someone else's fd later, or abort on EBADF.
    for &(fd, _) in &passed.fds {
        socket::check_listener(fd).map_err(|problem| ActivationError::Unusable { fd, problem })?;
        socket::set_cloexec(fd).map_err(|e| ActivationError::Unusable {
            fd,
            problem: NotAListener::NotASocket(e),
        })?;
    }
    if let Some(fd) = passed.ready_fd {
        fd_passing::check_pipe(fd)
            .and_then(|()| socket::set_cloexec(fd))
            .map_err(|problem| ActivationError::ReadyFd { fd, problem })?;
    }
    Ok(Activation {
        listeners: passed
            .fds
            .into_iter()
            .map(|(fd, name)| InheritedListener {
                name,
                // SAFETY: the fd is open (checked above) and the protocol
                // passes it to this process alone; the variables are
                // removed, so no later call takes it a second time.
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
            .collect(),
        origin: passed.origin,
        // SAFETY: as the listeners: an open pipe (checked above), passed to
        // this process alone.
        ready: passed
            .ready_fd
            .map(|fd| ReadyNotifier::new(unsafe { OwnedFd::from_raw_fd(fd) })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;
    const PARENT: u32 = 17;

    /// The fds the variables pass, as systemd sets them.
    fn systemd(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> Vec<(RawFd, String)> {
        let env = ListenEnv {
            listen_pid: pid,
            listen_fds: fds,
            listen_fdnames: names,
            ..ListenEnv::default()
        };
        parse_listen_env(env, PID, PARENT).unwrap().fds
    }

    fn systemd_err(pid: &str, fds: &str, names: Option<&str>) -> ActivationError {
        let env = ListenEnv {
            listen_pid: Some(pid),
            listen_fds: Some(fds),
            listen_fdnames: names,
            ..ListenEnv::default()
        };
        parse_listen_env(env, PID, PARENT).unwrap_err()
    }

    /// As `spawn_with_listeners` sets them.
    fn from_parent(
        parent: &str,
        fds: &str,
        ready_fd: Option<&str>,
    ) -> Result<Passed, ActivationError> {
        let env = ListenEnv {
            listen_fds: Some(fds),
            listen_fdnames: Some("http:metrics"),
            from_parent: Some(parent),
            ready_fd,
            ..ListenEnv::default()
        };
        parse_listen_env(env, PID, PARENT)
    }

    #[test]
    fn fds_for_our_pid_start_at_three_and_are_named_unknown_without_names() {
        let passed = systemd(Some("4242"), Some("2"), None);
        assert_eq!(
            passed,
            vec![(3, "unknown".to_owned()), (4, "unknown".to_owned())]
        );
    }

    #[test]
    fn listen_fdnames_name_each_fd_in_order() {
        let passed = systemd(Some("4242"), Some("2"), Some("http:admin"));
        assert_eq!(
            passed,
            vec![(3, "http".to_owned()), (4, "admin".to_owned())]
        );
    }

    #[test]
    fn a_listen_pid_for_another_process_is_ignored() {
        let passed = systemd(Some("4243"), Some("2"), Some("a:b"));
        assert!(passed.is_empty(), "{passed:?}");
    }

    #[test]
    fn no_listen_pid_or_no_listen_fds_passes_nothing() {
        assert!(systemd(None, Some("2"), None).is_empty());
        assert!(systemd(Some("4242"), None, None).is_empty());
        assert!(systemd(Some("4242"), Some("0"), None).is_empty());
    }

    #[test]
    fn invalid_values_are_errors_naming_the_variable() {
        let err = systemd_err("x42", "1", None);
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
        let err = systemd_err("4242", "-1", None);
        assert!(err.to_string().contains("LISTEN_FDS"), "{err}");
        let err = systemd_err("4242", "99999999999", None);
        assert!(matches!(err, ActivationError::TooManyFds(_)), "{err}");
    }

    #[test]
    fn a_name_count_that_differs_from_listen_fds_is_an_error() {
        let err = systemd_err("4242", "2", Some("only-one"));
        assert!(
            matches!(err, ActivationError::NameCount { names: 1, fds: 2 }),
            "{err}"
        );
    }

    #[test]
    fn sockets_from_our_parent_come_with_the_ready_fd_after_them() {
        let passed = from_parent("17", "2", Some("5")).unwrap();
        assert_eq!(
            passed,
            Passed {
                fds: vec![(3, "http".to_owned()), (4, "metrics".to_owned())],
                origin: Some(ListenerOrigin::Parent { pid: PARENT }),
                ready_fd: Some(5),
            }
        );
    }

    #[test]
    fn sockets_from_a_parent_that_is_gone_are_an_error() {
        let err = from_parent("18", "2", Some("5")).unwrap_err();
        assert!(
            matches!(
                err,
                ActivationError::ParentGone {
                    named: 18,
                    parent: PARENT
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_ready_fd_anywhere_but_after_the_listeners_is_refused() {
        let err = from_parent("17", "2", Some("0")).unwrap_err();
        assert!(
            matches!(err, ActivationError::ReadyFd { fd: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_ready_fd_without_a_parent_is_ignored() {
        let env = ListenEnv {
            listen_pid: Some("4242"),
            listen_fds: Some("1"),
            ready_fd: Some("4"),
            ..ListenEnv::default()
        };
        let passed = parse_listen_env(env, PID, PARENT).unwrap();
        assert_eq!(passed.ready_fd, None);
        assert_eq!(passed.origin, Some(ListenerOrigin::SocketActivation));
    }
}
