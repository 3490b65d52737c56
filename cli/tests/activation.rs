//! `ringwall serve` under systemd's socket activation protocol, run by
//! `systemd-socket-activate` as systemd would: it serves the passed socket,
//! says so, and refuses an explicit `--addr` as well.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};

use common::{line_after, Running};
use std::time::{Duration, Instant};

const TOOL: &str = "systemd-socket-activate";

/// Whether the tool and io_uring are both here; prints why not, so the test
/// skips visibly instead of passing silently.
fn can_run() -> bool {
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(TOOL).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: {TOOL} is not installed (Debian package `systemd`)");
        return false;
    }
    common::io_uring_available()
}

/// A port that was free a moment ago, for the tool to listen on.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ringwall serve <args>` under the tool, listening on `addr`.
fn activate(addr: SocketAddr, ringwall_args: &[&str]) -> Running {
    let child = Command::new(TOOL)
        .arg(format!("--listen={addr}"))
        .arg("--fdname=web")
        .arg(env!("CARGO_BIN_EXE_ringwall"))
        .arg("serve")
        .args(ringwall_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool starts");
    Running::new(child)
}

/// Connects once the tool listens (it execs ringwall on the first
/// connection, which then accepts it from the passed socket's backlog).
fn connect_when_listening(addr: SocketAddr) -> TcpStream {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            // Before the tool listens, a connect to a free port in the
            // ephemeral range can pick that same port as its source and
            // connect to itself: that is not the tool, which then never
            // sees a connection and never starts ringwall.
            Ok(stream) if stream.local_addr().ok() == stream.peer_addr().ok() => {
                drop(stream);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(stream) => return stream,
            Err(_) if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{TOOL} never listened on {addr}: {e}"),
        }
    }
}

#[test]
fn serve_under_systemd_socket_activate_answers_on_the_passed_socket() {
    if !can_run() {
        return;
    }
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut server = activate(addr, &["--workers", "2"]);
    let mut stdout = BufReader::new(server.child.stdout.take().unwrap());

    let mut stream = connect_when_listening(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response ends with a close");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("Hello, World!"), "{response}");
    // Our FIN ends the server's lingering close; held open, it would keep
    // the shutdown waiting for its whole grace period.
    drop(stream);

    let activation = line_after(&mut stdout, "serving the sockets systemd passed");
    assert!(activation.contains(" fd_names=web"), "{activation}");
    let started = line_after(&mut stdout, "ringwall listening on ");
    assert!(
        started.starts_with(&format!("{addr} backend=io-uring workers=")),
        "{started}"
    );

    // The tool execs ringwall in its own process, so its pid is ringwall's.
    // SAFETY: kill(2) with the pid of a child this test started and has not
    // yet reaped, so the pid cannot name another process.
    let signalled = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(signalled, 0, "SIGTERM was not sent");
    let stopped = line_after(&mut stdout, "ringwall stopped: ");
    assert!(stopped.contains(" requests=1 "), "{stopped}");
}

#[test]
fn serve_refuses_an_explicit_addr_under_socket_activation() {
    if !can_run() {
        return;
    }
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut server = activate(addr, &["--addr", "127.0.0.1:0"]);
    let _stream = connect_when_listening(addr);
    let status = server.wait_exit(Duration::from_secs(10));
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--addr 127.0.0.1:0 given"), "{stderr}");
}
