//! One-connection exchanges that misuse the server in ways the slow
//! attackers do not, each judged on its own:
//!
//! ```text
//!   reset       GET /bytes/1048576, read a little, close with SO_LINGER 0: an RST mid-response
//!   half-close  GET /bytes/65536, shutdown(SHUT_WR): the whole response, then EOF
//!   malformed   one bad request: a 4xx or 5xx, then EOF
//!   pipeline    400 x HEAD /bytes/67108864 in one write: 400 checked heads
//!   non-reader  GET /bytes/67108864, never read: the server must close it by
//!               its write timeout (an RST or FIN reaches us), plus the slack
//!   tiny chunks POST /echo, 4,096 to 65,536 one-byte chunks: the exact body back
//!   fast stream GET /bytes/16777216 read as fast as it comes: every byte, no reset
//!   slow stream GET /bytes/N (up to twice the kernel's largest send buffer)
//!               read at --slow-stream-rate (256 KiB/s), so the server's sends
//!               stall and resume as the window opens: every byte, no reset
//!   scrape      GET /metrics on the metrics port: 200 within the slack
//! ```
//!
//! A stream reader closed before its whole answer is a false kill: it read
//! at hundreds of KiB/s, far above any minimum response rate, and never
//! stalled its side.
//!
//! A missing or wrong answer is [`Outcome::Wrong`]; a connection still open
//! past the deadline it had to meet is [`Outcome::Hang`]. Every wait has a
//! deadline, so every exchange ends by itself. Blocking sockets with read
//! timeouts: the deadlines here are seconds, not microseconds.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::check::{echo_byte, BodyCheck, ErrorKind, Expect, Progress, ResponseParser};
use crate::client::close::{self, CloseKind};
use crate::load::REQUEST_TIMEOUT;
use crate::peers::tcp_table;
use crate::peers::Deadlines;
use crate::sys;

/// How one exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// As it should, after this long.
    Ok(Duration),
    /// A wrong or missing answer.
    Wrong(&'static str),
    /// Still open past its deadline plus the slack.
    Hang(&'static str),
    /// No verdict either way (the connect failed; the soak ended first).
    Untested(&'static str),
    /// Closed by the server although the client kept to the rules.
    FalseKill(&'static str),
}

/// What every exchange needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub target: SocketAddr,
    /// The server's deadlines.
    pub deadlines: Deadlines,
    /// A close later than its deadline plus this is a hang.
    pub slack: Duration,
    /// The soak's end: a pipeline still being answered then is cut.
    pub end: Instant,
    /// A pipeline with no new response for this long is a hang.
    pub pipeline_stall: Duration,
}

/// An answer must start (and, for small ones, end) within this: the load
/// client's request timeout.
pub const RESPONSE_WAIT: Duration = REQUEST_TIMEOUT;
pub const RESET_RESPONSE_BYTES: usize = 1 << 20;
pub const HALF_CLOSE_BYTES: usize = 64 * 1024;
pub const PIPELINE_DEPTH: usize = 400;
/// The largest answer `GET /bytes/N` gives (ringwall's `BENCHMARK_MAX_BYTES`).
pub const LARGE_BYTES: usize = 64 << 20;
/// What a fast stream reader asks for: well past the kernel's buffers, so
/// the answer is written in many sends, yet cheap to send every few hundred
/// milliseconds on shared cores.
pub const FAST_STREAM_BYTES: usize = 16 << 20;
/// The fewest and most one-byte chunks in a tiny-chunks body (the count
/// doubles from one exchange to the next, then starts over).
pub const TINY_CHUNKS_MIN: usize = 4096;
pub const TINY_CHUNKS_MAX: usize = 65_536;
const CONNECT_WAIT: Duration = Duration::from_secs(2);
const STATUS_200: &[u8] = b"HTTP/1.1 200 ";

/// Connects, sends the request, reads the start of the answer, and resets
/// the connection while the rest of the megabyte is on its way.
pub fn reset_mid_response(ctx: &Ctx) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let request = format!("GET /bytes/{RESET_RESPONSE_BYTES} HTTP/1.1\r\nHost: soak\r\n\r\n");
    if let Err(o) = send(&mut s, request.as_bytes()) {
        return o;
    }
    let mut head = [0u8; 4096];
    let mut got = 0;
    let deadline = start + RESPONSE_WAIT;
    // Each turn reads at least one byte or returns.
    while got < STATUS_200.len() {
        match read_by(&mut s, &mut head[got..], deadline) {
            Ok(0) if got == 0 => return Outcome::Wrong("eof_before_response"),
            Ok(0) => return Outcome::Wrong("eof_mid_response"),
            Ok(n) => got += n,
            Err(miss) => return Outcome::Wrong(miss.why()),
        }
    }
    if !head.starts_with(STATUS_200) {
        return Outcome::Wrong("bad_status");
    }
    if sys::set_linger_zero(&s).is_err() {
        return Outcome::Untested("linger_failed");
    }
    Outcome::Ok(start.elapsed())
}

/// Sends a whole request, then shuts the write side: RFC 9112 9.6 lets a
/// client half-close; the response must still come whole, then the close.
pub fn half_close(ctx: &Ctx) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let request = format!("GET /bytes/{HALF_CLOSE_BYTES} HTTP/1.1\r\nHost: soak\r\n\r\n");
    if let Err(o) = send(&mut s, request.as_bytes()) {
        return o;
    }
    if s.shutdown(Shutdown::Write).is_err() {
        return Outcome::Wrong("write_failed");
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: Some(200),
            body: BodyCheck::Length(HALF_CLOSE_BYTES),
        },
    );
    if let Err(miss) = r.next(start + RESPONSE_WAIT) {
        return Outcome::Wrong(miss.why());
    }
    // No request can follow: the server has nothing to wait for, and its
    // idle timeout bounds it if it waits anyway.
    match r.close(Instant::now() + ctx.deadlines.idle + ctx.slack) {
        Ok(()) => Outcome::Ok(start.elapsed()),
        Err(Miss::Timeout) => Outcome::Hang("no_close_after_response"),
        Err(miss) => Outcome::Wrong(miss.why()),
    }
}

