//! What the encoder writes, per status, version and request method, and what
//! it refuses to write.

use ringwall_h1::{
    encode_chunk, encode_chunked_head, encode_continue, encode_error, encode_last_chunk,
    encode_response, encode_response_cached, encode_response_prepared, encode_stream_data,
    encode_stream_end, DecodeError, Decoder, EncodeContext, EncodeError, Event, HeadCache,
    HttpDate, Limits, PreparedHeaders, Version,
};

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn date() -> HttpDate {
    HttpDate::from_unix_secs(784_111_777)
}

fn ctx(
    date: &HttpDate,
    version: Version,
    keep_alive: bool,
    head_request: bool,
) -> EncodeContext<'_> {
    EncodeContext {
        date,
        version,
        keep_alive,
        head_request,
    }
}

fn response(status: u16, headers: &[(&str, &[u8])], body: &[u8], c: &EncodeContext<'_>) -> String {
    let mut out = Vec::new();
    encode_response(&mut out, status, headers, body, c).expect("valid response");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn ok_response_has_status_line_headers_date_length_and_body() {
    let d = date();
    let got = response(
        200,
        &[("Content-Type", b"text/plain")],
        b"hi",
        &ctx(&d, Version::Http11, true, false),
    );
    assert_eq!(
        got,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: {DATE}\r\nContent-Length: 2\r\n\r\nhi"
        )
    );
}

#[test]
fn empty_body_still_gets_content_length_zero() {
    let d = date();
    let got = response(200, &[], b"", &ctx(&d, Version::Http11, true, false));
    assert!(got.contains("\r\nContent-Length: 0\r\n"), "{got}");
}

#[test]
fn no_content_has_no_content_length() {
    // RFC 9110 8.6: MUST NOT send Content-Length in a 204.
    let d = date();
    let got = response(204, &[], b"", &ctx(&d, Version::Http11, true, false));
    assert_eq!(
        got,
        format!("HTTP/1.1 204 No Content\r\nDate: {DATE}\r\n\r\n")
    );
}

#[test]
fn not_modified_has_no_content_length() {
    let d = date();
    let got = response(
        304,
        &[("ETag", b"\"x\"")],
        b"",
        &ctx(&d, Version::Http11, true, false),
    );
    assert!(!got.contains("Content-Length"), "{got}");
    assert!(got.ends_with("\r\n\r\n"));
}

#[test]
fn informational_response_has_no_content_length_or_connection() {
    let d = date();
    let got = response(
        103,
        &[("Link", b"</s.css>; rel=preload")],
        b"",
        &ctx(&d, Version::Http11, false, false),
    );
    assert!(!got.contains("Content-Length"), "{got}");
    assert!(!got.contains("Connection"), "{got}");
}

#[test]
fn body_with_a_bodiless_status_is_refused() {
    let d = date();
    for status in [100, 204, 304] {
        let mut out = b"kept".to_vec();
        assert_eq!(
            encode_response(
                &mut out,
                status,
                &[],
                b"x",
                &ctx(&d, Version::Http11, true, false)
            ),
            Err(EncodeError::BodyNotAllowed(status))
        );
        assert_eq!(out, b"kept");
    }
}

#[test]
fn head_response_keeps_content_length_but_omits_the_body() {
    // RFC 9110 9.3.2: the same header fields as for GET, no content.
    let d = date();
    let got = response(200, &[], b"hello", &ctx(&d, Version::Http11, true, true));
    assert!(got.ends_with("Content-Length: 5\r\n\r\n"), "{got}");
}

#[test]
fn closing_response_says_connection_close() {
    let d = date();
    let got = response(200, &[], b"", &ctx(&d, Version::Http11, false, false));
    assert!(got.contains("\r\nConnection: close\r\n"), "{got}");
    let got = response(200, &[], b"", &ctx(&d, Version::Http10, false, false));
    assert!(got.contains("\r\nConnection: close\r\n"), "{got}");
}

#[test]
fn keep_alive_http10_response_says_connection_keep_alive() {
    // RFC 9112 C.2.2: an HTTP/1.0 client only persists when told.
    let d = date();
    let got = response(200, &[], b"", &ctx(&d, Version::Http10, true, false));
    assert!(got.contains("\r\nConnection: keep-alive\r\n"), "{got}");
}

