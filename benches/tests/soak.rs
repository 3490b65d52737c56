//! The soak's newer classes are judged: each is run against a small fake
//! server that keeps or breaks the class's rule, and the verdict must say
//! so. Deadlines are a few hundred milliseconds, on loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use ringwall_bench::check::echo_byte;
use ringwall_bench::peers::Deadlines;
use ringwall_bench::soak::classes::ClassReport;
use ringwall_bench::soak::exchanges::{self, Ctx, Outcome, ReadPace};
use ringwall_bench::soak::storms::{self, Ended, Storm};
use ringwall_bench::soak::verdict::{self, CounterCheck, Limits, Observed, Resources};
use ringwall_bench::sys;

const DEADLINE: Duration = Duration::from_millis(400);
const SLACK: Duration = Duration::from_millis(200);

fn ctx(target: SocketAddr) -> Ctx {
    Ctx {
        target,
        deadlines: Deadlines {
            header: DEADLINE,
            body: DEADLINE,
            idle: DEADLINE,
            write: DEADLINE,
        },
        slack: SLACK,
        end: Instant::now() + Duration::from_secs(10),
        pipeline_stall: DEADLINE,
    }
}

fn storm(target: SocketAddr, connections: usize, opening: Vec<u8>) -> Storm {
    Storm {
        target,
        connections,
        opening,
        deadline: DEADLINE,
        slack: SLACK,
        open_over: Duration::from_millis(50),
    }
}

/// Serves up to `n` connections, `handle` on a thread each (all at once),
/// or one after another when `serial`.
fn fake_server(
    n: usize,
    serial: bool,
    handle: fn(TcpStream),
) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut each = Vec::new();
        for _ in 0..n {
            let Ok((s, _)) = listener.accept() else { break };
            if serial {
                handle(s);
            } else {
                each.push(thread::spawn(move || handle(s)));
            }
        }
        for h in each {
            let _ = h.join();
        }
    });
    (addr, h)
}

/// Reads whatever comes for [`DEADLINE`], then closes: an endpoint with a
/// header deadline.
fn close_at_deadline(mut s: TcpStream) {
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..10_000 {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {}
        }
    }
}

fn verdict_checks(classes: &[ClassReport]) -> Vec<&'static str> {
    let base = Resources { fds: 10, rss: 1 };
    let o = Observed {
        classes,
        baseline: base,
        settled: Some(base),
        counters: &CounterCheck::NotChecked,
    };
    let limits = Limits {
        fd_tolerance: 0,
        rss_factor: 1.0,
    };
    let mut checks: Vec<_> = verdict::judge(&o, &limits)
        .iter()
        .map(|f| f.check)
        .collect();
    checks.dedup();
    checks
}

fn judged(name: &'static str, ended: &[Ended]) -> ClassReport {
    let mut r = ClassReport::new(name);
    storms::judge(ended, &mut r);
    r
}

#[test]
fn silent_connections_and_head_storms_closed_at_one_deadline_pass() {
    for (name, opening) in [
        ("metrics-silent", Vec::new()),
        ("head-storm", storms::storm_head()),
    ] {
        let (addr, h) = fake_server(4, false, close_at_deadline);
        let ended = storms::run_storm(&storm(addr, 4, opening)).unwrap();
        h.join().unwrap();
        assert!(
            ended.iter().all(|e| matches!(e, Ended::AtDeadline(_))),
            "{name}: {ended:?}"
        );
        let r = judged(name, &ended);
        assert_eq!(r.ok_by.to_string(), "closed_at_deadline=4");
        assert!(verdict_checks(&[r]).is_empty());
    }
}

/// Today's metrics endpoint: one connection at a time, each held until its
/// deadline. The k-th silent connection is closed k deadlines after its
/// connect, so all but the first hang.
#[test]
fn a_serial_endpoint_hangs_all_silent_connections_but_the_first() {
    let (addr, h) = fake_server(4, true, close_at_deadline);
    let ended = storms::run_storm(&storm(addr, 4, Vec::new())).unwrap();
    h.join().unwrap();
    assert!(matches!(ended[0], Ended::AtDeadline(_)), "{ended:?}");
    assert!(
        ended[1..]
            .iter()
            .all(|e| matches!(e, Ended::ClosedLate | Ended::OpenPastDeadline)),
        "{ended:?}"
    );
    assert_eq!(
        verdict_checks(&[judged("metrics-silent", &ended)]),
        ["hangs"]
    );
}

