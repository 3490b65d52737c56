//! `ringwall serve --backend`: where io_uring is refused (a real seccomp
//! filter, as in Docker's default profile), `auto` serves on epoll and says
//! why, and `io-uring` fails with the cause named.

mod common;

use std::io::{BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{exchange, io_uring_available, line_after, Running};

/// `ringwall serve` on a free port with `args`, its stdout and stderr piped;
/// under a seccomp filter that refuses `io_uring_setup` when `deny`.
fn serve(args: &[&str], deny: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringwall"));
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if deny {
        ringwall_bench::sys::deny_io_uring_setup(&mut command);
    }
    command
}

/// Starts it, reads its start line, checks `GET /` is served; returns the
/// start line after the address.
fn serves(mut command: Command) -> String {
    let mut child = command.spawn().expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _server = Running::new(child);
    let started = line_after(&mut stdout, "ringwall listening on ");
    let (addr, rest) = started.split_once(' ').expect("address, then settings");
    let addr: SocketAddr = addr
        .parse()
        .expect("the start line begins with the address");
    let hello = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(hello.starts_with("HTTP/1.1 200 OK\r\n"), "{hello}");
    assert!(hello.ends_with("Hello, World!"), "{hello}");
    rest.to_owned()
}

#[test]
fn auto_serves_on_epoll_under_a_seccomp_filter_that_refuses_io_uring() {
    let started = serves(serve(&["--backend", "auto"], true));
    assert!(started.starts_with("backend=epoll "), "{started}");
    assert!(
        started.contains("io_uring_refused=") && started.contains("seccomp"),
        "the start line names why io_uring was not used: {started}"
    );
}

#[test]
fn io_uring_backend_fails_with_the_cause_under_the_same_filter() {
    let mut child = serve(&["--backend", "io-uring"], true)
        .spawn()
        .expect("the binary starts");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut server = Running::new(child);
    let status = server.wait_exit(Duration::from_secs(10));
    // The error is a log event; where the log goes (stdout) is the CLI's
    // choice, so both are read.
    let mut message = String::new();
    stdout.read_to_string(&mut message).unwrap();
    stderr.read_to_string(&mut message).unwrap();
    assert!(!status.success(), "it must not start: {message}");
    assert!(
        message.contains("io_uring unavailable") && message.contains("seccomp"),
        "{message}"
    );
}

#[test]
fn epoll_backend_serves_when_asked_for() {
    let started = serves(serve(&["--backend", "epoll"], false));
    assert!(started.starts_with("backend=epoll workers="), "{started}");
}

#[test]
fn auto_runs_io_uring_where_the_kernel_allows_it() {
    if !io_uring_available() {
        return;
    }
    let started = serves(serve(&[], false));
    assert!(
        started.starts_with("backend=io-uring workers="),
        "{started}"
    );
}
