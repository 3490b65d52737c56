//! A second `ringwall serve` on a port another one serves: refused at start
//! with an error that names the address and the way to share on purpose,
//! instead of starting and taking a share of the first one's connections;
//! with `--reuse-port` it joins.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use common::{exchange, io_uring_available, line_after, Running};

fn serve(addr: &str, extra: &[&str]) -> (Running, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", addr, "--workers", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (Running::new(child), stdout)
}

fn listening_addr(stdout: &mut BufReader<ChildStdout>) -> SocketAddr {
    line_after(stdout, "ringwall listening on ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("the listening line starts with the address")
}

#[test]
fn a_second_instance_on_a_served_port_exits_with_a_clear_error() {
    if !io_uring_available() {
        return;
    }
    let (_first, mut first_out) = serve("127.0.0.1:0", &[]);
    let addr = listening_addr(&mut first_out);

    let (mut second, second_out) = serve(&addr.to_string(), &[]);
    let status = second.wait_exit(Duration::from_secs(10));
    let output: Vec<String> = second_out.lines().map_while(Result::ok).collect();
    let output = output.join("\n");
    assert!(!status.success(), "{status:?}\n{output}");
    assert!(
        !output.contains("ringwall listening on"),
        "the second instance served:\n{output}"
    );
    let error = output
        .lines()
        .find(|l| l.contains("cannot start"))
        .unwrap_or_else(|| panic!("no start error in\n{output}"));
    for words in [
        &format!("cannot listen on {addr}")[..],
        "already listens on it",
        "--reuse-port",
    ] {
        assert!(error.contains(words), "no `{words}` in\n{error}");
    }

    // The first one serves on.
    let hello = exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(hello.ends_with("Hello, World!"), "{hello}");
}

#[test]
fn reuse_port_joins_a_served_port_on_purpose() {
    if !io_uring_available() {
        return;
    }
    let (_first, mut first_out) = serve("127.0.0.1:0", &[]);
    let addr = listening_addr(&mut first_out);
    let (_second, mut second_out) = serve(&addr.to_string(), &["--reuse-port"]);
    assert_eq!(listening_addr(&mut second_out), addr);
}