/// Holds a connection that sends nothing for [`DEADLINE`]; answers a
/// scrape at once.
fn hold_or_answer(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    if let Ok(n @ 1..) = s.read(&mut buf) {
        if buf[..n].starts_with(b"GET /metrics") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
}

/// And a scrape queued behind silent connections on a serial endpoint
/// waits them all out (three deadlines here): late, so a wrong answer.
#[test]
fn a_scrape_behind_silent_connections_on_a_serial_endpoint_is_late() {
    let (addr, h) = fake_server(4, true, hold_or_answer);
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let within = DEADLINE * 2;
    assert_eq!(exchanges::scrape(addr, within), Outcome::Wrong("timeout"));
    drop(silent);
    h.join().unwrap();
}

#[test]
fn a_scrape_beside_silent_connections_on_a_concurrent_endpoint_is_ok() {
    let (addr, h) = fake_server(4, false, hold_or_answer);
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Let the silent ones be accepted first.
    thread::sleep(Duration::from_millis(50));
    let outcome = exchanges::scrape(addr, DEADLINE * 2);
    assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
    drop(silent);
    h.join().unwrap();
}

#[test]
fn a_scrape_answered_200_is_ok_and_a_404_is_wrong() {
    fn ok(mut s: TcpStream) {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    fn not_found(mut s: TcpStream) {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    let within = Duration::from_secs(2);
    let (addr, h) = fake_server(1, false, ok);
    assert!(matches!(exchanges::scrape(addr, within), Outcome::Ok(_)));
    h.join().unwrap();
    let (addr, h) = fake_server(1, false, not_found);
    assert_eq!(
        exchanges::scrape(addr, within),
        Outcome::Wrong("bad_status")
    );
    h.join().unwrap();
}

#[test]
fn a_head_storm_refused_with_431_or_503_is_ok_and_counted_apart() {
    fn refuse(mut s: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.read(&mut buf);
    }
    let (addr, h) = fake_server(3, false, refuse);
    let ended = storms::run_storm(&storm(addr, 3, storms::storm_head())).unwrap();
    h.join().unwrap();
    assert_eq!(ended, [Ended::Refused(503); 3]);
    let r = judged("head-storm", &ended);
    assert_eq!(r.ok_by.to_string(), "refused_503=3");
    assert!(verdict_checks(&[r]).is_empty());
}

#[test]
fn a_head_storm_left_open_hangs_and_one_answered_200_is_wrong() {
    fn hold(mut s: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        s.set_read_timeout(Some(DEADLINE + SLACK * 3)).unwrap();
        for _ in 0..100 {
            if matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                break;
            }
        }
    }
    fn answer(mut s: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    let (addr, h) = fake_server(2, false, hold);
    let ended = storms::run_storm(&storm(addr, 2, storms::storm_head())).unwrap();
    h.join().unwrap();
    assert_eq!(ended, [Ended::OpenPastDeadline; 2]);
    assert_eq!(verdict_checks(&[judged("head-storm", &ended)]), ["hangs"]);
    let (addr, h) = fake_server(1, false, answer);
    let ended = storms::run_storm(&storm(addr, 1, storms::storm_head())).unwrap();
    h.join().unwrap();
    assert_eq!(ended, [Ended::UnexpectedAnswer]);
    assert_eq!(
        verdict_checks(&[judged("head-storm", &ended)]),
        ["wrong-responses"]
    );
}

/// The request line of a `GET /bytes/N`, read whole.
fn bytes_requested(s: &mut TcpStream) -> usize {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the client closed before its request ended");
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let n = line.split_whitespace().nth(1).unwrap();
    n.trim_start_matches("/bytes/").parse().unwrap()
}

fn send_bytes(mut s: TcpStream) {
    let n = bytes_requested(&mut s);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b'x'; n]);
}

fn reset_halfway(mut s: TcpStream) {
    let n = bytes_requested(&mut s);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&vec![b'x'; n / 2]);
    sys::set_linger_zero(&s).unwrap();
}

#[test]
fn a_stream_read_whole_is_ok_at_either_pace() {
    let (addr, h) = fake_server(2, false, send_bytes);
    assert!(matches!(
        exchanges::stream_reader(&ctx(addr), 1 << 20, ReadPace::Full),
        Outcome::Ok(_)
    ));
    let started = Instant::now();
    let paced =
        exchanges::stream_reader(&ctx(addr), 64 * 1024, ReadPace::BytesPerSecond(256 * 1024));
    assert!(matches!(paced, Outcome::Ok(_)), "{paced:?}");
    // 64 KiB at 256 KiB/s, a tenth of a second ahead: the pace held back.
    assert!(started.elapsed() >= Duration::from_millis(140));
    h.join().unwrap();
}

#[test]
fn a_stream_reset_before_its_end_is_a_false_kill() {
    let (addr, h) = fake_server(2, false, reset_halfway);
    for pace in [ReadPace::Full, ReadPace::BytesPerSecond(4 << 20)] {
        let outcome = exchanges::stream_reader(&ctx(addr), 1 << 20, pace);
        assert_eq!(
            outcome,
            Outcome::FalseKill("reset_mid_response"),
            "{pace:?}"
        );
        let mut r = ClassReport::new("slow-stream");
        r.record(outcome);
        assert_eq!(verdict_checks(&[r]), ["false-kills"]);
    }
    h.join().unwrap();
}

/// Reads a chunked request to its last chunk and answers `body`.
fn answer_chunked(s: &mut TcpStream, body: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !got.ends_with(b"\r\n0\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
}

#[test]
fn tiny_chunks_echoed_exactly_are_ok_and_a_wrong_echo_is_wrong() {
    fn echo(mut s: TcpStream) {
        let body: Vec<u8> = (0..4096).map(echo_byte).collect();
        answer_chunked(&mut s, &body);
    }
    fn wrong(mut s: TcpStream) {
        answer_chunked(&mut s, &[b'x'; 4096]);
    }
    assert_eq!(exchanges::tiny_chunk_count(0), 4096);
    let (addr, h) = fake_server(1, false, echo);
    assert!(matches!(
        exchanges::tiny_chunks(&ctx(addr), 4096),
        Outcome::Ok(_)
    ));
    h.join().unwrap();
    let (addr, h) = fake_server(1, false, wrong);
    let outcome = exchanges::tiny_chunks(&ctx(addr), 4096);
    assert_eq!(outcome, Outcome::Wrong("wrong_body"));
    let mut r = ClassReport::new("tiny-chunks");
    r.record(outcome);
    assert_eq!(verdict_checks(&[r]), ["wrong-responses"]);
    h.join().unwrap();
}

#[test]
fn tiny_chunk_counts_double_from_4096_to_65536_then_start_over() {
    let counts: Vec<usize> = (0..6).map(exchanges::tiny_chunk_count).collect();
    assert_eq!(counts, [4096, 8192, 16_384, 32_768, 65_536, 4096]);
}
