//! A blocking HTTP/1.1 client over one TCP connection, for checking exactly
//! what the server sends.

use std::io::{self, Read, Write};
use std::mem;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringwall_bench::client::close::{is_timeout, wait_for_close, Closed};
use ringwall_bench::client::{parse_response, Response};
use ringwall_bench::sys::{self, SocketOpts};

/// No single read in a test waits longer than this: a hang fails the test
/// instead of stalling the suite.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection, plus bytes received but not yet consumed (the start of
/// the next pipelined response).
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    received: Vec<u8>,
}

impl Client {
    /// Connects with TCP_NODELAY (each write leaves as written) and a read
    /// timeout.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Client {
        let stream =
            TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        Client::from_stream(stream)
    }

    #[track_caller]
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set the read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("set the write timeout");
        Client {
            stream,
            received: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes failed: {e}", bytes.len()));
    }

    /// Sends one request and reads its response.
    #[track_caller]
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response()
    }

    /// Reads one response to a request that was not HEAD.
    #[track_caller]
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .unwrap_or_else(|e| panic!("no valid response: {e}"))
    }

    /// Reads one response to a HEAD request (no body follows).
    #[track_caller]
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .unwrap_or_else(|e| panic!("no valid response to HEAD: {e}"))
    }

    /// Reads one response; an error says what arrived instead.
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, String> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match parse_response(&self.received, head_request) {
                Ok(Some((response, used))) => {
                    self.received.drain(..used);
                    return Ok(response);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{e} (received {})", self.describe_received())),
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(format!(
                        "connection closed (FIN) mid-response; received {}",
                        self.describe_received()
                    ))
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(format!(
                        "timed out waiting for a response; received {}",
                        self.describe_received()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "read failed: {e}; received {}",
                        self.describe_received()
                    ))
                }
            }
        }
    }

    /// Reads one response (not to HEAD) taking at most `bytes_per_sec`
    /// from the socket: a reader slower than the server can send, whose
    /// kernel buffers fill and then drain at that pace.
    #[track_caller]
    pub fn read_response_at(&mut self, bytes_per_sec: usize) -> Response {
        // Reads of a twentieth of a second's worth, each followed by the
        // sleep that keeps the average at the rate.
        let mut buf = vec![0u8; (bytes_per_sec / 20).max(1)];
        let started = Instant::now();
        let mut taken = 0usize;
        loop {
            match parse_response(&self.received, false) {
                Ok(Some((response, used))) => {
                    self.received.drain(..used);
                    return response;
                }
                Ok(None) => {}
                Err(e) => panic!("no valid response: {e} ({})", self.describe_received()),
            }
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "connection closed (FIN) mid-response after {taken} bytes in {:?}",
                    started.elapsed()
                ),
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!(
                    "read failed after {taken} bytes in {:?}: {e}",
                    started.elapsed()
                ),
            }
            taken = self.received.len();
            let due = Duration::from_secs_f64(taken as f64 / bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }

    /// Reads exactly `n` raw bytes (for interim responses like 100 Continue).
    #[track_caller]
    pub fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        let mut buf = [0u8; 4096];
        while self.received.len() < n {
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "connection closed after {} of {n} bytes: {}",
                    self.received.len(),
                    self.describe_received()
                ),
                Ok(k) => self.received.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "read failed after {} of {n} bytes ({e}): {}",
                    self.received.len(),
                    self.describe_received()
                ),
            }
        }
        self.received.drain(..n).collect()
    }

    /// Waits for the server to close, returning how and when; bytes already
    /// received and not consumed count as data before the close.
    #[track_caller]
    pub fn wait_for_close(&mut self, within: Duration) -> Closed {
        let mut closed = wait_for_close(&mut self.stream, within)
            .unwrap_or_else(|e| panic!("read failed with neither EOF nor a reset: {e}"));
        let mut data = mem::take(&mut self.received);
        data.extend_from_slice(&closed.data);
        closed.data = data;
        closed
    }

    /// Whether no byte arrives within `quiet` (nor a close).
    pub fn stays_silent_for(&mut self, quiet: Duration) -> bool {
        if !self.received.is_empty() {
            return false;
        }
        self.stream
            .set_read_timeout(Some(quiet))
            .expect("set the read timeout");
        let mut buf = [0u8; 1024];
        let silent = match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.received.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) => is_timeout(&e),
        };
        self.stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set the read timeout");
        silent
    }

    fn describe_received(&self) -> String {
        let shown = &self.received[..self.received.len().min(300)];
        format!(
            "{} bytes: {:?}{}",
            self.received.len(),
            String::from_utf8_lossy(shown),
            if shown.len() < self.received.len() {
                "..."
            } else {
                ""
            }
        )
    }
}

/// A connection whose receive buffer is set to `rcvbuf` bytes before the
/// handshake, so the window it advertises stays small (a slow reader).
pub fn connect_with_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> io::Result<TcpStream> {
    let opts = SocketOpts {
        recv_buffer: Some(rcvbuf),
        nodelay: false,
    };
    sys::connect_with_opts(addr, opts)
}

/// SO_LINGER {on, 0}: closing the socket then sends RST instead of FIN.
#[track_caller]
pub fn set_linger_zero(stream: &TcpStream) {
    sys::set_linger_zero(stream).unwrap_or_else(|e| panic!("SO_LINGER: {e}"));
}
