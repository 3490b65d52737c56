//! The decoder's contract over a connection's life: when each event is
//! reported, how long the request stays readable, errors, and buffer
//! hand-off while idle.

mod common;

use common::run;
use ringwall_h1::{DecodeBuffers, DecodeError, Decoder, Event, Limits};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn head_arriving_whole_reports_no_head_started() {
    let out = run(Limits::default(), [GET]);
    assert!(!out.events.contains(&Event::HeadStarted));
}

#[test]
fn head_arriving_in_pieces_reports_head_started_once() {
    let out = run(
        Limits::default(),
        [&GET[..3], &GET[3..10], &GET[10..20], &GET[20..]],
    );
    assert_eq!(
        out.events,
        vec![
            Event::HeadStarted,
            Event::HeadComplete,
            Event::RequestComplete
        ]
    );
}

#[test]
fn partial_pipelined_head_reports_head_started_after_request_complete() {
    let mut stream = GET.to_vec();
    stream.extend_from_slice(b"GET /next HT");
    let mut d = Decoder::new(Limits::default());
    d.feed(&stream);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::HeadStarted)));
    assert_eq!(d.poll(), Ok(None));
    assert_eq!(d.poll(), Ok(None), "HeadStarted is reported once");
    d.feed(b"TP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.head().unwrap().path(), "/next");
}

#[test]
fn stray_empty_lines_leave_the_decoder_idle() {
    // RFC 9112 2.2: ignored, and not a started head: a keep-alive client that
    // sends a CRLF after its request stays under its idle deadline (the
    // engine's timers start the header deadline for bytes after idle).
    let mut d = Decoder::new(Limits::default());
    d.feed(b"\r\n\n\r\n");
    assert_eq!(d.poll(), Ok(None));
    assert!(d.is_idle());
    assert_eq!(d.buffered(), 0);
}

#[test]
fn stray_crlf_after_a_request_leaves_the_decoder_idle() {
    let mut d = Decoder::new(Limits::default());
    d.feed(GET);
    d.feed(b"\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert_eq!(d.poll(), Ok(None));
    assert!(d.is_idle());
}

#[test]
fn empty_line_split_after_its_cr_is_still_skipped() {
    // Split feeding must decide like whole feeding: 60 bytes of empty lines
    // are skipped (not counted in the head) however they arrive.
    let limits = Limits::new()
        .with_max_head_bytes(64)
        .with_max_headers(4)
        .with_max_method_bytes(8)
        .with_max_target_bytes(16)
        .with_max_body_bytes(10);
    let stream = format!("{}GET / HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n".repeat(30));
    let mut d = Decoder::new(limits);
    for b in stream.as_bytes() {
        d.feed(std::slice::from_ref(b));
        while let Some(event) = d.poll().expect("the head is within the limit") {
            if event == Event::RequestComplete {
                return;
            }
        }
    }
    panic!("the request never completed");
}

#[test]
fn empty_lines_then_a_partial_request_line_start_a_head() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"\r\nGE");
    assert_eq!(d.poll(), Ok(Some(Event::HeadStarted)));
    assert!(!d.is_idle());
    d.feed(&GET[2..]);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.head().unwrap().path(), "/");
}

#[test]
fn head_and_body_stay_until_the_poll_after_request_complete() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(d.head().map(|h| h.path()), None);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::BodyData(1))));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert_eq!(d.head().unwrap().path(), "/p");
    assert_eq!(d.body(), b"x");
    assert_eq!(d.poll(), Ok(None));
    assert!(d.head().is_none());
    assert!(d.body().is_empty());
}

#[test]
fn feeding_while_a_request_is_held_keeps_the_head_intact() {
    // Compaction on feed moves bytes; the held head must not change.
    let mut d = Decoder::new(Limits::default());
    d.feed(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\n\r\nab");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::BodyData(2))));
    d.feed(b"cd");
    let head = d.head().unwrap();
    assert_eq!(head.path(), "/b");
    assert_eq!(head.header("host"), Some(&b"b"[..]));
    assert_eq!(d.poll(), Ok(Some(Event::BodyData(2))));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert_eq!(d.body(), b"abcd");
    d.feed(b"GET /c HTTP/1.1\r\nHost: c\r\n\r\n");
    assert_eq!(d.head().unwrap().path(), "/b");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.head().unwrap().path(), "/c");
}

#[test]
fn an_error_repeats_on_every_later_poll() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(d.poll(), Err(DecodeError::MissingHost));
    assert_eq!(d.poll(), Err(DecodeError::MissingHost));
    d.feed(GET);
    assert_eq!(d.poll(), Err(DecodeError::MissingHost));
}

