//! Split invariance: how a stream is cut into feeds must not change what it
//! decodes to.
//!
//! Compared between feeding a stream whole and feeding it in pieces:
//! - the final error (and so its status), or its absence;
//! - every decoded request: head fields, flags and the whole body;
//! - the events other than HeadStarted and BodyData, in order.
//!
//! Not compared, by design: BodyData amounts (they follow the pieces; the
//! concatenated body is compared instead) and HeadStarted (it says that the
//! bytes at hand ended mid-head, which is exactly what splitting changes).
//! For HeadStarted the checked rule is: at most once per head, and only
//! before that head's HeadComplete.

mod common;

use common::{assert_same_outcome, bytewise, split_at, whole};
use proptest::prelude::*;
use ringwall_h1::Limits;

fn small_limits() -> Limits {
    Limits::new()
        .with_max_head_bytes(96)
        .with_max_headers(4)
        .with_max_method_bytes(8)
        .with_max_target_bytes(24)
        .with_max_body_bytes(32)
}

/// Streams that decode, streams that fail, and streams that stop midway.
fn corpus() -> Vec<Vec<u8>> {
    let streams: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\r\nGET /x?y=z HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n",
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        // Incomplete at the end of the stream.
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /partial HTTP/1.1\r\nHo",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        // Errors in the request line.
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0",
        b"GE(T / HTTP/1.1\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\rGET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        // Errors in header lines, some followed by more bytes, some not.
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\nX: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b",
        // Errors after the head.
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        // Limits (with the small limits these trip; with the defaults not).
        b"GET /0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /0123456789012345678901234567890123456789 HTTP/1.1 garbage",
        b"MKCALENDAR / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"MKCALENDAR /0123456789012345678901234567890123456789 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\nMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM",
        b"GET / HTTP/1.111111111111111111111111111111111111111111111111",
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 01234567890123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 01234567890123456789012345678901234567890123456789012345678901234567890123456789",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n0123456789012345678901234567890123456789",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
    ];
    streams.iter().map(|s| s.to_vec()).collect()
}

fn limit_sets() -> [Limits; 2] {
    [Limits::default(), small_limits()]
}

#[test]
fn every_single_split_point_gives_the_same_outcome() {
    for stream in corpus() {
        for limits in limit_sets() {
            let expected = whole(limits, &stream);
            for cut in 0..=stream.len() {
                let got = split_at(limits, &stream, &[cut]);
                assert_same_outcome(
                    &expected,
                    &got,
                    &format!("cut {cut} of {:?}", String::from_utf8_lossy(&stream)),
                );
            }
        }
    }
}

#[test]
fn one_byte_at_a_time_gives_the_same_outcome() {
    for stream in corpus() {
        for limits in limit_sets() {
            assert_same_outcome(
                &whole(limits, &stream),
                &bytewise(limits, &stream),
                &format!("bytewise {:?}", String::from_utf8_lossy(&stream)),
            );
        }
    }
}

#[test]
fn the_corpus_covers_accepts_errors_and_partial_ends() {
    // Guards the corpus itself: a property over only-valid streams would
    // prove little.
    let outcomes: Vec<_> = corpus().iter().map(|s| whole(small_limits(), s)).collect();
    assert!(outcomes.iter().filter(|o| o.error.is_some()).count() >= 20);
    assert!(outcomes.iter().filter(|o| o.error.is_none()).count() >= 5);
    let statuses: std::collections::BTreeSet<u16> = outcomes
        .iter()
        .filter_map(|o| o.error.map(|e| e.status()))
        .collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [400, 413, 414, 431, 501, 505]
    );
}

/// A stream built from pieces of requests, valid and not.
fn arbitrary_stream() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"POST /p?q HTTP/1.1\r\n".to_vec()),
        Just(b"GET / HTTP/1.0\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"Host: a\r\n".to_vec()),
        Just(b"Content-Length: 3\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Connection: close\r\n".to_vec()),
        Just(b"X:  v \r\n".to_vec()),
        Just(b"3\r\nabc\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
        Just(b"abc".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(line, 1..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_multi_splits_of_the_corpus_give_the_same_outcome(
        index in 0usize..1000,
        cuts in prop::collection::vec(0usize..400, 0..12),
        small in any::<bool>(),
    ) {
        let corpus = corpus();
        let stream = &corpus[index % corpus.len()];
        let limits = if small { small_limits() } else { Limits::default() };
        assert_same_outcome(&whole(limits, stream), &split_at(limits, stream, &cuts), "multi-split");
    }

    #[test]
    fn random_streams_split_anywhere_give_the_same_outcome(
        stream in arbitrary_stream(),
        cuts in prop::collection::vec(0usize..200, 0..10),
        small in any::<bool>(),
    ) {
        let limits = if small { small_limits() } else { Limits::default() };
        let expected = whole(limits, &stream);
        assert_same_outcome(&expected, &split_at(limits, &stream, &cuts), "random split");
        assert_same_outcome(&expected, &bytewise(limits, &stream), "bytewise");
    }
}