/// The bad requests `malformed` cycles through. Each is whole (the server
/// can judge it without waiting for more) and within the server's read
/// limits or just past one.
pub fn malformed_requests() -> Vec<Vec<u8>> {
    let mut set: Vec<Vec<u8>> = [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\nHost: soak\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : soak\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: soak\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: soak\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 99999999\r\n\r\n",
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    // Past the 8 KiB target and 16 KiB head limits.
    set.push(format!("GET /{} HTTP/1.1\r\nHost: soak\r\n\r\n", "a".repeat(9000)).into_bytes());
    set.push(
        format!(
            "GET / HTTP/1.1\r\nHost: soak\r\nX: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .into_bytes(),
    );
    set
}

/// Sends `request` (bad), expects a 4xx or 5xx and then the close.
pub fn malformed(ctx: &Ctx, request: &[u8]) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    if let Err(o) = send(&mut s, request) {
        return o;
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: None,
            body: BodyCheck::Any,
        },
    );
    match r.next(start + RESPONSE_WAIT) {
        Ok(status) if (400..600).contains(&status) => {}
        Ok(_) => return Outcome::Wrong("not_4xx_or_5xx"),
        Err(miss) => return Outcome::Wrong(miss.why()),
    }
    // After an error the framing of what follows is unknown: the server
    // must close. A server that reads on anyway closes by its header deadline.
    match r.close(Instant::now() + ctx.deadlines.header + ctx.slack) {
        Ok(()) => Outcome::Ok(start.elapsed()),
        Err(Miss::Timeout) => Outcome::Hang("no_close_after_error"),
        Err(miss) => Outcome::Wrong(miss.why()),
    }
}

/// 400 HEADs of the largest answer in one write, and all 400 heads read
/// back. Expensive for a server that builds each body it does not send; a
/// response must come at least every `pipeline_stall`.
pub fn pipeline(ctx: &Ctx) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let one = format!("HEAD /bytes/{LARGE_BYTES} HTTP/1.1\r\nHost: x\r\n\r\n");
    if let Err(o) = send(&mut s, one.repeat(PIPELINE_DEPTH).as_bytes()) {
        return o;
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: Some(200),
            body: BodyCheck::Head(LARGE_BYTES),
        },
    );
    for _ in 0..PIPELINE_DEPTH {
        let next_by = (Instant::now() + ctx.pipeline_stall).min(ctx.end.max(start));
        match r.next(next_by) {
            Ok(_) => {}
            Err(Miss::Timeout) if Instant::now() >= ctx.end => {
                let _ = sys::set_linger_zero(&r.stream);
                return Outcome::Untested("cut_at_soak_end");
            }
            Err(Miss::Timeout) => return Outcome::Hang("pipeline_stalled"),
            Err(miss) => return Outcome::Wrong(miss.why()),
        }
    }
    Outcome::Ok(start.elapsed())
}

