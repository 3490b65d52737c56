//! `ringwall serve --handler-timeout`: the flag reaches the server's
//! configuration (the start line names it) and is validated like the other
//! timeouts. Runs on the epoll backend, so it needs no io_uring.

mod common;

use std::io::{BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{line_after, Running};

fn serve(args: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
        .args(["--backend", "epoll"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    Running::new(child)
}

fn start_line(args: &[&str]) -> String {
    let mut server = serve(args);
    let mut stdout = BufReader::new(server.child.stdout.take().unwrap());
    line_after(&mut stdout, "ringwall listening on ")
}

#[test]
fn handler_timeout_defaults_to_60s_and_the_flag_sets_it() {
    let default = start_line(&[]);
    assert!(default.contains(" handler_timeout=60s "), "{default}");
    let set = start_line(&["--handler-timeout", "7s"]);
    assert!(set.contains(" handler_timeout=7s "), "{set}");
}

#[test]
fn zero_handler_timeout_is_refused_by_name() {
    let mut server = serve(&["--handler-timeout", "0s"]);
    let (mut stdout, mut stderr) = (
        server.child.stdout.take().unwrap(),
        server.child.stderr.take().unwrap(),
    );
    let status = server.wait_exit(Duration::from_secs(10));
    let mut message = String::new();
    stdout.read_to_string(&mut message).unwrap();
    stderr.read_to_string(&mut message).unwrap();
    assert!(!status.success(), "it must not start: {message}");
    assert!(message.contains("handler_timeout"), "{message}");
}
