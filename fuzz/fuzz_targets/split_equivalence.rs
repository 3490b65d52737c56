//! The first byte picks the limits (high bit) and how many cut points
//! follow (low four bits); the rest is the stream. Whole and cut feeding
//! must decode to the same errors, requests and events (HeadStarted and
//! BodyData amounts aside), and so must feeding one byte at a time.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwall_h1::Limits;
use ringwall_h1_fuzz::{pieces, run, small_limits, split_independent};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let limits = if n & 0x80 == 0 { small_limits() } else { Limits::default() };
    let (choices, stream) = rest.split_at(usize::from(n & 0x0f).min(rest.len()));
    let whole = run(limits, [stream]);
    let split = run(limits, pieces(stream, choices));
    assert_eq!(split_independent(&whole), split_independent(&split));
    let bytewise = run(limits, stream.chunks(1));
    assert_eq!(split_independent(&whole), split_independent(&bytewise));
});
