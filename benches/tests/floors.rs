//! The floors do exactly their one thing: canned answers every request head
//! with ringwall's bytes for `GET /` and nothing more; closer closes each
//! connection with a FIN at the header deadline and sends nothing. Timing
//! bounds are generous: these pin behaviour, not precision.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringwall_bench::peers::{Deadlines, Peer, PeerConfig, ServerKind, StartError, CANNED_RESPONSE};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

fn start_canned() -> Peer {
    std::env::set_var("CANNED_BIN", env!("CARGO_BIN_EXE_canned"));
    Peer::start(ServerKind::Canned, &PeerConfig::default()).expect("canned starts")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads `n` canned responses and checks each one byte for byte.
fn read_responses(s: &mut TcpStream, n: usize) {
    let mut answer = vec![0; CANNED_RESPONSE.len()];
    for i in 0..n {
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("response {i} of {n}: {e}"));
        assert_eq!(answer, CANNED_RESPONSE, "response {i} of {n}");
    }
}

/// Nothing more arrives within a short wait: no answer was counted twice.
fn assert_nothing_more(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0; 1];
    match s.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn canned_answers_each_keep_alive_request_with_its_fixed_bytes() {
    let peer = start_canned();
    let mut s = connect(peer.addr());
    for _ in 0..20 {
        s.write_all(GET).unwrap();
        read_responses(&mut s, 1);
    }
    assert_nothing_more(&mut s);
}

#[test]
fn canned_answers_a_pipelined_batch_once_per_head_even_across_receives() {
    let peer = start_canned();
    let mut s = connect(peer.addr());
    let batch = GET.repeat(50);
    // Split inside the last `\r\n\r\n`: the count carries over a receive.
    let split = batch.len() - 3;
    s.write_all(&batch[..split]).unwrap();
    read_responses(&mut s, 49);
    assert_nothing_more(&mut s);
    s.write_all(&batch[split..]).unwrap();
    read_responses(&mut s, 1);
    // A head without its terminator, and bare CRs and LFs, are no request.
    s.write_all(b"GET / HTTP/1.1\r\n\r\rX\n\n\r\n").unwrap();
    assert_nothing_more(&mut s);
}

#[test]
fn canned_answers_what_came_before_the_clients_fin_then_closes() {
    let peer = start_canned();
    let mut s = connect(peer.addr());
    s.write_all(&GET.repeat(7)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("canned closes after answering");
    assert_eq!(all, CANNED_RESPONSE.repeat(7));
}

/// The head up to and including `Date: `, and what follows its value.
fn without_date(response: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let at = response
        .windows(6)
        .position(|w| w == b"Date: ")
        .expect("a Date header")
        + 6;
    let end = at
        + response[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap();
    (response[..at].to_vec(), response[end..].to_vec())
}

#[test]
fn canned_bytes_are_ringwalls_answer_to_get_slash_but_for_the_date() {
    // `cargo build -p ringwall` (same profile and target dir) or $RINGWALL_BIN.
    let peer = match Peer::start(ServerKind::Ringwall, &PeerConfig::default()) {
        Ok(peer) => peer,
        Err(StartError::Missing { reason }) => {
            eprintln!("ringwall: skipped: {reason}");
            return;
        }
        Err(e) => panic!("ringwall: {e}"),
    };
    let mut s = connect(peer.addr());
    s.write_all(GET).unwrap();
    // An HTTP date is always 29 bytes, so ringwall's answer has canned's length.
    let mut answer = vec![0; CANNED_RESPONSE.len()];
    s.read_exact(&mut answer).expect("ringwall answers");
    assert_eq!(without_date(&answer), without_date(CANNED_RESPONSE));
    assert_nothing_more(&mut s);
}

#[test]
fn closer_closes_at_the_header_deadline_with_a_fin_and_sends_nothing() {
    std::env::set_var("CLOSER_BIN", env!("CARGO_BIN_EXE_closer"));
    let header = Duration::from_millis(500);
    let config = PeerConfig {
        workers: 2,
        deadlines: Deadlines {
            header,
            ..Deadlines::default()
        },
        ..PeerConfig::default()
    };
    let peer = Peer::start(ServerKind::Closer, &config).expect("closer starts");
    // Several connections, so both workers' listeners are likely exercised.
    // Each clock starts before connect: accept, and so the deadline, is later.
    let conns: Vec<(Instant, TcpStream)> = (0..6)
        .map(|_| (Instant::now(), connect(peer.addr())))
        .collect();
    for (i, (start, mut s)) in conns.into_iter().enumerate() {
        let mut buf = [0; 64];
        let read = s.read(&mut buf);
        let elapsed = start.elapsed();
        // A FIN reads as end of stream; a byte sent would come first; an RST
        // would be an error.
        assert!(matches!(read, Ok(0)), "connection {i}: {read:?}");
        assert!(
            elapsed >= header,
            "connection {i} closed early: {elapsed:?}"
        );
        assert!(
            elapsed < header + Duration::from_secs(2),
            "connection {i} closed late: {elapsed:?}"
        );
    }
}
