//! One test per accepted behaviour: what a valid request decodes to.

mod common;

use common::{request_of, run, whole};
use ringwall_h1::{BodyKind, Event, Limits, Version};

#[test]
fn simple_get_decodes_method_target_version_and_headers() {
    let r = request_of(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(r.method, "GET");
    assert_eq!(r.target, "/index.html");
    assert_eq!(r.path, "/index.html");
    assert_eq!(r.query, None);
    assert_eq!(r.version, Version::Http11);
    assert_eq!(
        r.headers,
        vec![
            ("Host".to_owned(), b"example.com".to_vec()),
            ("Accept".to_owned(), b"*/*".to_vec())
        ]
    );
    assert_eq!(r.body_kind, BodyKind::None);
    assert!(r.body.is_empty());
}

#[test]
fn request_without_body_reports_head_then_request_complete() {
    let out = whole(Limits::default(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        out.events,
        vec![Event::HeadComplete, Event::RequestComplete]
    );
}

#[test]
fn content_length_body_is_decoded() {
    let out = whole(
        Limits::default(),
        b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        out.events,
        vec![
            Event::HeadComplete,
            Event::BodyData(5),
            Event::RequestComplete
        ]
    );
    assert_eq!(out.requests[0].body, b"hello");
    assert_eq!(out.requests[0].body_kind, BodyKind::Length(5));
}

#[test]
fn content_length_zero_completes_without_body_data() {
    let out = whole(
        Limits::default(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        out.events,
        vec![Event::HeadComplete, Event::RequestComplete]
    );
    assert_eq!(out.requests[0].body_kind, BodyKind::Length(0));
}

#[test]
fn identical_repeated_content_length_is_accepted() {
    // RFC 9110 8.6: the same value repeated (or listed) is unambiguous.
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc",
    );
    assert_eq!(r.body_kind, BodyKind::Length(3));
    assert_eq!(r.body, b"abc");
}

#[test]
fn chunked_body_is_decoded() {
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.body_kind, BodyKind::Chunked);
    assert_eq!(r.body, b"hello world");
}

#[test]
fn chunked_coding_name_is_case_insensitive() {
    // RFC 9112 7: transfer-coding names are case-insensitive.
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    );
    assert_eq!(r.body, b"x");
}

#[test]
fn chunk_extensions_are_accepted_and_ignored() {
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value;flag\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last\r\n\r\n",
    );
    assert_eq!(r.body, b"helloabc");
}

#[test]
fn chunk_size_accepts_upper_and_lower_hex_and_leading_zeros() {
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n",
    );
    assert_eq!(r.body, b"0123456789abcdefghijk");
}

