//! What the binary's tests share: the io_uring probe, the started binary,
//! and reading its output and its answers.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::time::Duration;

use ringwall::{Server, StartError};

/// Whether this kernel lets us use io_uring; prints why not, so the test
/// skips visibly.
pub fn io_uring_available() -> bool {
    let server = Server::builder()
        .bind(([127, 0, 0, 1], 0).into())
        .workers(1)
        .build()
        .expect("a valid configuration");
    match server.serve(|_: &ringwall::Request<'_>, _: &mut ringwall::Response<'_>| {}) {
        Ok(_) => true,
        Err(StartError::IoUring(cause)) => {
            ringwall_tests::skip_without_io_uring(&cause);
            false
        }
        Err(e) => panic!("the probe server failed to start: {e}"),
    }
}

/// No started process outlives this: past it, the watchdog kills it, so a
/// test blocked on its output or its exit fails instead of hanging CI.
const WATCHDOG: Duration = Duration::from_secs(30);

/// The started binary; killed if the test ends before it exits, or by a
/// watchdog after [`WATCHDOG`].
pub struct Running {
    pub child: Child,
    /// Dropped (disconnecting the watchdog) before the child is reaped.
    stop_watchdog: Option<std::sync::mpsc::Sender<()>>,
}

impl Running {
    pub fn new(child: Child) -> Running {
        let (stop_watchdog, stopped) = std::sync::mpsc::channel::<()>();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCHDOG)
            {
                eprintln!("watchdog: pid {pid} still running after {WATCHDOG:?}; killing it");
                // SAFETY: kill(2) on our child, which is not reaped before
                // `Drop` has disconnected this channel, so the pid is ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Running {
            child,
            stop_watchdog: Some(stop_watchdog),
        }
    }
}

impl Running {
    /// Waits for the child to exit, at most `within`; a child still running
    /// then is killed and the test fails.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let end = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on our child") {
                // Reaped: the watchdog must not signal this pid any more.
                drop(self.stop_watchdog.take());
                return status;
            }
            if std::time::Instant::now() >= end {
                let _ = self.child.kill();
                panic!("the child did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // Disconnect the watchdog before the pid can be reaped and reused.
        drop(self.stop_watchdog.take());
        let _ = self.child.wait();
    }
}

/// Reads output lines until one contains `prefix`; returns the rest of it.
/// Contains, not starts with: each line is a log event, after its
/// timestamp, level and target.
pub fn line_after(stdout: &mut impl BufRead, prefix: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("stdout is readable");
        assert!(
            read > 0,
            "the server exited before printing `{prefix}`:\n{seen}"
        );
        if let Some(at) = line.find(prefix) {
            return line[at + prefix.len()..].trim_end().to_owned();
        }
        seen.push_str(&line);
    }
}

/// One request on its own connection; the whole response as text.
pub fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response ends with a close");
    response
}
