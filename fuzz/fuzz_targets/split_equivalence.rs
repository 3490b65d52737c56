//! The first byte says how many cut points follow; the rest is the stream.
//! Whole and cut feeding must decode to the same errors, requests and
//! events (HeadStarted and BodyData amounts aside).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwall_h1_fuzz::{pieces, run, small_limits, split_independent};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (choices, stream) = rest.split_at(usize::from(n % 16).min(rest.len()));
    let whole = run(small_limits(), [stream]);
    let split = run(small_limits(), pieces(stream, choices));
    assert_eq!(split_independent(&whole), split_independent(&split));
    let bytewise = run(small_limits(), stream.chunks(1));
    assert_eq!(split_independent(&whole), split_independent(&bytewise));
});