/// Asks for the largest answer and never reads it. Once the send stalls,
/// the server's write deadline must close the connection; the close is
/// seen without reading (an RST, or the FIN only if the kernel can send it).
/// No close by then: the kernel's table says whether the server never
/// closed, or closed behind data it could not send (FIN-WAIT-1, its send
/// queue still pinned).
pub fn non_reader(ctx: &Ctx) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let request = format!("GET /bytes/{LARGE_BYTES} HTTP/1.1\r\nHost: soak\r\n\r\n");
    if let Err(o) = send(&mut s, request.as_bytes()) {
        return o;
    }
    let deadline = start + ctx.deadlines.write + ctx.slack;
    let within = deadline.saturating_duration_since(Instant::now());
    match close::wait_for_close_unread(&s, within) {
        Ok(Some(_)) => return Outcome::Ok(start.elapsed()),
        Ok(None) => {}
        Err(_) => return Outcome::Untested("poll_failed"),
    }
    let server_end = s.local_addr().ok().and_then(|client| {
        let table = tcp_table::read().ok()?;
        tcp_table::server_end(&table, ctx.target.port(), client.port())
    });
    // Dropping `s` with unread data sends an RST: the server's end is freed.
    Outcome::Hang(match server_end {
        Some(end) if end.state.closed_by_owner() => "closed_behind_unsent_data",
        Some(_) => "never_closed",
        None => "no_close_seen",
    })
}

/// The number of one-byte chunks of tiny-chunks exchange `n`: 4,096, 8,192,
/// ... 65,536, then 4,096 again.
pub fn tiny_chunk_count(n: u64) -> usize {
    let steps = (TINY_CHUNKS_MAX / TINY_CHUNKS_MIN).ilog2() + 1;
    TINY_CHUNKS_MIN << (n % u64::from(steps))
}

/// `POST /echo` whose body is `chunks` chunks of one byte each
/// (`1\r\na\r\n`): six wire bytes per body byte, each chunk a full trip
/// through the decoder's states. The echo must be the exact body, in time.
pub fn tiny_chunks(ctx: &Ctx, chunks: usize) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.reserve(chunks * 6 + 5);
    for i in 0..chunks {
        request.extend_from_slice(&[b'1', b'\r', b'\n', echo_byte(i), b'\r', b'\n']);
    }
    request.extend_from_slice(b"0\r\n\r\n");
    if let Err(o) = send(&mut s, &request) {
        return o;
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: Some(200),
            body: BodyCheck::Echo(chunks),
        },
    );
    match r.next(Instant::now() + RESPONSE_WAIT) {
        Ok(_) => Outcome::Ok(start.elapsed()),
        Err(miss) => Outcome::Wrong(miss.why()),
    }
}

/// How fast a stream reader takes its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPace {
    /// Whatever arrives, at once.
    Full,
    /// At most this many bytes a second, taken in tenths of a second.
    BytesPerSecond(usize),
}

/// `GET /bytes/{bytes}`, read at `pace`. Every byte must arrive, framed
/// and counted; a reset or a close before the end is a false kill (the
/// reader never stalled and reads far above any minimum rate). The answer
/// must start within the answer wait and no gap between bytes may exceed
/// it; the whole answer must come within the time its pace needs plus that
/// wait.
pub fn stream_reader(ctx: &Ctx, bytes: usize, pace: ReadPace) -> Outcome {
    let mut s = match connect(ctx) {
        Ok(s) => s,
        Err(o) => return o,
    };
    let start = Instant::now();
    let request = format!("GET /bytes/{bytes} HTTP/1.1\r\nHost: soak\r\n\r\n");
    if let Err(o) = send(&mut s, request.as_bytes()) {
        return o;
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: Some(200),
            body: BodyCheck::Length(bytes),
        },
    );
    r.pace = pace;
    let need = match pace {
        ReadPace::Full => Duration::ZERO,
        ReadPace::BytesPerSecond(rate) => Duration::from_secs_f64(bytes as f64 / rate as f64),
    };
    match r.next(start + need + RESPONSE_WAIT) {
        Ok(_) => Outcome::Ok(start.elapsed()),
        Err(Miss::Reset) => Outcome::FalseKill("reset_mid_response"),
        Err(Miss::Eof { mid_response: true }) => Outcome::FalseKill("eof_mid_response"),
        Err(Miss::Eof {
            mid_response: false,
        }) => Outcome::FalseKill("eof_before_response"),
        Err(miss) => Outcome::Wrong(miss.why()),
    }
}

