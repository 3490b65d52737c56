//! Starting a server for one test, and skipping when io_uring is unavailable.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringwall::{Backend, Handler, Server, ServerBuilder, ServerHandle, StartError};
use ringwall_bench::sys::raise_nofile_limit;

/// The backend the suite runs on: `RINGWALL_TEST_BACKEND` (`io-uring`,
/// the default, or `epoll`), so the whole suite runs against either
/// backend without a copy of any test. Not `auto`: a suite meant for
/// io_uring must not pass on epoll unnoticed.
pub fn test_backend() -> Backend {
    match std::env::var("RINGWALL_TEST_BACKEND") {
        Ok(name) => name
            .parse()
            .unwrap_or_else(|e| panic!("RINGWALL_TEST_BACKEND: {e}")),
        Err(_) => Backend::IoUring,
    }
}

/// Whether a test of something only the io_uring backend has (its
/// submission queue, its ring counters) runs on this suite's backend;
/// says so when it skips.
pub fn runs_only_on_io_uring(what: &str) -> bool {
    if test_backend() == Backend::IoUring {
        return true;
    }
    eprintln!("SKIPPED on {}: {what} is io_uring's", test_backend());
    false
}

/// A builder for a test server on [`test_backend`]: port 0 on loopback,
/// two workers, and timeouts long enough that only the ones a test sets
/// can fire.
pub fn builder() -> ServerBuilder {
    let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
    Server::builder()
        .backend(test_backend())
        .bind(any_port)
        .workers(2)
        .header_timeout(Duration::from_secs(10))
        .body_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(10))
        .write_timeout(Duration::from_secs(10))
        .shutdown_timeout(Duration::from_secs(5))
}

/// Starts the server, or returns `None` after printing why when the kernel
/// offers no io_uring (sysctl, seccomp, old kernel): the test then skips
/// visibly instead of passing silently. Any other start failure panics.
///
/// ```no_run
/// use ringwall_tests::{app, builder, start_or_skip};
///
/// let Some(server) = start_or_skip(builder(), app) else {
///     return;
/// };
/// println!("serving on {}", server.local_addr());
/// ```
pub fn start_or_skip<H: Handler>(builder: ServerBuilder, handler: H) -> Option<ServerHandle> {
    // Slowloris and churn tests hold several hundred sockets on both sides
    // of loopback, past the usual soft limit of 1024.
    raise_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE to its hard limit");
    let server = builder.build().expect("the test's configuration is valid");
    match server.serve(handler) {
        Ok(handle) => Some(handle),
        Err(StartError::IoUring(cause)) => {
            skip_without_io_uring(&cause);
            None
        }
        Err(e) => panic!("the server failed to start: {e}"),
    }
}

/// Says why a test skips for want of io_uring, or fails it under CI.
///
/// A green CI run must prove the engine works, so with `CI` set (as
/// `.ci/run` sets it) a refused io_uring fails the test instead of skipping
/// it. Where CI runs on a host that really has none (a container whose
/// seccomp profile refuses it, say), `RINGWALL_TESTS_ALLOW_NO_URING=1` says
/// so explicitly and the tests skip again.
pub fn skip_without_io_uring(cause: &dyn std::fmt::Display) {
    let under_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let allowed = std::env::var_os("RINGWALL_TESTS_ALLOW_NO_URING").is_some();
    if under_ci && !allowed {
        panic!(
            "io_uring is unavailable under CI: {cause} \
             (set RINGWALL_TESTS_ALLOW_NO_URING=1 if this host cannot have it)"
        );
    }
    eprintln!("SKIPPED: io_uring is unavailable on this machine: {cause}");
}

/// Serialises the tests of one test binary that hold hundreds of sockets or
/// measure deadlines to the millisecond, so that on a two-core machine they
/// do not starve each other. A test that panicked while holding it does not
/// poison the others.
pub fn heavy_test_lock() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `condition` every few milliseconds until it holds or `within` has
/// passed; returns whether it held.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, because it changes the process's environment.
    #[test]
    fn a_refused_io_uring_fails_under_ci_unless_allowed() {
        let saved = (
            std::env::var_os("CI"),
            std::env::var_os("RINGWALL_TESTS_ALLOW_NO_URING"),
        );
        std::env::remove_var("RINGWALL_TESTS_ALLOW_NO_URING");
        std::env::set_var("CI", "true");
        let under_ci = std::panic::catch_unwind(|| skip_without_io_uring(&"seccomp"));
        std::env::set_var("RINGWALL_TESTS_ALLOW_NO_URING", "1");
        let allowed = std::panic::catch_unwind(|| skip_without_io_uring(&"seccomp"));
        std::env::remove_var("RINGWALL_TESTS_ALLOW_NO_URING");
        std::env::set_var("CI", "false");
        let not_ci = std::panic::catch_unwind(|| skip_without_io_uring(&"seccomp"));
        for (name, value) in [("CI", saved.0), ("RINGWALL_TESTS_ALLOW_NO_URING", saved.1)] {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
        assert!(
            under_ci.is_err(),
            "under CI a refused io_uring must fail the test"
        );
        assert!(allowed.is_ok(), "the explicit allowance must skip");
        assert!(not_ci.is_ok(), "outside CI the test skips");
    }
}
