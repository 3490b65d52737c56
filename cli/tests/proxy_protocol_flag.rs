//! `ringwall serve --proxy-protocol`: the flag reaches the server, which
//! then takes a PROXY header before the first request and closes a
//! connection without one, answering nothing.

mod common;

use std::io::BufReader;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::{exchange, io_uring_available, line_after, Running};

#[test]
fn proxy_protocol_flag_requires_a_header_before_the_first_request() {
    if !io_uring_available() {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
        .arg("--proxy-protocol")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _server = Running::new(child);
    let listening = line_after(&mut stdout, "ringwall listening on ");
    assert!(listening.ends_with(" proxy_protocol=true"), "{listening}");
    let app: SocketAddr = listening
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("the listening line starts with the address");

    let request = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let proxied = exchange(
        app,
        &format!("PROXY TCP4 192.0.2.7 127.0.0.1 4321 80\r\n{request}"),
    );
    assert!(proxied.ends_with("Hello, World!"), "{proxied}");

    let bare = exchange(app, request);
    assert_eq!(bare, "", "a connection without a header got an answer");
}
