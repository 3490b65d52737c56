//! Drives a Decoder over a byte stream cut into pieces and records what it
//! reports, so tests can compare outcomes.

#![allow(dead_code)]

use ringwall_h1::{BodyKind, DecodeError, Decoder, Event, Limits, Version};

/// A decoded request, copied out of the decoder at RequestComplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    pub headers: Vec<(String, Vec<u8>)>,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub is_head: bool,
    pub body_kind: BodyKind,
    pub body: Vec<u8>,
}

/// Everything the decoder reported for one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub requests: Vec<Request>,
    pub error: Option<DecodeError>,
}

impl Outcome {
    /// The events with HeadStarted and BodyData removed: what must not
    /// depend on how the stream was split. (HeadStarted reports that bytes
    /// at hand ended mid-head, and BodyData amounts follow the pieces; the
    /// bodies themselves are compared through `requests`.)
    pub fn split_independent_events(&self) -> Vec<Event> {
        self.events
            .iter()
            .copied()
            .filter(|e| !matches!(e, Event::HeadStarted | Event::BodyData(_)))
            .collect()
    }
}

/// Feeds `pieces` one after the other, polling until `Ok(None)` after each,
/// and checks the decoder's invariants along the way.
pub fn run<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut d = Decoder::new(limits);
    let mut out = Outcome {
        events: Vec::new(),
        requests: Vec::new(),
        error: None,
    };
    let mut current: Option<Request> = None;
    for piece in pieces {
        d.feed(piece);
        loop {
            let before = d.body().len();
            match d.poll() {
                Ok(None) => break,
                Ok(Some(event)) => {
                    out.events.push(event);
                    match event {
                        Event::HeadStarted => assert!(d.head().is_none()),
                        Event::HeadComplete => {
                            let h = d.head().expect("head at HeadComplete");
                            current = Some(Request {
                                method: h.method().to_owned(),
                                target: h.target().to_owned(),
                                path: h.path().to_owned(),
                                query: h.query().map(str::to_owned),
                                version: h.version(),
                                headers: h
                                    .headers()
                                    .map(|(n, v)| (n.to_owned(), v.to_vec()))
                                    .collect(),
                                keep_alive: h.keep_alive(),
                                expect_continue: h.expect_continue(),
                                is_head: h.is_head(),
                                body_kind: h.body_kind(),
                                body: Vec::new(),
                            });
                            assert!(d.body().is_empty());
                        }
                        Event::BodyData(n) => {
                            assert!(n > 0, "BodyData(0) reported");
                            assert_eq!(d.body().len(), before + n);
                            assert!(d.head().is_some());
                        }
                        Event::RequestComplete => {
                            let mut req =
                                current.take().expect("HeadComplete before RequestComplete");
                            req.body = d.body().to_vec();
                            assert!(d.head().is_some());
                            out.requests.push(req);
                        }
                    }
                }
                Err(e) => {
                    assert_eq!(d.poll(), Err(e), "an error must repeat on every poll");
                    assert!(d.head().is_none());
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

/// Feeds the stream whole.
pub fn whole(limits: Limits, stream: &[u8]) -> Outcome {
    run(limits, [stream])
}

/// Feeds the stream cut at the given offsets (sorted, deduplicated here).
pub fn split_at(limits: Limits, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        pieces.push(&stream[start..c]);
        start = c;
    }
    pieces.push(&stream[start..]);
    run(limits, pieces)
}

/// Feeds the stream one byte at a time.
pub fn bytewise(limits: Limits, stream: &[u8]) -> Outcome {
    run(limits, stream.chunks(1))
}

/// The first error for the stream fed whole, with default limits.
pub fn error_of(stream: &[u8]) -> Option<DecodeError> {
    whole(Limits::default(), stream).error
}

/// The single request the stream holds, fed whole with default limits.
pub fn request_of(stream: &[u8]) -> Request {
    let out = whole(Limits::default(), stream);
    assert_eq!(
        out.error,
        None,
        "unexpected error for {:?}",
        String::from_utf8_lossy(stream)
    );
    assert_eq!(out.requests.len(), 1, "{out:?}");
    out.requests.into_iter().next().unwrap()
}

/// Asserts the split-independent parts of two outcomes agree, and that
/// HeadStarted appears at most once per head.
pub fn assert_same_outcome(whole: &Outcome, split: &Outcome, what: &str) {
    assert_eq!(whole.error, split.error, "error differs: {what}");
    assert_eq!(whole.requests, split.requests, "requests differ: {what}");
    assert_eq!(
        whole.split_independent_events(),
        split.split_independent_events(),
        "events differ: {what}"
    );
    for o in [whole, split] {
        let mut started = false;
        for e in &o.events {
            match e {
                Event::HeadStarted => {
                    assert!(!started, "HeadStarted twice for one head: {what}");
                    started = true;
                }
                Event::HeadComplete => started = false,
                _ => assert!(
                    !started,
                    "event {e:?} between HeadStarted and HeadComplete: {what}"
                ),
            }
        }
    }
}

/// A whole GET head with `n` fields: Host, then `X-Field-1: value 1` and so
/// on.
pub fn head_with_fields(n: usize) -> Vec<u8> {
    let mut head = b"GET /many HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        head.extend_from_slice(format!("X-Field-{i}: value {i}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}
