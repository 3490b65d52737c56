//! Arbitrary bytes: the PROXY header parser never panics, never consumes
//! more than it was given, and every prefix is `Incomplete` or decides the
//! same as the whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwall_h1::{parse_proxy_header, ProxyStatus};

fuzz_target!(|data: &[u8]| {
    let whole = parse_proxy_header(data);
    if let Ok(ProxyStatus::Done { consumed, .. }) = whole {
        assert!(consumed <= data.len());
    }
    for cut in 0..data.len().min(600) {
        let part = parse_proxy_header(&data[..cut]);
        assert!(part == Ok(ProxyStatus::Incomplete) || part == whole, "cut at {cut}");
    }
});