/// One scrape of `GET /metrics` at `metrics`, on a connection of its own
/// as a scraper makes it: a 200, framed, within `within` of the connect.
/// The soak gives it the slack: silent connections beside it must not
/// delay it, and a scrape queued behind them on a serial endpoint is late.
pub fn scrape(metrics: SocketAddr, within: Duration) -> Outcome {
    let start = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&metrics, CONNECT_WAIT) else {
        // A metrics port that refuses a scraper has failed it: it is ours,
        // on loopback, and listening.
        return Outcome::Wrong("connect_failed");
    };
    if let Err(o) = send(&mut s, b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n") {
        return o;
    }
    let mut r = Responses::new(
        s,
        Expect {
            status: Some(200),
            body: BodyCheck::Any,
        },
    );
    match r.next(start + within) {
        Ok(_) => Outcome::Ok(start.elapsed()),
        Err(miss) => Outcome::Wrong(miss.why()),
    }
}

fn connect(ctx: &Ctx) -> Result<TcpStream, Outcome> {
    let s = TcpStream::connect_timeout(&ctx.target, CONNECT_WAIT)
        .map_err(|_| Outcome::Untested("connect_failed"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn send(s: &mut TcpStream, bytes: &[u8]) -> Result<(), Outcome> {
    s.write_all(bytes)
        .map_err(|_| Outcome::Wrong("write_failed"))
}

/// Why a wait for a response or a close did not end well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Miss {
    Eof {
        mid_response: bool,
    },
    Reset,
    Timeout,
    Bad(ErrorKind),
    /// Bytes after the last response.
    Extra,
}

impl Miss {
    /// Named as the load client names its errors.
    fn why(self) -> &'static str {
        match self {
            Miss::Eof {
                mid_response: false,
            } => ErrorKind::EofBeforeResponse.name(),
            Miss::Eof { mid_response: true } => ErrorKind::EofMidResponse.name(),
            Miss::Reset => ErrorKind::Reset.name(),
            Miss::Timeout => ErrorKind::Timeout.name(),
            Miss::Bad(kind) => kind.name(),
            Miss::Extra => "bytes_after_response",
        }
    }
}

/// Reads `n` bytes at most, waiting no later than `deadline`.
fn read_by(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, Miss> {
    for _ in 0..8 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Miss::Timeout);
        }
        s.set_read_timeout(Some(left)).map_err(|_| Miss::Reset)?;
        match s.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if close::is_timeout(&e) => return Err(Miss::Timeout),
            Err(_) => return Err(Miss::Reset),
        }
    }
    Err(Miss::Timeout)
}

/// Checked responses read off one connection.
struct Responses {
    stream: TcpStream,
    parser: ResponseParser,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    pace: ReadPace,
    /// Bytes read and when the first read began, for the pace.
    read: usize,
    since: Option<Instant>,
}

impl Responses {
    fn new(stream: TcpStream, expect: Expect) -> Responses {
        Responses {
            stream,
            parser: ResponseParser::new(expect),
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
            pace: ReadPace::Full,
            read: 0,
            since: None,
        }
    }

    /// How much the next read may take: all the room there is, or, paced,
    /// a tenth of a second's worth once the bytes read so far are due.
    fn read_room(&mut self, deadline: Instant) -> Result<usize, Miss> {
        let room = self.buf.len() - self.end;
        let ReadPace::BytesPerSecond(rate) = self.pace else {
            return Ok(room);
        };
        let since = *self.since.get_or_insert_with(Instant::now);
        let rate = rate.max(1) as f64;
        let tick = (rate / 10.0).max(1.0) as usize;
        // The first turn sleeps until what was read is due; the next returns.
        for _ in 0..4 {
            let now = Instant::now();
            let due = self.read as f64 / rate - now.duration_since(since).as_secs_f64();
            if due <= 0.0 {
                return Ok(tick.min(room));
            }
            if now >= deadline {
                return Err(Miss::Timeout);
            }
            std::thread::sleep(Duration::from_secs_f64(due).min(deadline - now));
        }
        Err(Miss::Timeout)
    }