#[test]
fn trailers_are_accepted_and_discarded() {
    let out = whole(
        Limits::default(),
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: 42\r\n\r\n\
          GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(out.error, None);
    assert_eq!(out.requests.len(), 2);
    assert_eq!(out.requests[0].body, b"abc");
    assert_eq!(out.requests[0].headers.len(), 2, "trailers are not headers");
    assert_eq!(out.requests[1].path, "/next");
}

#[test]
fn pipelined_requests_in_one_feed_are_decoded_in_order() {
    let out = whole(
        Limits::default(),
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\
          POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\n\
          HEAD /4 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(out.error, None);
    let paths: Vec<&str> = out.requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/1", "/2", "/3", "/4"]);
    assert_eq!(out.requests[1].body, b"hi");
    assert_eq!(out.requests[2].body, b"yo");
    assert!(out.requests[0].body.is_empty() && out.requests[3].body.is_empty());
}

#[test]
fn leading_empty_lines_before_the_request_line_are_ignored() {
    // RFC 9112 2.2: a server SHOULD ignore at least one empty line before
    // the request line (some clients send CRLF after a POST body).
    let r = request_of(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.method, "GET");
    let r = request_of(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.method, "GET");
}

#[test]
fn bare_lf_line_endings_in_the_head_are_accepted() {
    // RFC 9112 2.2: a recipient MAY recognize a single LF as a line
    // terminator in the start line and fields.
    let r = request_of(b"GET / HTTP/1.1\nHost: a\nX: y\n\n");
    assert_eq!(r.headers.len(), 2);
}

#[test]
fn http10_without_host_is_accepted_and_closes() {
    let r = request_of(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.version, Version::Http10);
    assert!(!r.keep_alive);
}

#[test]
fn http10_with_keep_alive_persists() {
    let r = request_of(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(r.keep_alive);
}

#[test]
fn http10_content_length_body_is_decoded() {
    let r = request_of(b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(r.body, b"ok");
}

#[test]
fn http11_keeps_alive_by_default() {
    assert!(request_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
}

#[test]
fn connection_close_ends_keep_alive() {
    assert!(!request_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
}

#[test]
fn connection_is_a_case_insensitive_token_list() {
    let r = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, CLOSE\r\n\r\n");
    assert!(!r.keep_alive);
    let r = request_of(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: close\r\n\r\n",
    );
    assert!(!r.keep_alive);
    // "closed" is not "close".
    let r = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n");
    assert!(r.keep_alive);
}

#[test]
fn expect_100_continue_is_reported() {
    let r = request_of(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
    );
    assert!(r.expect_continue);
    assert!(!request_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect_continue);
}

#[test]
fn expect_100_continue_in_http10_is_ignored() {
    // RFC 9110 10.1.1: MUST ignore the expectation in an HTTP/1.0 request.
    let r = request_of(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
    assert!(!r.expect_continue);
}

#[test]
fn head_request_is_marked() {
    assert!(request_of(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").is_head);
    assert!(!request_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_head);
    // Methods are case-sensitive (RFC 9110 9.1): "head" is another method.
    assert!(!request_of(b"head / HTTP/1.1\r\nHost: a\r\n\r\n").is_head);
}

#[test]
fn query_is_split_from_the_path() {
    let r = request_of(b"GET /search?q=rust&x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.path, "/search");
    assert_eq!(r.query.as_deref(), Some("q=rust&x=1"));
    let r = request_of(b"GET /empty? HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.query.as_deref(), Some(""));
}

#[test]
fn absolute_form_target_path_is_the_path_part() {
    let r =
        request_of(b"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(r.target, "http://example.com:8080/a/b?c=d");
    assert_eq!(r.path, "/a/b");
    assert_eq!(r.query.as_deref(), Some("c=d"));
}

#[test]
fn absolute_form_without_path_has_root_path() {
    // RFC 9110 4.2.3: an empty path is equivalent to "/".
    let r = request_of(b"GET https://example.com?x HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(r.path, "/");
    assert_eq!(r.query.as_deref(), Some("x"));
}

#[test]
fn asterisk_form_is_accepted_for_options() {
    let r = request_of(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.path, "*");
}

#[test]
fn authority_form_is_accepted_for_connect() {
    let r = request_of(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(r.path, "example.com:443");
}

#[test]
fn obs_text_in_header_values_is_accepted() {
    // RFC 9110 5.5: field-vchar includes obs-text (0x80-0xFF).
    let r = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n");
    assert_eq!(r.headers[1].1, b"caf\xc3\xa9 \xff");
}

#[test]
fn header_values_have_surrounding_whitespace_trimmed() {
    let r = request_of(b"GET / HTTP/1.1\r\nHost: a\r\nX:  \t padded value \t \r\n\r\n");
    assert_eq!(r.headers[1].1, b"padded value");
}

#[test]
fn empty_host_is_accepted() {
    // RFC 9110 7.2: a client sends an empty Host when the target URI has
    // no authority.
    assert_eq!(
        request_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").headers[0].1,
        b""
    );
}

#[test]
fn ipv6_literal_host_with_port_is_accepted() {
    request_of(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
}

#[test]
fn header_lookup_is_case_insensitive_and_returns_the_first() {
    let mut d = ringwall_h1::Decoder::new(Limits::default());
    d.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Dup: one\r\nx-dup: two\r\n\r\n");
    assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
    let head = d.head().unwrap();
    assert_eq!(head.header("X-DUP"), Some(&b"one"[..]));
    assert_eq!(head.header("host"), Some(&b"a"[..]));
    assert_eq!(head.header("missing"), None);
}

#[test]
fn body_arriving_in_pieces_is_reported_piece_by_piece() {
    let out = run(
        Limits::default(),
        [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab"[..],
            b"cd",
            b"ef",
        ],
    );
    assert_eq!(
        out.events,
        vec![
            Event::HeadComplete,
            Event::BodyData(2),
            Event::BodyData(2),
            Event::BodyData(2),
            Event::RequestComplete
        ]
    );
    assert_eq!(out.requests[0].body, b"abcdef");
}

#[test]
fn every_method_reads_back_as_sent_known_or_not() {
    // Known methods are handed out from a table; the rest from the bytes.
    for method in [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PROPFIND",
        "get", "GETX",
    ] {
        let target = if method == "CONNECT" { "a:1" } else { "/" };
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(request_of(raw.as_bytes()).method, method);
    }
}

#[test]
fn heads_with_many_fields_decode_whole_and_in_pieces_alike() {
    // Around the number of header slots the whole-head parse keeps on the
    // stack (32), and up to the default limit (100): every field in order.
    for n in [1, 31, 32, 33, 64, 100] {
        let mut stream = common::head_with_fields(n);
        stream.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: b\r\n\r\n");
        let out = whole(Limits::default(), &stream);
        assert_eq!(out.error, None, "{n} fields");
        assert_eq!(out.requests.len(), 2, "{n} fields");
        let fields = &out.requests[0].headers;
        assert_eq!(fields.len(), n);
        assert_eq!(fields[0], ("Host".to_owned(), b"a".to_vec()));
        for (i, (name, value)) in fields.iter().enumerate().skip(1) {
            assert_eq!(name, &format!("X-Field-{i}"));
            assert_eq!(value, format!("value {i}").as_bytes());
        }
        assert_eq!(out.requests[1].path, "/next");
        common::assert_same_outcome(
            &out,
            &common::bytewise(Limits::default(), &stream),
            "bytewise",
        );
    }
}
