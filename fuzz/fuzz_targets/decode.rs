//! Arbitrary bytes: the decoder never panics, and every error it reports is
//! a 4xx/5xx status (checked inside `run`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwall_h1::Limits;
use ringwall_h1_fuzz::{run, small_limits};

fuzz_target!(|data: &[u8]| {
    run(Limits::default(), [data]);
    run(small_limits(), [data]);
});
