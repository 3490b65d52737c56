//! The benchmark app, the same as the `ringwall` binary's: tests that use it
//! check the behaviour a benchmark run would see.

use ringwall::{Request, Response};

/// The largest body `GET /bytes/N` answers (64 MiB).
pub const MAX_BYTES_RESPONSE: usize = 64 << 20;

/// - POST, PUT, PATCH: the request body is echoed back;
/// - `GET /bytes/N` (and HEAD): N bytes of `x`, N up to 64 MiB;
/// - anything else: 200 `Hello, World!` (text/plain).
pub fn app(request: &Request<'_>, response: &mut Response<'_>) {
    const TEXT: (&str, &[u8]) = ("Content-Type", b"text/plain");
    let result = match request.method() {
        "POST" | "PUT" | "PATCH" => response.send(
            200,
            &[("Content-Type", b"application/octet-stream")],
            request.body(),
        ),
        "GET" | "HEAD" if request.path().starts_with("/bytes/") => {
            match request.path()["/bytes/".len()..].parse::<usize>() {
                Ok(n) if n <= MAX_BYTES_RESPONSE => {
                    let body = vec![b'x'; n];
                    response.send(200, &[("Content-Type", b"application/octet-stream")], &body)
                }
                Ok(_) => response.send(400, &[TEXT], b"at most 67108864 bytes\n"),
                Err(_) => response.send(400, &[TEXT], b"bad byte count\n"),
            }
        }
        _ => response.send(200, &[TEXT], b"Hello, World!"),
    };
    if let Err(e) = result {
        panic!("the benchmark app's response was refused: {e}");
    }
}
