//! The benchmark app that `ringwall serve`, the integration tests and every
//! peer in `benches/` serve, so a benchmark compares like with like.

use std::sync::LazyLock;

use crate::app::handler::{Request, Response};
use ringwall_h1::PreparedHeaders;

/// The largest body `GET /bytes/N` answers (64 MiB): the answer is queued
/// in memory, so N is bounded.
pub const BENCHMARK_MAX_BYTES: usize = 64 << 20;

/// `/bytes/N` is written from this one static block, repeated: no
/// per-request allocation of N bytes, and nothing built for HEAD.
static FILL: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// The fields of the answer nearly every benchmark request gets, checked
/// once.
static HELLO_HEADERS: LazyLock<PreparedHeaders> = LazyLock::new(|| {
    PreparedHeaders::new(&[("Content-Type", b"text/plain")]).expect("a valid, unreserved field")
});

/// - POST, PUT, PATCH: the request body is echoed back;
/// - `GET /bytes/N` (and HEAD): N bytes of `x`, N up to 64 MiB (for slow-read
///   tests);
/// - anything else: 200 `Hello, World!` (text/plain).
pub fn benchmark_app(request: &Request<'_>, response: &mut Response<'_>) {
    const TEXT: (&str, &[u8]) = ("Content-Type", b"text/plain");
    const OCTETS: (&str, &[u8]) = ("Content-Type", b"application/octet-stream");
    let result = match request.method() {
        "POST" | "PUT" | "PATCH" => response.send(200, &[OCTETS], request.body()),
        "GET" | "HEAD" if request.path().starts_with("/bytes/") => {
            match request.path()["/bytes/".len()..].parse::<usize>() {
                Ok(n) if n <= BENCHMARK_MAX_BYTES => {
                    response.send_sized(200, &[OCTETS], n, |body| {
                        while body.remaining() > 0 {
                            body.write(&FILL);
                        }
                    })
                }
                Ok(_) => response.send(400, &[TEXT], b"at most 67108864 bytes\n"),
                Err(_) => response.send(400, &[TEXT], b"bad byte count\n"),
            }
        }
        _ => response.send_prepared(200, &HELLO_HEADERS, b"Hello, World!"),
    };
    // Fixed, valid headers and one send: the encoder cannot refuse them.
    debug_assert!(result.is_ok(), "{result:?}");
}