#[test]
fn keep_alive_http11_response_has_no_connection_header() {
    let d = date();
    let got = response(200, &[], b"", &ctx(&d, Version::Http11, true, false));
    assert!(!got.contains("Connection"), "{got}");
}

#[test]
fn status_line_is_always_http11() {
    let d = date();
    let got = response(200, &[], b"", &ctx(&d, Version::Http10, false, false));
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
}

#[test]
fn unregistered_status_has_an_empty_reason_phrase() {
    let d = date();
    let got = response(299, &[], b"", &ctx(&d, Version::Http11, true, false));
    assert!(got.starts_with("HTTP/1.1 299 \r\n"), "{got}");
}

#[test]
fn reserved_headers_are_refused_and_leave_out_unchanged() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    for (name, canonical) in [
        ("Content-Length", "Content-Length"),
        ("transfer-encoding", "Transfer-Encoding"),
        ("CONNECTION", "Connection"),
        ("date", "Date"),
    ] {
        let mut out = b"previous response".to_vec();
        let err = encode_response(&mut out, 200, &[("X", b"1"), (name, b"5")], b"", &c);
        assert_eq!(
            err,
            Err(EncodeError::ReservedHeader {
                index: 1,
                name: canonical
            })
        );
        assert_eq!(out, b"previous response");
    }
}

#[test]
fn header_value_with_cr_lf_or_nul_is_refused_as_response_splitting() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    for value in [
        &b"a\r\nSet-Cookie: x"[..],
        b"a\nb",
        b"a\rb",
        b"a\0b",
        b"a\x7fb",
    ] {
        let mut out = b"kept".to_vec();
        assert_eq!(
            encode_response(&mut out, 200, &[("X-Echo", value)], b"", &c),
            Err(EncodeError::InvalidHeaderValue { index: 0 })
        );
        assert_eq!(out, b"kept");
    }
    // HTAB and obs-text are fine.
    response(200, &[("X", b"a\tb\xff")], b"", &c);
}

#[test]
fn header_name_that_is_not_a_token_is_refused() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    for name in ["", "Bad Name", "Bad:Name", "X\r\nY"] {
        let mut out = Vec::new();
        assert_eq!(
            encode_response(&mut out, 200, &[(name, b"v")], b"", &c),
            Err(EncodeError::InvalidHeaderName { index: 0 })
        );
        assert!(out.is_empty());
    }
}

