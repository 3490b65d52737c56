//! Every rejection rule of ARCHITECTURE.md reaches the wire as its status with
//! `Connection: close`, followed by a FIN; the handler never sees the request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringwall::{Limits, Request, Response};
use ringwall_tests::{app, builder, start_or_skip, wait_until, Client, CloseKind};

/// Small limits, so each one is easy to cross and the others stay far away.
const LIMITS: Limits = Limits::new()
    .with_max_head_bytes(4096)
    .with_max_headers(20)
    .with_max_method_bytes(32)
    .with_max_target_bytes(1024)
    .with_max_body_bytes(1024);

/// Sends `request`, expects one of `statuses` with `Connection: close`, then
/// a FIN; checks the close was counted under the status and that the handler
/// was never called.
fn assert_rejected(request: &[u8], statuses: &[u16]) {
    assert_rejected_under(LIMITS, request, statuses)
}

fn assert_rejected_under(limits: Limits, request: &[u8], statuses: &[u16]) {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = Arc::clone(&calls);
        move |req: &Request<'_>, resp: &mut Response<'_>| {
            calls.fetch_add(1, Ordering::Relaxed);
            app(req, resp)
        }
    };
    let Some(server) = start_or_skip(builder().limits(limits), handler) else {
        return;
    };
    let shown = String::from_utf8_lossy(&request[..request.len().min(120)]).into_owned();
    let mut client = Client::connect(server.local_addr());
    client.send(request);
    let r = client
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{shown:?}: no rejection: {e}"));
    assert!(
        statuses.contains(&r.status),
        "{shown:?}: status {} ({:?}), expected one of {statuses:?}; body {:?}",
        r.status,
        r.reason,
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.connection_has("close"), "{shown:?}: {r:?}");
    let closed = client.wait_for_close(Duration::from_secs(3));
    assert_eq!(
        closed.kind,
        CloseKind::Fin,
        "{shown:?}: after the {} response: {closed:?}",
        r.status
    );
    assert!(
        closed.data.is_empty(),
        "{shown:?}: bytes after the rejection: {:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "{shown:?} reached the handler"
    );
    let counted = |s: &ringwall::Stats| match r.status {
        400 => s.closes.protocol_error_400,
        413 => s.closes.protocol_error_413,
        414 => s.closes.protocol_error_414,
        431 => s.closes.protocol_error_431,
        501 => s.closes.protocol_error_501,
        505 => s.closes.protocol_error_505,
        _ => s.closes.protocol_error,
    };
    assert!(
        wait_until(Duration::from_secs(1), || counted(&server.stats()) == 1
            && server.stats().closes.protocol_error == 1),
        "{shown:?}: close not counted under {}: {}",
        r.status,
        server.stats()
    );
    assert_eq!(server.stats().requests, 0, "{shown:?}");
}

/// One named `#[test]` per rule: `name: request => [allowed statuses]`.
macro_rules! rejected {
    ($($(#[$meta:meta])* $name:ident: $request:expr => $statuses:expr;)*) => {
        $(
            $(#[$meta])*
            #[test]
            fn $name() {
                assert_rejected(&$request, &$statuses);
            }
        )*
    };
}

fn with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    request
}

fn long_header(len: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}\r\n\r\n",
        "v".repeat(len)
    )
    .into_bytes()
}

