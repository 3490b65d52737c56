//! One test per rejection rule: the request is refused with the rule's own
//! error and status. Each input is otherwise valid, so removing the rule
//! turns the test's request into an accepted one (or a different error) and
//! the test fails.

mod common;

use common::{bytewise, run, whole};
use ringwall_h1::{DecodeError, Limits};

/// `name: input => Variant, status;` — the input, fed whole with default
/// limits, is rejected with that variant and status.
macro_rules! reject {
    ($( $(#[doc = $doc:literal])* $name:ident: $input:expr => $variant:ident, $status:literal; )*) => {$(
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            let input: Vec<u8> = $input.to_vec();
            let err = whole(Limits::default(), &input).error;
            assert_eq!(
                err,
                Some(DecodeError::$variant),
                "input: {:?}",
                String::from_utf8_lossy(&input)
            );
            assert_eq!(err.unwrap().status(), $status);
        }
    )*};
}

/// Like `reject!`, with limits given per test.
macro_rules! reject_with_limits {
    ($( $(#[doc = $doc:literal])* $name:ident: $limits:expr, $input:expr => $variant:ident, $status:literal; )*) => {$(
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            let input: Vec<u8> = $input.to_vec();
            let err = whole($limits, &input).error;
            assert_eq!(err, Some(DecodeError::$variant));
            assert_eq!(err.unwrap().status(), $status);
        }
    )*};
}

fn post_chunked(body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}").into_bytes()
}

fn small_limits() -> Limits {
    Limits::new()
        .with_max_head_bytes(64)
        .with_max_headers(4)
        .with_max_method_bytes(8)
        .with_max_target_bytes(16)
        .with_max_body_bytes(10)
}

// ---- Content-Length and Transfer-Encoding (RFC 9112 6) ----
reject! {
    content_length_with_transfer_encoding_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        => ContentLengthWithTransferEncoding, 400;
    transfer_encoding_before_content_length_is_400_too:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"
        => ContentLengthWithTransferEncoding, 400;
    repeated_content_length_with_different_values_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        => ConflictingContentLength, 400;
    content_length_list_with_different_values_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd"
        => ConflictingContentLength, 400;
    content_length_with_non_digit_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3a\r\n\r\nabc"
        => InvalidContentLength, 400;
    content_length_with_plus_sign_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"
        => InvalidContentLength, 400;
    content_length_with_minus_sign_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n"
        => InvalidContentLength, 400;
    empty_content_length_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"
        => InvalidContentLength, 400;
    content_length_with_empty_list_element_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3,\r\n\r\nabc"
        => InvalidContentLength, 400;
    content_length_with_inner_space_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"
        => InvalidContentLength, 400;
    content_length_overflowing_u64_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"
        => InvalidContentLength, 400;
    transfer_encoding_gzip_alone_is_400_as_chunked_is_not_final:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"
        => ChunkedNotFinal, 400;
    transfer_encoding_chunked_then_gzip_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
        => ChunkedNotFinal, 400;
    transfer_encoding_chunked_over_two_lines_then_gzip_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        => ChunkedNotFinal, 400;
    transfer_encoding_chunked_twice_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"
        => ChunkedNotFinal, 400;
    transfer_encoding_chunked_with_parameter_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"
        => ChunkedNotFinal, 400;
    empty_transfer_encoding_is_400:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n"
        => ChunkedNotFinal, 400;
    unknown_coding_before_chunked_is_501:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
        => UnsupportedTransferCoding, 501;
    unknown_coding_on_an_earlier_line_is_501:
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-custom\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        => UnsupportedTransferCoding, 501;
    transfer_encoding_in_http10_is_400:
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        => TransferEncodingInHttp10, 400;
}

