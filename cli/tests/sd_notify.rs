//! `ringwall serve` under a `Type=notify` unit, with the test as systemd:
//! a datagram socket named by `NOTIFY_SOCKET` that collects what the server
//! says. `READY=1` once it serves, `STOPPING=1` when SIGTERM stops it, and
//! on a SIGUSR2 hand-over `MAINPID=` naming the successor, with no
//! `STOPPING=1` from the old process (the service does not stop).

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exchange, io_uring_available, Running};

const HELLO: &str = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// What the server says to systemd, one datagram at a time.
struct FakeSystemd {
    socket: UnixDatagram,
    /// The value of `NOTIFY_SOCKET`.
    name: String,
    path: Option<PathBuf>,
}

impl FakeSystemd {
    fn at_path(test: &str) -> FakeSystemd {
        let path = std::env::temp_dir().join(format!("ringwall-{test}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        FakeSystemd {
            socket: UnixDatagram::bind(&path).unwrap(),
            name: path.to_str().unwrap().to_owned(),
            path: Some(path),
        }
    }

    fn abstract_name(test: &str) -> FakeSystemd {
        let name = format!("ringwall-{test}-{}", std::process::id());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        FakeSystemd {
            socket: UnixDatagram::bind_addr(&addr).unwrap(),
            name: format!("@{name}"),
            path: None,
        }
    }

    /// The next message; fails the test when none comes within `within`.
    fn next(&self, within: Duration) -> String {
        let end = Instant::now() + within;
        let mut buf = [0u8; 512];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no message within {within:?}");
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
                // A signal (the successor's SIGCHLD, say) cut the wait short.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("no message within {within:?}: {e}"),
            }
        }
    }

    /// Messages until one starts with `prefix` (at most 10); all of them,
    /// that one last.
    fn until(&self, prefix: &str, within: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let message = self.next(within);
            let done = message.starts_with(prefix);
            seen.push(message);
            if done {
                return seen;
            }
        }
        panic!("no {prefix} among {seen:?}");
    }

    /// What was sent and not yet read, without waiting.
    fn pending(&self) -> Vec<String> {
        self.socket.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let mut seen = Vec::new();
        while let Ok(n) = self.socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.socket.set_nonblocking(false).unwrap();
        seen
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The server's output goes to a file, read for its address and for
/// failure messages.
struct Log(PathBuf);

impl Log {
    fn new(test: &str) -> Log {
        Log(std::env::temp_dir().join(format!("ringwall-{test}-{}.log", std::process::id())))
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// The address of the start line, which the engine logs before `serve`
    /// returns, so before `READY=1`.
    fn listening_addr(&self) -> SocketAddr {
        let text = self.text();
        let rest = text
            .split("ringwall listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("no start line:\n{text}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn serve(systemd: &FakeSystemd, log: &Log) -> Running {
    let out = File::create(&log.0).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2"])
        .args(["--shutdown-timeout", "2s"])
        .env("NOTIFY_SOCKET", &systemd.name)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("ringwall starts");
    Running::new(child)
}

fn kill(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) on a process this test started (or adopted) and has
    // not reaped, so the pid still names it.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
}

fn ready_then_stopping_on_sigterm(systemd: FakeSystemd, test: &str) {
    let log = Log::new(test);
    let mut server = serve(&systemd, &log);
    let said = systemd.next(Duration::from_secs(20));
    assert_eq!(said, "READY=1", "{}", log.text());
    // Ready means serving.
    let response = exchange(log.listening_addr(), HELLO);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    kill(server.child.id() as libc::pid_t, libc::SIGTERM);
    let said = systemd.next(Duration::from_secs(20));
    assert_eq!(said, "STOPPING=1", "{}", log.text());
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", log.text());
    assert_eq!(systemd.pending(), Vec::<String>::new());
}

#[test]
fn ready_when_serving_and_stopping_on_sigterm_through_a_socket_path() {
    ready_then_stopping_on_sigterm(FakeSystemd::at_path("notify-path"), "notify-path");
}

#[test]
fn ready_when_serving_and_stopping_on_sigterm_through_an_abstract_socket() {
    ready_then_stopping_on_sigterm(
        FakeSystemd::abstract_name("notify-abstract"),
        "notify-abstract",
    );
}

/// Every successor the old process started (its log names each), killed
/// and reaped when the test ends unless the test reaped it: so a test that
/// fails before it learns the pid from `MAINPID=` leaves no server behind.
/// Declared before the old process, so dropped after it: by then the old
/// process is gone and its successors are ours (the test is their
/// subreaper).
struct Successors<'a> {
    log: &'a Log,
    reaped: Vec<libc::pid_t>,
}

impl Successors<'_> {
    fn started(&self) -> Vec<libc::pid_t> {
        self.log
            .text()
            .split("upgrading: started pid ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

impl Drop for Successors<'_> {
    fn drop(&mut self) {
        for pid in self.started() {
            if !self.reaped.contains(&pid) {
                // SAFETY: a process the old one started and no one has
                // reaped (the old process is gone, so it is our child):
                // the pid still names it. waitpid fails harmlessly if not.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }
}

#[test]
fn a_sigusr2_hand_over_names_the_successor_as_the_main_pid() {
    if !io_uring_available() {
        return;
    }
    // SAFETY: prctl with an integer argument; changes only this process.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "{}", std::io::Error::last_os_error());
    let systemd = FakeSystemd::at_path("notify-handover");
    let log = Log::new("notify-handover");
    let mut successors = Successors {
        log: &log,
        reaped: Vec::new(),
    };
    let mut old = serve(&systemd, &log);
    let old_pid = old.child.id() as libc::pid_t;
    assert_eq!(systemd.next(Duration::from_secs(20)), "READY=1");

    kill(old_pid, libc::SIGUSR2);
    // The successor says READY=1 too (systemd ignores it from a process
    // that is not yet the main one), then the old process names it.
    let said = systemd.until("MAINPID=", Duration::from_secs(20));
    let successor: libc::pid_t = said
        .last()
        .unwrap()
        .strip_prefix("MAINPID=")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(successor, old_pid);
    assert_eq!(successors.started(), [successor], "{}", log.text());
    assert!(
        said[..said.len() - 1].iter().all(|m| m == "READY=1"),
        "{said:?}"
    );
    assert!(
        log.text()
            .contains(&format!("handing over to pid {successor}")),
        "{}",
        log.text()
    );
    let status = old.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", log.text());
    // Handing over is not stopping.
    assert!(
        !systemd.pending().iter().any(|m| m == "STOPPING=1"),
        "{}",
        log.text()
    );

    kill(successor, libc::SIGTERM);
    let said = systemd.until("STOPPING=1", Duration::from_secs(20));
    assert!(
        said[..said.len() - 1].iter().all(|m| m == "READY=1"),
        "{said:?}"
    );
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let mut status = 0;
        // SAFETY: waitpid on our adopted, unreaped child.
        let ret = unsafe { libc::waitpid(successor, &mut status, libc::WNOHANG) };
        if ret == successor {
            successors.reaped.push(successor);
            break status;
        }
        assert!(ret == 0, "waitpid: {}", std::io::Error::last_os_error());
        assert!(Instant::now() < end, "the successor did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}\n{}",
        log.text()
    );
}
