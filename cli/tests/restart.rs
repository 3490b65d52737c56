//! `ringwall serve` restarting on SIGUSR2 under load: the successor takes
//! the listening sockets over, the old process drains and exits, and the
//! clients see no error and no refused connection. A successor that fails
//! leaves the old process serving.

mod common;

use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{exchange, io_uring_available, line_after, Running};
use ringwall_bench::{run_load, LoadConfig, LoadMode, LoadReport};

const HELLO: &str = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// A process this test did not start but adopted as the child subreaper:
/// the successor, reparented to us when the old process exits. Killed if
/// the test ends before it exits.
struct Adopted {
    pid: libc::pid_t,
    reaped: bool,
}

impl Adopted {
    /// Sends `signal` and waits (at most `within`) for the exit; the status.
    fn stop(&mut self, signal: libc::c_int, within: Duration) -> libc::c_int {
        // SAFETY: kill(2) on a process that is our child (we are its
        // subreaper) and not reaped yet, so the pid still names it.
        assert_eq!(unsafe { libc::kill(self.pid, signal) }, 0, "kill failed");
        let end = Instant::now() + within;
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid out-pointer.
            let ret = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if ret == self.pid {
                self.reaped = true;
                return status;
            }
            assert!(ret == 0, "waitpid: {}", std::io::Error::last_os_error());
            assert!(Instant::now() < end, "pid {} did not exit", self.pid);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Adopted {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: as in `stop`: our unreaped child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Makes this test process the parent of every orphan it leaves, so the
/// successor, outliving the process that started it, can be stopped and
/// reaped by its pid.
fn become_subreaper() {
    // SAFETY: prctl with an integer argument; changes only this process.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "{}", std::io::Error::last_os_error());
}

fn serve(exe: &Path) -> (Running, BufReader<ChildStdout>, SocketAddr) {
    let end = Instant::now() + Duration::from_secs(5);
    let child = loop {
        let spawned = Command::new(exe)
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2"])
            .args(["--shutdown-timeout", "5s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            // A copied binary: another test's fork may still hold the fd
            // the copy was written through, until that child execs.
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy && Instant::now() < end =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            spawned => break spawned.expect("ringwall starts"),
        }
    };
    let mut server = Running::new(child);
    let mut stdout = BufReader::new(server.child.stdout.take().unwrap());
    let addr = line_after(&mut stdout, "ringwall listening on ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (server, stdout, addr)
}

fn signal(server: &Running, signal: libc::c_int) {
    // SAFETY: kill(2) on our child, not yet reaped (`Running` reaps it only
    // in `wait_exit` or on drop), so the pid names it.
    let ret = unsafe { libc::kill(server.child.id() as libc::pid_t, signal) };
    assert_eq!(ret, 0, "the signal was not sent");
}

/// A checked load run on a thread: `mode` for `duration`.
fn load(
    addr: SocketAddr,
    mode: LoadMode,
    connections: usize,
    duration: Duration,
) -> std::thread::JoinHandle<LoadReport> {
    std::thread::spawn(move || {
        let cfg = LoadConfig {
            mode,
            connections,
            threads: 1,
            duration,
            ..LoadConfig::new(addr)
        };
        run_load(&cfg).expect("the load runs")
    })
}

#[test]
fn sigusr2_hands_over_under_load_without_an_error_or_a_refused_connection() {
    if !io_uring_available() {
        return;
    }
    become_subreaper();
    let (mut old, mut stdout, addr) = serve(Path::new(env!("CARGO_BIN_EXE_ringwall")));
    let old_pid = old.child.id();

    // Keep-alive connections (their idle moments race a drain) and churn
    // (new connections land in the accept queues while the old process
    // stops accepting), before, across and after the restart.
    let duration = Duration::from_secs(3);
    let keep_alive = load(addr, LoadMode::KeepAlive, 16, duration);
    let churn = load(addr, LoadMode::Churn, 8, duration);
    std::thread::sleep(Duration::from_millis(1000));
    signal(&old, libc::SIGUSR2);

    // The output pipe is shared; the successor says it listens before it
    // tells the old process, which then hands over.
    let passed = line_after(&mut stdout, "serving the sockets the parent passed");
    assert!(
        passed.contains(&format!(" from=parent-pid-{old_pid}")),
        "{passed}"
    );
    let successor: libc::pid_t = line_after(&mut stdout, "ringwall handing over to pid ")
        .parse()
        .unwrap();
    let mut successor = Adopted {
        pid: successor,
        reaped: false,
    };
    let old_stopped = line_after(&mut stdout, "ringwall stopped: ");
    let status = old.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "the old process drained and exited: {status}"
    );
    // With the old process gone, only the successor can answer.
    let response = exchange(addr, HELLO);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

    let reports = [("keep-alive", keep_alive), ("churn", churn)]
        .map(|(name, run)| (name, run.join().expect("the load thread")));
    let status = successor.stop(libc::SIGTERM, Duration::from_secs(10));
    let stopped = line_after(&mut stdout, "ringwall stopped: ");
    for (name, report) in &reports {
        assert_eq!(
            report.errors.total(),
            0,
            "{name}: {report}\nold: {old_stopped}\nsuccessor: {stopped}"
        );
        assert!(report.requests > 0, "{name}: {report}");
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the successor exits cleanly: {status:#x}"
    );
    let requests: u64 = stopped
        .split(' ')
        .find_map(|field| field.strip_prefix("requests="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stopped}"));
    // The load ran on for two seconds after the restart.
    assert!(requests > 1, "the successor served the load: {stopped}");
}

/// Writes `script` as the executable at `path`, replacing what is there
/// (the way a package manager installs a new binary: a new file renamed
/// over the old name, so a running copy keeps its own inode).
fn install(path: &Path, script: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let new = path.with_extension("new");
    std::fs::write(&new, script).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, path).unwrap();
}

#[test]
fn a_successor_that_fails_leaves_the_old_process_serving() {
    if !io_uring_available() {
        return;
    }
    // A copy of the binary, so the file at its path can be replaced by one
    // that starts and fails: the restart starts whatever is installed there.
    let dir = std::env::temp_dir().join(format!("ringwall-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("ringwall");
    std::fs::copy(env!("CARGO_BIN_EXE_ringwall"), &exe).unwrap();
    let (mut server, mut stdout, addr) = serve(&exe);
    install(&exe, b"#!/bin/sh\nsleep 1\nexit 3\n");

    // The upgrade's events are log lines on stdout, as the start line is.
    signal(&server, libc::SIGUSR2);
    line_after(&mut stdout, "ringwall: SIGUSR2, upgrading: started pid ");
    // One upgrade at a time.
    signal(&server, libc::SIGUSR2);
    line_after(&mut stdout, "ringwall: SIGUSR2 ignored: ");
    let failed = line_after(&mut stdout, "ringwall: upgrade to pid ");
    assert!(
        failed.contains("failed: it exited") && failed.ends_with("still serving"),
        "{failed}"
    );

    let response = exchange(addr, HELLO);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    signal(&server, libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let stopped = line_after(&mut stdout, "ringwall stopped: ");
    assert!(stopped.contains(" requests=1 "), "{stopped}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lines of `stdout` as they come, read on a thread of their own, so a
/// wait for one is bounded even while another process holds the pipe open.
fn lines_of(stdout: BufReader<ChildStdout>) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The rest of the first line that contains `prefix`, within `within`.
fn wait_line(lines: &std::sync::mpsc::Receiver<String>, prefix: &str, within: Duration) -> String {
    let end = Instant::now() + within;
    let mut seen = String::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => match line.find(prefix) {
                Some(at) => return line[at + prefix.len()..].trim_end().to_owned(),
                None => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            },
            Err(e) => panic!("no `{prefix}` within {within:?} ({e}):\n{seen}"),
        }
    }
}

/// `ringwall_requests_total` of a scrape, on a connection of its own.
fn scraped_requests(metrics: SocketAddr) -> u64 {
    let scrape = exchange(
        metrics,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    scrape
        .lines()
        .find_map(|l| l.strip_prefix("ringwall_requests_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in\n{scrape}"))
}

#[test]
fn sigusr2_hands_the_metrics_socket_over_with_the_served_ones() {
    if !io_uring_available() {
        return;
    }
    become_subreaper();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
        .args(["--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "10s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ringwall starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut old = Running::new(child);
    let lines = lines_of(stdout);
    let within = Duration::from_secs(10);
    let addr: SocketAddr = wait_line(&lines, "ringwall listening on ", within)
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let metrics: SocketAddr = wait_line(&lines, "ringwall metrics on http://", within)
        .strip_suffix("/metrics")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..3 {
        assert!(exchange(addr, HELLO).ends_with("Hello, World!"));
    }
    // An idle keep-alive connection keeps the old process draining after
    // the hand-over (until its next request, or the shutdown timeout).
    let mut held = std::net::TcpStream::connect(addr).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut held, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !answer.ends_with(b"Hello, World!") {
        let n = std::io::Read::read(&mut held, &mut chunk).expect("the held answer");
        assert!(n > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(scraped_requests(metrics), 4);

    signal(&old, libc::SIGUSR2);
    let successor: libc::pid_t = wait_line(&lines, "ringwall handing over to pid ", within)
        .parse()
        .unwrap();
    let mut successor = Adopted {
        pid: successor,
        reaped: false,
    };
    // The old metrics server has stopped accepting on the socket it passed
    // down, and closed what it had, while the old process still drains.
    wait_line(&lines, "ringwall metrics stopped: ", within);
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "the old one drains"
    );
    for scrape in 0..8 {
        assert_eq!(
            scraped_requests(metrics),
            0,
            "scrape {scrape} during the drain was answered by the old process"
        );
    }
    drop(held);
    let status = old.wait_exit(within);
    assert!(
        status.success(),
        "the old process drained and exited: {status}"
    );
    assert!(exchange(addr, HELLO).ends_with("Hello, World!"));
    assert_eq!(scraped_requests(metrics), 1);
    let status = successor.stop(libc::SIGTERM, within);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the successor exits cleanly: {status:#x}"
    );
}
