//! What the binary's tests share: the io_uring probe, the started binary,
//! and reading its output and its answers.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout};
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

/// The started binary; killed if the test ends before it exits.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads output lines until one starts with `prefix`; returns the rest of it.
pub fn line_after(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("stdout is readable");
        assert!(
            read > 0,
            "the server exited before printing `{prefix}`:\n{seen}"
        );
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim_end().to_owned();
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