// ---- chunked body (RFC 9112 7.1) ----
reject! {
    chunk_size_with_non_hex_digit_is_400: post_chunked("g\r\n") => InvalidChunkSize, 400;
    chunk_size_with_hex_then_garbage_is_400: post_chunked("5x\r\nhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    empty_chunk_size_is_400: post_chunked("\r\nhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    chunk_size_with_sign_is_400: post_chunked("+5\r\nhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    chunk_size_line_ending_in_bare_lf_is_400: post_chunked("5\nhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    chunk_size_line_with_cr_not_followed_by_lf_is_400: post_chunked("5\rxhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    chunk_size_followed_by_whitespace_without_extension_is_400: post_chunked("5 \r\nhello\r\n0\r\n\r\n") => InvalidChunkSize, 400;
    chunk_data_without_trailing_crlf_is_400: post_chunked("5\r\nhelloX\r\n0\r\n\r\n") => ChunkDataNotTerminated, 400;
    chunk_data_followed_by_bare_lf_is_400: post_chunked("5\r\nhello\n0\r\n\r\n") => ChunkDataNotTerminated, 400;
    chunk_extension_with_control_byte_is_400: post_chunked("5;a=\x01\r\nhello\r\n0\r\n\r\n") => InvalidChunkExtension, 400;
    chunk_extension_with_bare_lf_is_400: post_chunked("5;a\nhello\r\n0\r\n\r\n") => InvalidChunkExtension, 400;
    chunk_size_over_max_body_is_413_before_its_data: post_chunked("100001\r\n") => BodyTooLarge, 413;
    sixteen_digit_chunk_size_over_max_body_is_413: post_chunked("ffffffffffffffff\r\n") => BodyTooLarge, 413;
    /// RFC 9112 7.1: a size too long for a u64 is malformed, even though its
    /// first digits already pass the limit.
    chunk_size_of_two_to_the_64_is_400_not_413: post_chunked("10000000000000000\r\n") => ChunkSizeOverflow, 400;
    nineteen_digit_chunk_size_is_400_not_413: post_chunked("ffffffffffffffffff1\r\n") => ChunkSizeOverflow, 400;
    chunk_size_over_max_body_with_extension_is_413: post_chunked("100001;a=b\r\n") => BodyTooLarge, 413;
    chunks_adding_up_to_more_than_max_body_is_413:
        {
            let chunk = format!("80000\r\n{}\r\n", "a".repeat(0x80000));
            post_chunked(&format!("{chunk}{chunk}1\r\n"))
        } => BodyTooLarge, 413;
    trailer_without_colon_is_400: post_chunked("0\r\nNot a field\r\n\r\n") => InvalidTrailer, 400;
    trailer_with_obs_fold_is_400: post_chunked("0\r\nA: b\r\n folded\r\n\r\n") => InvalidTrailer, 400;
    trailer_with_control_byte_is_400: post_chunked("0\r\nA: b\x00c\r\n\r\n") => InvalidTrailer, 400;
    trailer_section_ending_in_bare_lf_is_400: post_chunked("0\r\nA: b\r\n\n") => InvalidTrailer, 400;
}

#[test]
fn chunk_size_with_seventeen_hex_digits_overflows_u64_is_400() {
    // With max_body at u64::MAX only the digit count can stop it.
    let limits = Limits::default().with_max_body_bytes(u64::MAX);
    let err = whole(limits, &post_chunked("10000000000000000\r\n")).error;
    assert_eq!(err, Some(DecodeError::ChunkSizeOverflow));
    assert_eq!(err.unwrap().status(), 400);
    // Sixteen digits still parse (and wait for data).
    assert_eq!(
        whole(limits, &post_chunked("ffffffffffffffff\r\n")).error,
        None
    );
}

#[test]
fn chunk_extensions_longer_than_max_head_bytes_are_400() {
    let limits = Limits::default();
    let ext = "x".repeat(limits.max_head_bytes);
    // One byte over the budget: ";" plus the extension.
    let err = whole(limits, &post_chunked(&format!("1;{ext}\r\na\r\n0\r\n\r\n"))).error;
    assert_eq!(err, Some(DecodeError::ChunkExtensionsTooLong));
    assert_eq!(err.unwrap().status(), 400);
    let fits = "x".repeat(limits.max_head_bytes - 1);
    assert_eq!(
        whole(
            limits,
            &post_chunked(&format!("1;{fits}\r\na\r\n0\r\n\r\n"))
        )
        .error,
        None
    );
}

#[test]
fn chunk_extensions_are_bounded_across_chunks() {
    // Many small extensions add up: the budget is per body, not per line
    // (CVE-2024-22019).
    let limits = small_limits();
    let chunk = "1;abcdefghi\r\na\r\n"; // 10 extension bytes per chunk
    let body = chunk.repeat(7);
    let err = whole(limits, &post_chunked(&body)).error;
    assert_eq!(err, Some(DecodeError::ChunkExtensionsTooLong));
}

#[test]
fn trailers_longer_than_max_head_bytes_are_431() {
    let limits = Limits::default();
    let value = "v".repeat(limits.max_head_bytes);
    let err = whole(limits, &post_chunked(&format!("0\r\nT: {value}\r\n\r\n"))).error;
    assert_eq!(err, Some(DecodeError::TrailersTooLarge));
    assert_eq!(err.unwrap().status(), 431);
}

// ---- header syntax (RFC 9112 5, RFC 9110 5.5) ----
reject! {
    obs_fold_continuation_line_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: part one\r\n part two\r\n\r\n" => ObsFold, 400;
    obs_fold_with_tab_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: part one\r\n\tpart two\r\n\r\n" => ObsFold, 400;
    space_between_field_name_and_colon_is_400:
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n" => WhitespaceBeforeColon, 400;
    tab_between_field_name_and_colon_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 0\r\n\r\n" => WhitespaceBeforeColon, 400;
    bare_cr_in_header_value_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" => BareCarriageReturn, 400;
    header_line_ended_by_bare_cr_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rY: b\r\n\r\n" => BareCarriageReturn, 400;
    bare_cr_in_request_line_is_400:
        b"GET / HTTP/1.1\rHost: a\r\n\r\n" => BareCarriageReturn, 400;
    bare_cr_before_request_line_is_400:
        b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n" => BareCarriageReturn, 400;
    nul_in_header_value_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n" => InvalidHeaderValue, 400;
    control_byte_in_header_value_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n" => InvalidHeaderValue, 400;
    del_in_header_value_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n" => InvalidHeaderValue, 400;
    non_token_byte_in_header_name_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n" => InvalidHeaderName, 400;
    nul_in_header_name_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x00y: b\r\n\r\n" => InvalidHeaderName, 400;
    header_line_without_colon_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n" => InvalidHeaderName, 400;
    empty_header_name_is_400:
        b"GET / HTTP/1.1\r\nHost: a\r\n: value\r\n\r\n" => InvalidHeaderName, 400;
}

// ---- Host (RFC 9112 3.2) ----
reject! {
    http11_without_host_is_400: b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n" => MissingHost, 400;
    http11_with_two_hosts_is_400: b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => DuplicateHost, 400;
    http11_with_two_identical_hosts_is_400: b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n" => DuplicateHost, 400;
    http10_with_two_hosts_is_400: b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n" => DuplicateHost, 400;
    host_with_inner_space_is_400: b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => InvalidHost, 400;
    host_with_path_or_userinfo_is_400: b"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n" => InvalidHost, 400;
}

// ---- size limits ----
reject_with_limits! {
    complete_head_over_max_head_bytes_is_431:
        small_limits(), format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "a".repeat(40)).as_bytes()
        => HeadTooLarge, 431;
    more_header_lines_than_max_headers_is_431:
        small_limits(), b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n"
        => TooManyHeaders, 431;
    target_over_max_target_bytes_is_414:
        small_limits(), b"GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n" => TargetTooLong, 414;
    content_length_over_max_body_is_413_at_head_time:
        small_limits(), b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n" => BodyTooLarge, 413;
    empty_lines_before_the_request_line_count_toward_max_head_bytes:
        small_limits(), format!("{}GET / HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n".repeat(40)).as_bytes()
        => HeadTooLarge, 431;
}

#[test]
fn head_of_exactly_max_head_bytes_is_accepted() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123\r\n\r\n";
    let limits = small_limits().with_max_head_bytes(head.len());
    assert_eq!(whole(limits, head).error, None);
    let limits = limits.with_max_head_bytes(head.len() - 1);
    assert_eq!(whole(limits, head).error, Some(DecodeError::HeadTooLarge));
}

#[test]
fn partial_head_over_max_head_bytes_is_431_before_it_ends() {
    // No empty line ever comes: the decoder must not wait for one.
    let limits = small_limits();
    let mut stream = b"GET / HTTP/1.1\r\nX: ".to_vec();
    stream.resize(limits.max_head_bytes - 1, b'a');
    assert_eq!(whole(limits, &stream).error, None);
    stream.push(b'a');
    assert_eq!(
        whole(limits, &stream).error,
        Some(DecodeError::HeadTooLarge)
    );
}

#[test]
fn partial_request_line_with_over_long_target_is_414_before_the_line_ends() {
    let limits = small_limits();
    let mut stream = b"GET /".to_vec();
    stream.resize(4 + limits.max_target_bytes, b'a');
    assert_eq!(whole(limits, &stream).error, None);
    stream.push(b'a');
    assert_eq!(
        whole(limits, &stream).error,
        Some(DecodeError::TargetTooLong)
    );
}

#[test]
fn method_of_exactly_max_method_bytes_is_accepted() {
    // PROPFIND is 8 bytes, the small limit; one byte less of limit and the
    // same request is refused.
    let head = b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n";
    let limits = small_limits();
    assert_eq!(limits.max_method_bytes, 8);
    let out = whole(limits, head);
    assert_eq!(out.error, None);
    assert_eq!(out.requests[0].method, "PROPFIND");
    let limits = limits.with_max_method_bytes(7);
    assert_eq!(whole(limits, head).error, Some(DecodeError::MethodTooLong));
}

#[test]
fn partial_method_over_max_method_bytes_is_501_before_the_line_ends() {
    // No SP ever comes: the decoder must not hold the method until
    // max_head_bytes.
    let limits = small_limits();
    let mut stream = b"\r\n".to_vec();
    stream.resize(2 + limits.max_method_bytes, b'M');
    assert_eq!(whole(limits, &stream).error, None);
    stream.push(b'M');
    assert_eq!(
        whole(limits, &stream).error,
        Some(DecodeError::MethodTooLong)
    );
    assert_eq!(
        bytewise(limits, &stream).error,
        Some(DecodeError::MethodTooLong)
    );
}

#[test]
fn partial_version_over_eight_bytes_is_400_before_the_line_ends() {
    // HTTP-version is fixed at eight bytes (RFC 9112 2.3), so it needs no
    // limit of its own: the ninth byte, if not CR or LF, is refused, well
    // before max_head_bytes.
    let limits = Limits::default();
    assert_eq!(whole(limits, b"GET / HTTP/1.1").error, None);
    assert_eq!(
        whole(limits, b"GET / HTTP/1.11").error,
        Some(DecodeError::InvalidVersion)
    );
    let mut stream = b"GET / HTTP/1.1".to_vec();
    stream.resize(6 + 10_000, b'1');
    assert!(stream.len() < limits.max_head_bytes);
    let err = whole(limits, &stream).error;
    assert_eq!(err, Some(DecodeError::InvalidVersion));
    assert_eq!(err.unwrap().status(), 400);
}

#[test]
fn partial_garbage_in_place_of_the_version_is_400_at_its_first_byte() {
    let limits = Limits::default();
    assert_eq!(whole(limits, b"GET / ").error, None);
    assert_eq!(
        whole(limits, b"GET / x").error,
        Some(DecodeError::InvalidVersion)
    );
    let mut stream = b"GET / ".to_vec();
    stream.resize(6 + 10_000, b'x');
    assert_eq!(
        whole(limits, &stream).error,
        Some(DecodeError::InvalidVersion)
    );
}

#[test]
fn max_headers_header_lines_are_accepted() {
    let limits = small_limits();
    let out = whole(
        limits,
        b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n",
    );
    assert_eq!(out.error, None);
    assert_eq!(out.requests[0].headers.len(), 4);
}

#[test]
fn content_length_of_exactly_max_body_is_accepted() {
    let out = whole(
        small_limits(),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
    );
    assert_eq!(out.error, None);
    assert_eq!(out.requests[0].body, b"0123456789");
}

#[test]
fn too_large_content_length_fails_before_any_body_byte_arrives() {
    // The head alone is enough: the answer goes out before the peer has
    // uploaded anything.
    let out = run(
        small_limits(),
        [&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"[..]],
    );
    assert_eq!(out.error, Some(DecodeError::BodyTooLarge));
    assert!(out.events.is_empty(), "{:?}", out.events);
}

// ---- request line (RFC 9112 3, 2.3) ----
reject! {
    http_2_0_is_505: b"GET / HTTP/2.0\r\nHost: a\r\n\r\n" => UnsupportedVersion, 505;
    http_1_2_is_505: b"GET / HTTP/1.2\r\nHost: a\r\n\r\n" => UnsupportedVersion, 505;
    http_0_9_spelled_as_version_is_505: b"GET / HTTP/0.9\r\n\r\n" => UnsupportedVersion, 505;
    http2_preface_is_505: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" => UnsupportedVersion, 505;
    lowercase_http_name_is_400: b"GET / http/1.1\r\nHost: a\r\n\r\n" => InvalidVersion, 400;
    garbage_version_is_400: b"GET / FOO/1.1\r\nHost: a\r\n\r\n" => InvalidVersion, 400;
    version_with_two_digit_minor_is_400: b"GET / HTTP/1.10\r\nHost: a\r\n\r\n" => InvalidVersion, 400;
    version_without_minor_is_400: b"GET / HTTP/2\r\nHost: a\r\n\r\n" => InvalidVersion, 400;
    trailing_space_after_version_is_400: b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n" => InvalidVersion, 400;
    request_line_without_version_is_400: b"GET /\r\nHost: a\r\n\r\n" => InvalidRequestLine, 400;
    method_with_non_token_byte_is_400: b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidMethod, 400;
    space_before_method_is_400: b" GET / HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidMethod, 400;
    tls_client_hello_is_400: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" => InvalidMethod, 400;
    two_spaces_after_method_is_400: b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    control_byte_in_target_is_400: b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    non_utf8_target_is_400: b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    target_in_no_known_form_is_400: b"GET index.html HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    asterisk_form_for_get_is_400: b"GET * HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    connect_with_origin_form_is_400: b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    absolute_form_without_double_slash_is_400: b"GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n" => InvalidTarget, 400;
    /// RFC 9110 9.1: longer than any method implemented, SHOULD be 501.
    method_longer_than_max_method_bytes_is_501:
        format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(Limits::default().max_method_bytes + 1)).as_bytes()
        => MethodTooLong, 501;
    ten_thousand_byte_method_is_501_not_served:
        format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(10_000)).as_bytes()
        => MethodTooLong, 501;
    method_over_the_limit_wins_over_a_target_over_the_limit:
        format!("{} /{} HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(33), "t".repeat(8 * 1024)).as_bytes()
        => MethodTooLong, 501;
}

#[test]
fn version_shaped_505_waits_for_the_line_end() {
    // "HTTP/2.0x" is garbage (400), so "HTTP/2.0" alone decides nothing yet.
    assert_eq!(whole(Limits::default(), b"GET / HTTP/2.0").error, None);
    assert_eq!(
        whole(Limits::default(), b"GET / HTTP/2.0x").error,
        Some(DecodeError::InvalidVersion)
    );
}

#[test]
fn every_status_is_an_error_status() {
    // The fuzz target relies on it: every rejection is a 4xx/5xx the
    // encoder can write.
    use DecodeError::*;
    for e in [
        InvalidRequestLine,
        InvalidMethod,
        MethodTooLong,
        InvalidTarget,
        TargetTooLong,
        InvalidVersion,
        UnsupportedVersion,
        HeadTooLarge,
        TooManyHeaders,
        InvalidHeaderName,
        WhitespaceBeforeColon,
        ObsFold,
        BareCarriageReturn,
        InvalidHeaderValue,
        MissingHost,
        DuplicateHost,
        InvalidHost,
        ContentLengthWithTransferEncoding,
        InvalidContentLength,
        ConflictingContentLength,
        TransferEncodingInHttp10,
        ChunkedNotFinal,
        UnsupportedTransferCoding,
        BodyTooLarge,
        InvalidChunkSize,
        ChunkSizeOverflow,
        InvalidChunkExtension,
        ChunkExtensionsTooLong,
        ChunkDataNotTerminated,
        InvalidTrailer,
        TrailersTooLarge,
    ] {
        assert!((400..=505).contains(&e.status()), "{e:?}");
        assert!(!e.reason().is_empty());
        assert!(!ringwall_h1::status_reason(e.status()).is_empty());
    }
}

#[test]
fn one_field_over_max_headers_is_431_whole_or_in_pieces_on_both_sides_of_32() {
    // 32 is the number of header slots the whole-head parse keeps on the
    // stack: a limit below it, at it and above it.
    for max in [8, 31, 32, 33, 40] {
        let limits = Limits::default().with_max_headers(max);
        for fields in [max, max + 1] {
            let stream = common::head_with_fields(fields);
            let out = common::whole(limits, &stream);
            let expected = (fields > max).then_some(DecodeError::TooManyHeaders);
            assert_eq!(out.error, expected, "{fields} fields, limit {max}");
            common::assert_same_outcome(&out, &common::bytewise(limits, &stream), "bytewise");
        }
    }
}
