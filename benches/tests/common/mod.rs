//! Tiny std::net servers with one deliberate behaviour each, for the client
//! tests. Every server is bounded: it accepts for `life` at most and each
//! connection thread ends by itself.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringwall_bench::sys;

/// A server that runs `serve(stream, accepted_at, stop)` on a thread per
/// connection until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

pub fn spawn<F>(life: Duration, serve: F) -> TestServer
where
    F: Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let serve = Arc::new(serve);
    let stop2 = Arc::clone(&stop);
    let acceptor = thread::spawn(move || {
        let end = Instant::now() + life;
        let mut workers = Vec::new();
        while Instant::now() < end && !stop2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let at = Instant::now();
                    stream.set_nonblocking(false).unwrap();
                    let serve = Arc::clone(&serve);
                    let stop = Arc::clone(&stop2);
                    workers.push(thread::spawn(move || serve(stream, at, &stop)));
                }
                Err(_) => thread::sleep(Duration::from_micros(200)),
            }
        }
        stop2.store(true, Ordering::SeqCst);
        for w in workers {
            let _ = w.join();
        }
    });
    TestServer {
        addr,
        stop,
        acceptor: Some(acceptor),
    }
}

/// Reads and discards until `until` or the stop flag, whichever first.
pub fn drain_until(stream: &mut TcpStream, until: Instant, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= until || stop.load(Ordering::SeqCst) {
            return;
        }
        let wait = (until - now).min(Duration::from_millis(20));
        stream
            .set_read_timeout(Some(wait.max(Duration::from_micros(100))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Sends a FIN at `accepted + after` (reading meanwhile, so no unread data
/// turns the close into an RST), like a server enforcing a header deadline.
pub fn close_after(
    after: Duration,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        drain_until(&mut stream, accepted + after, stop);
        let _ = stream.shutdown(Shutdown::Write);
        // Keep reading briefly so the client's late drips are absorbed.
        drain_until(
            &mut stream,
            Instant::now() + Duration::from_millis(50),
            stop,
        );
    }
}

/// Never closes: holds the connection until the server is dropped.
pub fn never_close() -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        drain_until(&mut stream, accepted + Duration::from_secs(10), stop);
    }
}

/// Answers each request head (no bodies) with `response`, keep-alive, and
/// closes after `per_conn` responses if given.
pub fn respond_with(
    response: &'static [u8],
    per_conn: Option<usize>,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, _, stop| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut answered = 0;
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while !stop.load(Ordering::SeqCst) {
            while let Some(end) = find(&buf, b"\r\n\r\n") {
                buf.drain(..end + 4);
                if stream.write_all(response).is_err() {
                    return;
                }
                answered += 1;
                if per_conn == Some(answered) {
                    // Read what the client already sent, so the close is a FIN, not an RST.
                    let _ = stream.shutdown(Shutdown::Write);
                    drain_until(
                        &mut stream,
                        Instant::now() + Duration::from_millis(20),
                        stop,
                    );
                    return;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

/// Reads until a complete request head has arrived (or `until`); returns
/// whether it did.
pub fn read_head(stream: &mut TcpStream, until: Instant, stop: &AtomicBool) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        stream
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if find(&buf, b"\r\n\r\n").is_some() {
                    return true;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Answers one request, then closes `after` the response (a FIN), like a
/// server that kills idle keep-alive connections too soon.
pub fn answer_then_close(
    after: Duration,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        if !read_head(&mut stream, accepted + Duration::from_secs(2), stop) {
            return;
        }
        if stream.write_all(HELLO).is_err() {
            return;
        }
        drain_until(&mut stream, Instant::now() + after, stop);
        let _ = stream.shutdown(Shutdown::Write);
        drain_until(
            &mut stream,
            Instant::now() + Duration::from_millis(50),
            stop,
        );
    }
}

/// Reads a head, then closes `after` the head arrived (a FIN), reading the
/// body drips meanwhile: a body deadline.
pub fn close_after_head(
    after: Duration,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        if !read_head(&mut stream, accepted + Duration::from_secs(2), stop) {
            return;
        }
        drain_until(&mut stream, Instant::now() + after, stop);
        let _ = stream.shutdown(Shutdown::Write);
        drain_until(
            &mut stream,
            Instant::now() + Duration::from_millis(50),
            stop,
        );
    }
}

/// Reads a head, then writes a large response into a small send buffer; the
/// client reads slowly, so the write stalls. `after` the head, closes: with
/// an RST if `reset`, else a plain close whose FIN queues behind the unsent
/// bytes.
pub fn stall_then_close(
    after: Duration,
    reset: bool,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        if !read_head(&mut stream, accepted + Duration::from_secs(2), stop) {
            return;
        }
        let head_at = Instant::now();
        let _ = sys::set_send_buffer(&stream, 64 * 1024);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n");
        let block = vec![b'x'; 16 * 1024];
        stream
            .set_write_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut sent = 0;
        while Instant::now() < head_at + after && !stop.load(Ordering::SeqCst) && sent < 4 << 20 {
            if let Ok(n) = stream.write(&block) {
                sent += n;
            }
        }
        if reset {
            let _ = sys::set_linger_zero(&stream);
        }
        drop(stream);
    }
}

/// A small correct server: each head must arrive within `header` of the
/// connection's start or of its first byte after an idle period; keep-alive
/// connections may idle for `idle`. Answers every request with `HELLO`.
pub fn deadline_server(
    header: Duration,
    idle: Duration,
) -> impl Fn(TcpStream, Instant, &AtomicBool) + Send + Sync + 'static {
    move |mut stream, accepted, stop| {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        // The header deadline of the request being read; None while idle.
        let mut head_deadline = Some(accepted + header);
        let mut idle_deadline = accepted + idle;
        while !stop.load(Ordering::SeqCst) {
            while let Some(end) = find(&buf, b"\r\n\r\n") {
                buf.drain(..end + 4);
                if stream.write_all(HELLO).is_err() {
                    return;
                }
                head_deadline = None;
                idle_deadline = Instant::now() + idle;
            }
            if head_deadline.is_none() && !buf.is_empty() {
                head_deadline = Some(Instant::now() + header);
            }
            let until = head_deadline.unwrap_or(idle_deadline);
            let now = Instant::now();
            if now >= until {
                let _ = stream.shutdown(Shutdown::Write);
                drain_until(&mut stream, now + Duration::from_millis(50), stop);
                return;
            }
            stream
                .set_read_timeout(Some((until - now).min(Duration::from_millis(20))))
                .unwrap();
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }
}
