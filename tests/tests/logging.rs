//! The engine's events, read through a tracing fmt subscriber: the start
//! line, the rate-limited close events with the peer's address, and the
//! shutdown line with the counters.
//!
//! A subscriber is process-wide, so this binary holds this one test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwall_tests::{app, builder, start_or_skip};

/// Protocol errors provoked: far more than one second's close events.
const MALFORMED: usize = 200;
/// The engine's allowance per worker and second (`CLOSE_EVENTS_PER_SEC`).
const CLOSE_EVENTS_PER_SEC: usize = 10;

/// What the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// One malformed request on its own connection; waits for the 400 and the
/// close, so the close has been recorded when it returns.
fn send_malformed(addr: std::net::SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"NOT HTTP\r\n\r\n").unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        response.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

#[test]
fn start_closes_and_shutdown_are_logged_and_closes_are_rate_limited() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("ringwall=info,ringwall::closes=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let Some(server) = start_or_skip(builder().workers(1), app) else {
        return;
    };
    let addr = server.local_addr();
    let started = Instant::now();
    for _ in 0..MALFORMED {
        send_malformed(addr);
    }
    let elapsed = started.elapsed();
    let stats = server.shutdown().expect("no worker failed");
    let log = captured.text();

    // The backend is named between the address and the settings.
    let start_line = format!("ringwall listening on {addr} backend=");
    assert!(log.contains(&start_line), "no `{start_line}` in:\n{log}");
    assert!(log.contains(" workers=1 "), "no `workers=1` in:\n{log}");

    let closes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ringwall::closes"))
        .collect();
    assert!(!closes.is_empty(), "no close event in:\n{log}");
    for line in &closes {
        assert!(line.contains(" DEBUG "), "{line}");
        assert!(line.contains("reason=ProtocolError(400)"), "{line}");
        assert!(line.contains(" peer=127.0.0.1:"), "{line}");
    }
    // Each started second admits the allowance; the last may be partial.
    let windows = elapsed.as_secs() as usize + 2;
    assert!(
        closes.len() <= CLOSE_EVENTS_PER_SEC * windows,
        "{} close events for {MALFORMED} protocol errors in {elapsed:?}",
        closes.len()
    );
    assert!(
        closes.len() < MALFORMED,
        "every close was logged: no rate limit ({elapsed:?})"
    );

    let stopped = format!("ringwall stopped: accepted={MALFORMED} ");
    assert!(log.contains(&stopped), "no `{stopped}` in:\n{log}");
    assert_eq!(stats.closes.protocol_error, MALFORMED as u64, "{stats}");
}