#[test]
fn prepared_headers_write_the_same_bytes_as_the_list() {
    let d = date();
    let lists: [&[(&str, &[u8])]; 3] = [
        &[],
        &[("Content-Type", b"text/plain")],
        &[
            ("Server", b"ringwall"),
            ("Cache-Control", b"no-store"),
            ("X", b"a\tb\xff"),
        ],
    ];
    for list in lists {
        let prepared = PreparedHeaders::new(list).expect("valid fields");
        for (status, body) in [(200, &b"hi"[..]), (204, b""), (404, b"nope"), (299, b"")] {
            for version in [Version::Http10, Version::Http11] {
                for (keep_alive, head_request) in [(true, false), (false, false), (true, true)] {
                    let c = ctx(&d, version, keep_alive, head_request);
                    let mut from_prepared = b"before ".to_vec();
                    encode_response_prepared(&mut from_prepared, status, &prepared, body, &c)
                        .expect("valid response");
                    let from_list = format!("before {}", response(status, list, body, &c));
                    assert_eq!(
                        String::from_utf8_lossy(&from_prepared),
                        from_list,
                        "{list:?} {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_cached_head_is_the_head_the_encoder_would_write() {
    // A run of responses where each part of the key changes alone, and
    // back: the cached encoder must write what the uncached one writes.
    let text = PreparedHeaders::new(&[("Content-Type", b"text/plain")]).unwrap();
    let json = PreparedHeaders::new(&[("Content-Type", b"application/json")]).unwrap();
    // Same fields, freshly prepared: a different set as far as the cache
    // goes, the same bytes.
    let text_again = PreparedHeaders::new(&[("Content-Type", b"text/plain")]).unwrap();
    let (d1, d2) = (date(), HttpDate::from_unix_secs(784_111_778));
    let mut cache = HeadCache::default();
    // Fields, status, body, Date, version, keep-alive, HEAD request.
    type Step<'a> = (
        &'a PreparedHeaders,
        u16,
        &'a [u8],
        &'a HttpDate,
        Version,
        bool,
        bool,
    );
    let steps: [Step<'_>; 12] = [
        (&text, 200, b"Hello", &d1, Version::Http11, true, false),
        (&text, 200, b"World", &d1, Version::Http11, true, false),
        (&text, 200, b"Hello!", &d1, Version::Http11, true, false),
        (&text, 404, b"Hello!", &d1, Version::Http11, true, false),
        (&json, 404, b"Hello!", &d1, Version::Http11, true, false),
        (&text, 404, b"Hello!", &d1, Version::Http11, true, false),
        (&text, 404, b"Hello!", &d2, Version::Http11, true, false),
        (&text, 404, b"Hello!", &d2, Version::Http10, true, false),
        (&text, 404, b"Hello!", &d2, Version::Http10, false, false),
        (&text, 404, b"Hello!", &d2, Version::Http10, false, true),
        (
            &text_again,
            404,
            b"Hello!",
            &d2,
            Version::Http10,
            false,
            true,
        ),
        (&text, 204, b"", &d2, Version::Http11, true, false),
    ];
    for (i, (fields, status, body, date, version, keep_alive, head)) in
        steps.into_iter().enumerate()
    {
        let c = ctx(date, version, keep_alive, head);
        let mut cached = b"before ".to_vec();
        encode_response_cached(&mut cached, status, fields, body, &c, &mut cache).unwrap();
        let mut fresh = b"before ".to_vec();
        encode_response_prepared(&mut fresh, status, fields, body, &c).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&cached),
            String::from_utf8_lossy(&fresh),
            "step {i}"
        );
    }
}

#[test]
fn a_refused_response_leaves_out_alone_and_the_cache_usable() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    let text = PreparedHeaders::new(&[("Content-Type", b"text/plain")]).unwrap();
    let mut cache = HeadCache::default();
    let mut out = Vec::new();
    encode_response_cached(&mut out, 200, &text, b"ok", &c, &mut cache).unwrap();
    let first = out.clone();
    for (status, body) in [(600, &b""[..]), (304, b"body")] {
        let err = encode_response_cached(&mut out, status, &text, body, &c, &mut cache);
        assert!(err.is_err(), "{status}");
        assert_eq!(out, first, "{status}");
    }
    out.clear();
    encode_response_cached(&mut out, 200, &text, b"ok", &c, &mut cache).unwrap();
    assert_eq!(out, first);
}

#[test]
fn prepared_headers_refuse_what_the_list_refuses() {
    for (list, expected) in [
        (
            &[("X", &b"1"[..]), ("content-length", b"5")][..],
            EncodeError::ReservedHeader {
                index: 1,
                name: "Content-Length",
            },
        ),
        (
            &[("Bad Name", b"v")],
            EncodeError::InvalidHeaderName { index: 0 },
        ),
        (
            &[("X-Echo", b"a\r\nSet-Cookie: x")],
            EncodeError::InvalidHeaderValue { index: 0 },
        ),
    ] {
        assert_eq!(PreparedHeaders::new(list), Err(expected));
    }
}

#[test]
fn prepared_headers_keep_the_status_checks() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    let prepared = PreparedHeaders::new(&[]).expect("no fields");
    let mut out = b"kept".to_vec();
    assert_eq!(
        encode_response_prepared(&mut out, 600, &prepared, b"", &c),
        Err(EncodeError::InvalidStatus(600))
    );
    assert_eq!(
        encode_response_prepared(&mut out, 304, &prepared, b"body", &c),
        Err(EncodeError::BodyNotAllowed(304))
    );
    assert_eq!(out, b"kept");
}

#[test]
fn status_outside_100_to_599_is_refused() {
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    for status in [0, 99, 600, 1000] {
        let mut out = Vec::new();
        assert_eq!(
            encode_response(&mut out, status, &[], b"", &c),
            Err(EncodeError::InvalidStatus(status))
        );
        assert!(out.is_empty());
    }
}