    /// The status of the next complete, checked response, by `deadline`.
    fn next(&mut self, deadline: Instant) -> Result<u16, Miss> {
        // Each turn consumes bytes or reads more (or returns); a response
        // ends within the deadline, so the loop does.
        loop {
            if self.start < self.end {
                match self.parser.feed(&self.buf[self.start..self.end]) {
                    Ok((n, Progress::Complete { status, .. })) => {
                        self.start += n;
                        return Ok(status);
                    }
                    Ok((n, Progress::Partial)) if n > 0 => {
                        self.start += n;
                        continue;
                    }
                    Ok((_, Progress::Partial)) => {}
                    Err(e) => return Err(Miss::Bad(e.kind)),
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                if self.start == 0 {
                    return Err(Miss::Bad(ErrorKind::BadFraming));
                }
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let room = self.read_room(deadline)?;
            // Paced, a gap longer than the answer wait is a stall, whatever
            // the whole answer's deadline.
            let by = match self.pace {
                ReadPace::Full => deadline,
                ReadPace::BytesPerSecond(_) => deadline.min(Instant::now() + RESPONSE_WAIT),
            };
            match read_by(
                &mut self.stream,
                &mut self.buf[self.end..self.end + room],
                by,
            )? {
                0 => {
                    return Err(Miss::Eof {
                        mid_response: self.parser.in_response() || self.start < self.end,
                    })
                }
                n => {
                    self.end += n;
                    self.read += n;
                }
            }
        }
    }

    /// After the last response: no more bytes, then the server's close
    /// (a FIN, or an RST from a server that drops the rest), by `deadline`.
    fn close(&mut self, deadline: Instant) -> Result<(), Miss> {
        if self.start < self.end {
            return Err(Miss::Extra);
        }
        let within = deadline.saturating_duration_since(Instant::now());
        let closed = close::wait_for_close(&mut self.stream, within).map_err(|_| Miss::Reset)?;
        match closed.kind {
            _ if !closed.data.is_empty() => Err(Miss::Extra),
            CloseKind::Fin | CloseKind::Reset => Ok(()),
            CloseKind::StillOpen => Err(Miss::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A server for one connection: reads the request, writes `answer`,
    /// then closes (a FIN, then waits for the client's) or holds it 600 ms.
    fn one_shot(answer: &'static [u8], close: bool) -> (SocketAddr, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let h = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer);
            if close {
                let _ = s.shutdown(Shutdown::Write);
                let _ = s.read(&mut buf);
            } else {
                thread::sleep(Duration::from_millis(600));
            }
        });
        (addr, h)
    }

    fn ctx(target: SocketAddr) -> Ctx {
        let ms = Duration::from_millis;
        Ctx {
            target,
            deadlines: Deadlines {
                header: ms(100),
                body: ms(100),
                idle: ms(100),
                write: ms(100),
            },
            slack: ms(100),
            end: Instant::now() + Duration::from_secs(5),
            pipeline_stall: ms(200),
        }
    }

    #[test]
    fn error_answer_then_close_is_ok() {
        let (addr, h) = one_shot(
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbad",
            true,
        );
        assert!(matches!(
            malformed(&ctx(addr), b"GARBAGE\r\n\r\n"),
            Outcome::Ok(_)
        ));
        h.join().unwrap();
    }

    #[test]
    fn success_answer_to_a_bad_request_is_wrong() {
        let (addr, h) = one_shot(
            b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!",
            true,
        );
        assert_eq!(
            malformed(&ctx(addr), b"GARBAGE\r\n\r\n"),
            Outcome::Wrong("not_4xx_or_5xx")
        );
        h.join().unwrap();
    }

    #[test]
    fn error_answer_left_open_is_a_hang() {
        let (addr, h) = one_shot(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad",
            false,
        );
        assert_eq!(
            malformed(&ctx(addr), b"GARBAGE\r\n\r\n"),
            Outcome::Hang("no_close_after_error")
        );
        h.join().unwrap();
    }

    #[test]
    fn short_half_close_answer_is_wrong() {
        let (addr, h) = one_shot(b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\nabc", true);
        assert_eq!(half_close(&ctx(addr)), Outcome::Wrong("eof_mid_response"));
        h.join().unwrap();
    }

    #[test]
    fn silent_server_is_a_stalled_pipeline() {
        let (addr, h) = one_shot(b"", false);
        assert_eq!(pipeline(&ctx(addr)), Outcome::Hang("pipeline_stalled"));
        h.join().unwrap();
    }

    #[test]
    fn non_reader_closed_by_the_server_is_ok() {
        let (addr, h) = one_shot(b"", true);
        assert!(matches!(non_reader(&ctx(addr)), Outcome::Ok(_)));
        h.join().unwrap();
    }

    #[test]
    fn non_reader_left_open_is_a_hang_the_kernel_names() {
        let (addr, h) = one_shot(b"", false);
        assert_eq!(non_reader(&ctx(addr)), Outcome::Hang("never_closed"));
        h.join().unwrap();
    }

    #[test]
    fn nobody_listening_is_untested_not_wrong() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            reset_mid_response(&ctx(addr)),
            Outcome::Untested("connect_failed")
        );
    }

    #[test]
    fn every_malformed_request_is_whole() {
        for r in malformed_requests() {
            assert!(
                r.windows(4).any(|w| w == b"\r\n\r\n"),
                "{:?}",
                String::from_utf8_lossy(&r[..r.len().min(40)])
            );
        }
    }
}