fn many_headers(count: usize) -> Vec<u8> {
    let mut request = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..count {
        request.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

fn long_target(len: usize) -> Vec<u8> {
    format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(len - 1)).into_bytes()
}

fn chunked_over_limit() -> Vec<u8> {
    // 3 x 512 bytes announced in chunks: over the 1024-byte limit on the third.
    let chunk = format!("200\r\n{}\r\n", "c".repeat(512));
    with_body(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        format!("{chunk}{chunk}{chunk}0\r\n\r\n").as_bytes(),
    )
}

rejected! {
    content_length_with_transfer_encoding_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        => [400];
    differing_content_lengths_are_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
        => [400];
    differing_content_lengths_in_one_field_are_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!"
        => [400];
    malformed_content_length_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5a\r\n\r\nhello"
        => [400];
    signed_content_length_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello"
        => [400];
    overflowing_content_length_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 184467440737095516160\r\n\r\n"
        => [400];
    transfer_encoding_with_chunked_not_final_is_rejected:
        *b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
        => [400, 501];
    transfer_encoding_without_chunked_is_rejected:
        *b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc"
        => [400, 501];
    chunked_applied_twice_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
        => [400];
    transfer_encoding_in_http10_is_400:
        *b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        => [400];
    bad_chunk_size_is_400:
        *b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        => [400];
    obs_fold_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n two\r\n\r\n"
        => [400];
    space_before_colon_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Spaced : value\r\n\r\n"
        => [400];
    tab_before_colon_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Tabbed\t: value\r\n\r\n"
        => [400];
    bare_cr_in_header_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Cr: a\rb\r\n\r\n"
        => [400];
    nul_in_header_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n"
        => [400];
    control_byte_in_header_is_400:
        *b"GET / HTTP/1.1\r\nHost: t\r\nX-Ctl: a\x01b\r\n\r\n"
        => [400];
    http11_without_host_is_400:
        *b"GET / HTTP/1.1\r\nX-Other: t\r\n\r\n"
        => [400];
    two_hosts_are_400:
        *b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
        => [400];
    head_over_max_head_bytes_is_431: long_header(5000) => [431];
    too_many_headers_is_431: many_headers(30) => [431];
    target_too_long_is_414: long_target(2000) => [414];
    body_over_max_body_bytes_is_413:
        with_body("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n", &[b'b'; 100])
        => [413];
    chunked_body_over_max_body_bytes_is_413: chunked_over_limit() => [413];
    unknown_version_is_505: *b"GET / HTTP/3.0\r\nHost: t\r\n\r\n" => [505];
    http2_version_in_http1_syntax_is_505: *b"GET / HTTP/2.0\r\nHost: t\r\n\r\n" => [505];
    bad_method_token_is_400: *b"GE(T / HTTP/1.1\r\nHost: t\r\n\r\n" => [400];
}

/// A chunk size past u64 is a framing error (400), told apart from a body
/// over the limit (413) by a limit no size can exceed.
#[test]
fn chunk_size_overflow_is_400() {
    let unlimited = LIMITS.with_max_body_bytes(u64::MAX);
    assert_rejected_under(
        unlimited,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n100000000000000001\r\nhello\r\n0\r\n\r\n",
        &[400],
    );
}

/// Under the ordinary limit too: the first digits of these pass 1 KiB, but
/// the size cannot be represented, so it is malformed (RFC 9112 7.1), not
/// too large; a representable size over the limit is still 413.
#[test]
fn chunk_size_overflow_is_400_under_a_finite_limit() {
    for (size, status) in [
        ("10000000000000000", 400),
        ("ffffffffffffffffff1", 400),
        ("ffffffffffffffff", 413),
    ] {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
        );
        assert_rejected(request.as_bytes(), &[status]);
    }
}

/// The limits themselves are inclusive: a request exactly at each one passes.
#[test]
fn requests_at_the_limits_are_served() {
    let Some(server) = start_or_skip(builder().limits(LIMITS), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let body = vec![b'b'; LIMITS.max_body_bytes as usize];
    let r = client.request(&with_body(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n",
        &body,
    ));
    assert_eq!((r.status, r.body.len()), (200, body.len()), "{r:?}");
    let r = client.request(&long_target(LIMITS.max_target_bytes));
    assert_eq!(r.status, 200, "{r:?}");
    // 19 headers plus Host: exactly max_headers.
    let r = client.request(&many_headers(LIMITS.max_headers - 1));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.stats().closes.protocol_error, 0);
}

/// A body announced over the limit is refused before the client sends it:
/// 413 instead of 100 Continue.
#[test]
fn expect_100_continue_with_oversized_body_gets_413_without_100() {
    let Some(server) = start_or_skip(builder().limits(LIMITS), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = client.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
}

/// Requests pipelined before a bad one are answered in order; the bad one
/// gets its status and nothing after it is read.
#[test]
fn pipelined_requests_before_a_bad_one_are_answered_then_400() {
    let Some(server) = start_or_skip(builder().limits(LIMITS), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(
        b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo\
          GET /3 HTTP/1.1\r\nHost: t\r\nX-Bad : space\r\n\r\n\
          GET /4 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let first = client.read_response();
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"Hello, World!"[..])
    );
    let second = client.read_response();
    assert_eq!((second.status, second.body.as_slice()), (200, &b"two"[..]));
    let third = client.read_response();
    assert_eq!(third.status, 400, "{third:?}");
    assert!(third.connection_has("close"), "{third:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(
        closed.data.is_empty(),
        "a request after the bad one was answered: {:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert_eq!(server.stats().requests, 2);
}

/// A rejected request whose body keeps arriving: the server must keep reading
/// (and discarding) after its response, or closing with unread bytes turns
/// into a reset that can destroy the 413 before the client reads it.
#[test]
fn rejection_with_unread_body_still_reaches_the_client() {
    let Some(server) = start_or_skip(builder().limits(LIMITS), app) else {
        return;
    };
    const BODY: usize = 300_000;
    let mut client = Client::connect(server.local_addr());
    let mut writer = client.stream.try_clone().expect("clone the stream");
    let upload = std::thread::spawn(move || {
        use std::io::Write;
        let head = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n");
        let _ = writer.write_all(head.as_bytes());
        // Keep sending the body in pieces while the 413 is on its way.
        for _ in 0..BODY / 10_000 {
            if writer.write_all(&[b'b'; 10_000]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let r = client.read_response();
    assert_eq!(r.status, 413, "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(3));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    upload.join().expect("the upload thread panicked");
}
