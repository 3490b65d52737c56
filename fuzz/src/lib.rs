//! Shared drivers for the fuzz targets: feed a stream in given pieces,
//! record what the decoder reports, compare outcomes.
//!
//! The comparison mirrors `h1/tests/split_invariance.rs`: errors, decoded
//! requests (with whole bodies) and events other than HeadStarted/BodyData
//! must not depend on how the stream was split.

use ringwall_h1::{
    encode_error, encode_response, BodyKind, DecodeError, Decoder, EncodeContext, Event, HttpDate,
    Limits, Version,
};

/// Small limits, so that fuzz inputs of a few hundred bytes reach them.
pub fn small_limits() -> Limits {
    Limits::new().with_max_head_bytes(128).with_max_headers(6).with_max_method_bytes(8).with_max_target_bytes(32).with_max_body_bytes(64)
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub requests: Vec<Request>,
    pub error: Option<DecodeError>,
}

/// Feeds `pieces` in order, polling until `Ok(None)` after each, and checks
/// the decoder's invariants on the way: every error is a 4xx/5xx that
/// repeats, BodyData matches the body's growth, responses encode.
pub fn run<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut d = Decoder::new(limits);
    let mut out = Outcome { events: Vec::new(), requests: Vec::new(), error: None };
    let mut wire = Vec::new();
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
                        Event::HeadComplete => assert!(d.head().is_some() && d.body().is_empty()),
                        Event::BodyData(n) => assert_eq!(d.body().len(), before + n),
                        Event::RequestComplete => {
                            let h = d.head().expect("head at RequestComplete");
                            if let BodyKind::Length(n) = h.body_kind() {
                                assert_eq!(d.body().len() as u64, n);
                            }
                            assert!(d.body().len() as u64 <= limits.max_body_bytes);
                            let ctx = EncodeContext {
                                date: &date,
                                version: h.version(),
                                keep_alive: h.keep_alive(),
                                head_request: h.is_head(),
                            };
                            wire.clear();
                            encode_response(&mut wire, 200, &[], d.body(), &ctx).expect("encodes");
                            out.requests.push(Request {
                                method: h.method().to_owned(),
                                target: h.target().to_owned(),
                                path: h.path().to_owned(),
                                query: h.query().map(str::to_owned),
                                version: h.version(),
                                headers: h.headers().map(|(n, v)| (n.to_owned(), v.to_vec())).collect(),
                                keep_alive: h.keep_alive(),
                                expect_continue: h.expect_continue(),
                                is_head: h.is_head(),
                                body_kind: h.body_kind(),
                                body: d.body().to_vec(),
                            });
                        }
                    }
                }
                Err(e) => {
                    assert!((400..=505).contains(&e.status()), "{e:?}");
                    assert_eq!(d.poll(), Err(e));
                    wire.clear();
                    encode_error(&mut wire, &e, &date);
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

/// The parts of an outcome that must not depend on the split.
pub fn split_independent(o: &Outcome) -> (Option<DecodeError>, &[Request], Vec<Event>) {
    let events = o
        .events
        .iter()
        .copied()
        .filter(|e| !matches!(e, Event::HeadStarted | Event::BodyData(_)))
        .collect();
    (o.error, &o.requests, events)
}

/// Cuts `stream` at offsets taken from `choices` (each byte a position in
/// 256ths of the stream).
pub fn pieces<'a>(stream: &'a [u8], choices: &[u8]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> =
        choices.iter().map(|&c| usize::from(c) * stream.len() / 256).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push(&stream[start..c]);
        start = c;
    }
    out.push(&stream[start..]);
    out
}