#[test]
fn responses_append_after_what_out_already_holds() {
    // Pipelined responses go out in request order: append, never prepend.
    let d = date();
    let c = ctx(&d, Version::Http11, true, false);
    let mut out = Vec::new();
    encode_response(&mut out, 200, &[], b"first", &c).unwrap();
    encode_response(&mut out, 404, &[], b"second", &c).unwrap();
    let s = String::from_utf8(out).unwrap();
    let first = s.find("first").unwrap();
    let second = s.find("HTTP/1.1 404").unwrap();
    assert!(first < second);
}

#[test]
fn chunked_head_for_http11_announces_transfer_encoding() {
    let d = date();
    let mut out = Vec::new();
    encode_chunked_head(
        &mut out,
        200,
        &[("Content-Type", b"text/plain")],
        &ctx(&d, Version::Http11, true, false),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: {DATE}\r\nTransfer-Encoding: chunked\r\n\r\n")
    );
}

#[test]
fn chunked_head_for_http10_is_close_delimited() {
    // RFC 9112 6.1: an HTTP/1.0 client cannot read chunked; the body ends
    // when the connection closes, whatever keep_alive said.
    let d = date();
    let c = ctx(&d, Version::Http10, true, false);
    let mut out = Vec::new();
    encode_chunked_head(&mut out, 200, &[], &c).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(!s.contains("Transfer-Encoding"), "{s}");
    assert!(s.contains("Connection: close\r\n"), "{s}");
    assert!(!c.stream_keeps_alive());
    assert!(ctx(&d, Version::Http11, true, false).stream_keeps_alive());
}

#[test]
fn stream_helpers_frame_per_version_and_skip_head_requests() {
    let d = date();
    let mut out = Vec::new();
    let c11 = ctx(&d, Version::Http11, true, false);
    encode_stream_data(&mut out, &c11, b"abc");
    encode_stream_end(&mut out, &c11);
    assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
    out.clear();
    let c10 = ctx(&d, Version::Http10, true, false);
    encode_stream_data(&mut out, &c10, b"abc");
    encode_stream_end(&mut out, &c10);
    assert_eq!(out, b"abc");
    out.clear();
    let head = ctx(&d, Version::Http11, true, true);
    encode_stream_data(&mut out, &head, b"abc");
    encode_stream_end(&mut out, &head);
    assert!(out.is_empty());
}

#[test]
fn chunked_head_for_a_bodiless_status_is_refused() {
    let d = date();
    let mut out = Vec::new();
    assert_eq!(
        encode_chunked_head(&mut out, 204, &[], &ctx(&d, Version::Http11, true, false)),
        Err(EncodeError::BodyNotAllowed(204))
    );
    assert!(out.is_empty());
}

#[test]
fn chunks_are_hex_sized_and_empty_data_writes_nothing() {
    let mut out = Vec::new();
    encode_chunk(&mut out, b"");
    assert!(out.is_empty(), "an empty chunk would end the body");
    encode_chunk(&mut out, &[b'x'; 26]);
    encode_last_chunk(&mut out);
    let mut expected = b"1a\r\n".to_vec();
    expected.extend_from_slice(&[b'x'; 26]);
    expected.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(out, expected);
}

#[test]
fn continue_is_an_interim_status_line_and_empty_line() {
    let mut out = Vec::new();
    encode_continue(&mut out);
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn error_response_has_status_text_body_and_connection_close() {
    let d = date();
    let mut out = Vec::new();
    encode_error(&mut out, &DecodeError::HeadTooLarge, &d);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nDate: {DATE}\r\n\
             Content-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\n\r\n\
             request head too large\n"
        )
    );
}

#[test]
fn encoded_chunked_body_decodes_back_to_the_same_bytes() {
    // Round trip through our own decoder: the framing we write is the
    // framing we accept.
    let mut wire = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for piece in data.chunks(77) {
        encode_chunk(&mut wire, piece);
    }
    encode_last_chunk(&mut wire);
    let mut d = Decoder::new(Limits::default());
    d.feed(&wire);
    loop {
        match d.poll().unwrap() {
            Some(Event::RequestComplete) => break,
            Some(_) => {}
            None => panic!("incomplete"),
        }
    }
    assert_eq!(d.body(), &data[..]);
}