#[test]
fn bytes_fed_after_an_error_are_dropped() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"BAD\x01");
    assert!(d.poll().is_err());
    let held = d.buffered();
    d.feed(&[b'x'; 4096]);
    assert_eq!(d.buffered(), held);
}

#[test]
fn buffered_counts_unconsumed_bytes_including_a_partial_head() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"GET / HT");
    assert_eq!(d.buffered(), 8);
    assert_eq!(d.poll(), Ok(Some(Event::HeadStarted)));
    assert_eq!(d.buffered(), 8);
    d.feed(b"TP/1.1\r\nHost: a\r\n\r\nGE");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.buffered(), 2);
}

#[test]
fn idle_only_between_requests_with_nothing_buffered() {
    let mut d = Decoder::new(Limits::default());
    assert!(d.is_idle());
    d.feed(&GET[..5]);
    assert!(!d.is_idle());
    d.feed(&GET[5..]);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert!(!d.is_idle());
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert!(
        d.is_idle(),
        "a completed request with nothing after it is idle"
    );
    assert_eq!(d.poll(), Ok(None));
    assert!(d.is_idle());
}

#[test]
fn not_idle_while_a_body_is_pending_or_after_an_error() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(None));
    assert!(!d.is_idle());
    let mut d = Decoder::new(Limits::default());
    d.feed(b"x\x00");
    assert!(d.poll().is_err());
    d.reclaim();
    assert!(!d.is_idle());
}

#[test]
fn reclaim_is_refused_unless_idle() {
    let mut d = Decoder::new(Limits::default());
    d.feed(b"GET / HT");
    assert!(d.reclaim().is_none());
    assert_eq!(d.buffered(), 8, "a refused reclaim changes nothing");
}

#[test]
fn reclaim_hands_out_the_buffers_and_the_decoder_keeps_working() {
    let mut d = Decoder::new(Limits::default());
    d.feed(GET);
    while d.poll().unwrap().is_some() {}
    let bufs = d.reclaim().expect("idle");
    // The decoder holds no memory now, and still decodes.
    d.feed(GET);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    drop(bufs);
}

#[test]
fn reclaim_drops_a_completed_request_still_held() {
    let mut d = Decoder::new(Limits::default());
    d.feed(GET);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
    assert!(d.reclaim().is_some());
    assert!(d.head().is_none());
    assert_eq!(d.poll(), Ok(None));
}

#[test]
fn lent_buffers_are_used_and_carry_over_pending_bytes() {
    let mut donor = Decoder::new(Limits::default());
    donor.feed(&[b'\n'; 0]);
    donor.feed(GET);
    while donor.poll().unwrap().is_some() {}
    let bufs: DecodeBuffers = donor.reclaim().unwrap();

    let mut d = Decoder::new(Limits::default());
    d.feed(b"GET /lent HTTP/1.1\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadStarted)));
    d.lend(bufs);
    assert_eq!(d.buffered(), 20);
    d.feed(b"Host: a\r\n\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    assert_eq!(d.head().unwrap().path(), "/lent");
}

#[test]
fn zero_head_limit_rejects_the_first_byte_instead_of_buffering_forever() {
    // Invalid limits must still bound memory: nothing is ever waited for.
    let mut d = Decoder::new(Limits::default().with_max_head_bytes(0));
    d.feed(b"G");
    assert_eq!(d.poll(), Err(DecodeError::HeadTooLarge));
}

#[test]
fn a_body_of_tiny_chunks_is_decoded_a_bounded_slice_per_poll() {
    // 30,000 one-byte chunks, 180,000 bytes of framing, fed at once: each
    // poll decodes at most 16 KiB of it, so a caller can yield between
    // polls; the body is whole all the same.
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend(b"1\r\nx\r\n".repeat(30_000));
    input.extend(b"0\r\n\r\n");
    let mut d = Decoder::new(Limits::default());
    d.feed(&input);
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    let mut polls = 0;
    loop {
        let before = d.buffered();
        let event = d.poll().expect("a valid body");
        assert!(
            before - d.buffered() <= 16 * 1024,
            "one poll took {}",
            before - d.buffered()
        );
        polls += 1;
        match event {
            Some(Event::BodyData(_)) => {}
            Some(Event::RequestComplete) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(polls > 180_000 / (16 * 1024), "{polls} polls");
    assert_eq!(d.body(), vec![b'x'; 30_000].as_slice());
}
