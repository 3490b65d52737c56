//! The chunked body decoder alone: decoding in pieces gives the same body,
//! consumption and error as decoding whole, and never passes the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringwall_h1::ChunkedDecoder;
use ringwall_h1_fuzz::{pieces, small_limits};

fn decode<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, usize, bool, Option<u16>) {
    let limits = small_limits();
    let mut d = ChunkedDecoder::new(&limits);
    let (mut body, mut consumed) = (Vec::new(), 0);
    for part in parts {
        match d.decode(part, &mut body) {
            Ok(p) => {
                assert!(p.consumed <= part.len());
                consumed += p.consumed;
                assert_eq!(d.decoded_bytes(), body.len() as u64);
                assert!(body.len() as u64 <= limits.max_body_bytes);
                if p.done {
                    return (body, consumed, true, None);
                }
                assert_eq!(p.consumed, part.len(), "stopped early without being done");
            }
            Err(e) => return (body, consumed, false, Some(e.status())),
        }
    }
    (body, consumed, false, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (choices, input) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let (whole_body, whole_used, whole_done, whole_err) = decode([input]);
    let (body, used, done, err) = decode(pieces(input, choices));
    assert_eq!((whole_done, whole_err), (done, err));
    if whole_err.is_none() {
        assert_eq!((&whole_body, whole_used), (&body, used));
    }
});
