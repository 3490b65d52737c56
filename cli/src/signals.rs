//! The signals `ringwall serve` acts on, taken synchronously: blocked in
//! every thread and waited for in `main`, so no handler runs at an
//! arbitrary point of the program.

use std::time::Duration;

/// SIGINT and SIGTERM stop gracefully; SIGUSR2 restarts (`upgrade`).
pub struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    /// Blocks the signals in this thread and the threads it spawns later
    /// (workers, the metrics endpoint), so only `wait` takes them. Call it
    /// before spawning any thread: a thread spawned earlier keeps the
    /// default action, and SIGUSR2's default ends the process.
    pub fn block() -> Signals {
        // SAFETY: sigset is initialised by sigemptyset before use; the calls
        // only read and write this local set and the thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGUSR2] {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals { set }
        }
    }

    /// The next signal, waiting at most `timeout` (`None`: as long as it
    /// takes); `None` when none came.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<i32> {
        let Some(timeout) = timeout else {
            let mut signal = 0;
            // SAFETY: `set` is an initialised sigset and `signal` a valid
            // out-pointer.
            let ret = unsafe { libc::sigwait(&self.set, &mut signal) };
            return (ret == 0).then_some(signal);
        };
        let spec = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` is an initialised sigset, `spec` a live timespec;
        // a null siginfo pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &spec) };
        // -1: EAGAIN (timed out) or EINTR; the caller looks again.
        (signal > 0).then_some(signal)
    }
}

/// A signal's name, for the log.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}
