//! HTTP/1.1 behaviour on the wire: keep-alive, pipelining, chunked bodies,
//! 100-continue, HEAD, HTTP/1.0 and `Connection: close` (ARCHITECTURE.md, HTTP/1.1 rules).

use std::time::Duration;

use ringwall::{Request, Response as Reply};
use ringwall_tests::{app, builder, is_imf_fixdate, start_or_skip, Client, CloseKind, Response};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
const HELLO: &[u8] = b"Hello, World!";

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[track_caller]
fn assert_hello(r: &Response) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, HELLO, "{r:?}");
}

#[test]
fn keep_alive_connection_is_reused() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    for _ in 0..3 {
        let r = client.request(GET);
        assert_hello(&r);
        assert!(!r.connection_has("close"), "{r:?}");
    }
    let stats = server.stats();
    assert_eq!(stats.accepted, 1, "{stats}");
    assert_eq!(stats.requests, 3, "{stats}");
    assert_eq!(server.open_connections(), 1, "{stats}");
}

/// Request `i` of the pipelined batch and the body its response must carry:
/// echoes with numbered bodies of varied length, byte counts, plain GETs.
fn numbered_request(i: usize) -> (Vec<u8>, Vec<u8>) {
    match i % 3 {
        0 => {
            let body = format!("body #{i};").repeat(i % 7 + 1).into_bytes();
            (post(&format!("/echo/{i}"), &body), body)
        }
        1 => (
            format!("GET /bytes/{} HTTP/1.1\r\nHost: test\r\n\r\n", i * 37).into_bytes(),
            vec![b'x'; i * 37],
        ),
        _ => (
            format!("GET /hello/{i}?n={i} HTTP/1.1\r\nHost: test\r\nX-Request: {i}\r\n\r\n")
                .into_bytes(),
            HELLO.to_vec(),
        ),
    }
}

#[test]
fn hundred_pipelined_requests_answered_in_order_byte_exact() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let requests: Vec<(Vec<u8>, Vec<u8>)> = (0..100).map(numbered_request).collect();
    let batch: Vec<u8> = requests.iter().flat_map(|(r, _)| r.clone()).collect();

    let mut pipelined = Client::connect(server.local_addr());
    pipelined.send(&batch);
    let answers: Vec<Response> = (0..100).map(|_| pipelined.read_response()).collect();
    assert!(
        pipelined.stays_silent_for(Duration::from_millis(200)),
        "bytes after the 100th response"
    );

    // The same requests one at a time: each pipelined answer must be the
    // very bytes a lone request gets (Date aside).
    let mut one_by_one = Client::connect(server.local_addr());
    for (i, ((request, body), answer)) in requests.iter().zip(&answers).enumerate() {
        assert_eq!(answer.status, 200, "response #{i}: {answer:?}");
        assert_eq!(
            answer.body,
            *body,
            "response #{i} carries another request's body: {:?}",
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(80)])
        );
        let alone = one_by_one.request(request);
        assert_eq!(
            String::from_utf8_lossy(&answer.raw_without_date()),
            String::from_utf8_lossy(&alone.raw_without_date()),
            "pipelined response #{i} differs from the same request sent alone"
        );
    }
    assert_eq!(server.stats().requests, 200);
}

#[test]
fn request_fed_one_byte_per_write_gets_the_same_response() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let request = post("/one/byte/at/a/time?x=1", b"0123456789 the body, dripped");
    let mut whole = Client::connect(server.local_addr());
    let expected = whole.request(&request);
    assert_eq!(expected.body, b"0123456789 the body, dripped");

    let mut dripped = Client::connect(server.local_addr());
    for byte in &request {
        dripped.send(std::slice::from_ref(byte));
        // A pause per byte, so most bytes arrive in a recv of their own.
        std::thread::sleep(Duration::from_micros(500));
    }
    let answer = dripped.read_response();
    assert_eq!(
        String::from_utf8_lossy(&answer.raw_without_date()),
        String::from_utf8_lossy(&expected.raw_without_date())
    );
    // Still a working keep-alive connection.
    assert_hello(&dripped.request(GET));
}

#[test]
fn chunked_request_body_is_echoed() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(
        b"POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n\
          6;quoted=\"x y\";flag\r\n world\r\n\
          A\r\n, 01234567\r\n\
          0\r\nX-Checksum: abc\r\nX-Trailer-Two: 2\r\n\r\n",
    );
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(String::from_utf8_lossy(&r.body), "hello world, 01234567");
    assert_eq!(r.header("content-length"), Some(&b"21"[..]));
    // The trailers were consumed: the next request parses cleanly.
    assert_hello(&client.request(GET));
}

#[test]
fn expect_100_continue_gets_100_before_body_is_read() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    );
    // Nothing of the body has been sent: the 100 must come first.
    let interim = client.read_exact_raw(b"HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(
        String::from_utf8_lossy(&interim),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    client.send(b"hello world");
    let r = client.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"hello world");
}

#[test]
fn head_response_has_no_body() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-length"), Some(&b"13"[..]), "{head:?}");

    client.send(b"HEAD /bytes/1000 HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.read_head_response();
    assert_eq!(
        head.header("content-length"),
        Some(&b"1000"[..]),
        "{head:?}"
    );

    // Had a body followed either HEAD, this would parse it as a status line.
    assert_hello(&client.request(GET));
}

#[test]
fn http10_without_keep_alive_is_closed_after_response() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let r = client.request(b"GET / HTTP/1.0\r\n\r\n");
    assert_hello(&r);
    assert!(!r.connection_has("keep-alive"), "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");
}

#[test]
fn http10_with_keep_alive_is_kept_open() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let request = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let first = client.request(request);
    assert_hello(&first);
    // An HTTP/1.0 client closes unless told the connection persists.
    assert!(first.connection_has("keep-alive"), "{first:?}");
    assert!(client.stays_silent_for(Duration::from_millis(100)));
    assert_hello(&client.request(request));
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn connection_close_is_honoured() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let r = client.request(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_hello(&r);
    assert!(r.connection_has("close"), "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");
    drop(client);
    assert!(
        ringwall_tests::wait_until(Duration::from_secs(2), || server.stats().closes.completed
            == 1),
        "{}",
        server.stats()
    );
}

#[test]
fn every_response_has_date_and_content_length() {
    let handler = |req: &Request<'_>, resp: &mut Reply<'_>| {
        if req.path() == "/panic" {
            panic!("this handler panics on purpose");
        }
        app(req, resp)
    };
    let Some(server) = start_or_skip(builder(), handler) else {
        return;
    };
    let cases: [(&[u8], bool, u16, usize); 9] = [
        (GET, false, 200, 13),
        (b"GET /bytes/0 HTTP/1.1\r\nHost: t\r\n\r\n", false, 200, 0),
        (
            b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
            200,
            100_000,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            false,
            200,
            0,
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
            false,
            200,
            3,
        ),
        (b"HEAD /bytes/77 HTTP/1.1\r\nHost: t\r\n\r\n", true, 200, 77),
        (b"GET / HTTP/1.0\r\n\r\n", false, 200, 13),
        (
            b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
            500,
            usize::MAX,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", false, 400, usize::MAX),
    ];
    for (request, head_request, status, length) in cases {
        let mut client = Client::connect(server.local_addr());
        client.send(request);
        let r = client
            .try_read_response(head_request)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(request)));
        let what = String::from_utf8_lossy(request);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(r.header_count("date"), 1, "{what}: {r:?}");
        let date = r.header("date").unwrap_or_default();
        assert!(
            is_imf_fixdate(date),
            "{what}: Date {:?}",
            String::from_utf8_lossy(date)
        );
        assert_eq!(r.header_count("content-length"), 1, "{what}: {r:?}");
        let declared: usize = r
            .header_str("content-length")
            .and_then(|v| v.parse().ok())
            .expect("a numeric Content-Length");
        if length != usize::MAX {
            assert_eq!(declared, length, "{what}: {r:?}");
        }
        if !head_request {
            assert_eq!(declared, r.body.len(), "{what}: {r:?}");
        }
    }
}

#[test]
fn handler_sees_method_target_headers_body_and_peer() {
    let handler = |req: &Request<'_>, resp: &mut Reply<'_>| {
        let headers: Vec<String> = req
            .headers()
            .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v)))
            .collect();
        let text = format!(
            "method={} target={} path={} query={:?} version={:?} x-two={:?} headers=[{}] body={} peer={:?}",
            req.method(),
            req.target(),
            req.path(),
            req.query(),
            req.version(),
            req.header("X-TWO").map(|v| String::from_utf8_lossy(v).into_owned()),
            headers.join(","),
            String::from_utf8_lossy(req.body()),
            req.peer_addr(),
        );
        resp.send(200, &[("Content-Type", b"text/plain")], text.as_bytes())
            .expect("the response is written");
    };
    let Some(server) = start_or_skip(builder(), handler) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let local = client.stream.local_addr().expect("local address");
    let r = client.request(
        b"PATCH /a/b?c=d&e HTTP/1.1\r\nHost: test\r\nX-One: 1\r\nx-two:  two \r\nContent-Length: 4\r\n\r\nbody",
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let expected = format!(
        "method=PATCH target=/a/b?c=d&e path=/a/b query=Some(\"c=d&e\") version={:?} x-two=Some(\"two\") \
         headers=[Host=test,X-One=1,x-two=two,Content-Length=4] body=body peer=Some({local})",
        ringwall::Version::Http11
    );
    assert_eq!(text, expected);
}

/// A client that pipelines far more output than the server buffers per
/// connection (it pauses reading past its high-water mark) and reads only
/// later still gets every response, complete and in order.
#[test]
fn pipelined_output_beyond_high_water_is_answered_in_order() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    const COUNT: usize = 24;
    let batch: Vec<u8> = (0..COUNT)
        .flat_map(|i| {
            format!(
                "GET /bytes/{} HTTP/1.1\r\nHost: test\r\n\r\n",
                (1 << 20) + i
            )
            .into_bytes()
        })
        .collect();
    let mut client = Client::connect(server.local_addr());
    client.send(&batch);
    // Let the server fill its queue and the socket buffers, then read.
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..COUNT {
        let r = client.read_response();
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(r.body.len(), (1 << 20) + i, "response {i} is another's");
        assert!(r.body.iter().all(|&b| b == b'x'), "response {i} corrupted");
    }
    assert!(client.stays_silent_for(Duration::from_millis(100)));
    assert_hello(&client.request(GET));
}

/// RFC 9110 10.1.1: an HTTP/1.0 client does not know 100 Continue; the
/// expectation is ignored and the first bytes are the final response.
#[test]
fn expect_100_continue_from_http10_is_ignored() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(b"POST /old HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert!(
        client.stays_silent_for(Duration::from_millis(200)),
        "something was sent to an HTTP/1.0 client before its body"
    );
    client.send(b"hello");
    let r = client.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]), "{r:?}");
}

/// A client that half-closes (FIN) right after its requests still gets every
/// response, then the server's FIN.
#[test]
fn client_half_close_after_requests_still_gets_the_responses() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut batch = GET.to_vec();
    batch.extend_from_slice(&post("/last", b"bye"));
    client.send(&batch);
    client
        .stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    assert_hello(&client.read_response());
    let r = client.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"bye"[..]), "{r:?}");
    let closed = client.wait_for_close(Duration::from_secs(2));
    assert_eq!(closed.kind, CloseKind::Fin, "{closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");
}

/// The Date header is the current time (RFC 9110 6.6.1), refreshed as the
/// clock moves, on one keep-alive connection as on new ones.
#[test]
fn date_header_tracks_the_clock() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs()
    };
    let mut client = Client::connect(server.local_addr());
    let mut dates = Vec::new();
    for _ in 0..2 {
        let before = now();
        let r = client.request(GET);
        let after = now();
        let date = r.header("date").unwrap_or_default();
        let secs = ringwall_tests::imf_fixdate_unix_secs(date)
            .unwrap_or_else(|| panic!("Date {:?}", String::from_utf8_lossy(date)));
        // A second of slack each way: the server refreshes its Date once per
        // loop turn, and the second may tick between the reads.
        assert!(
            secs + 1 >= before && secs <= after + 1,
            "Date {:?} is not now ({before}..={after})",
            String::from_utf8_lossy(date)
        );
        dates.push(secs);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(dates[1] > dates[0], "the Date did not advance: {dates:?}");
}

/// RFC 9112 2.2: a server SHOULD ignore at least one empty line before the
/// request line (some clients send a CRLF after a POST body).
#[test]
fn empty_line_before_request_line_is_ignored() {
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut batch = post("/first", b"abc");
    batch.extend_from_slice(b"\r\n");
    batch.extend_from_slice(GET);
    client.send(&batch);
    let first = client.read_response();
    assert_eq!((first.status, first.body.as_slice()), (200, &b"abc"[..]));
    assert_hello(&client.read_response());
    let mut fresh = Client::connect(server.local_addr());
    let mut leading = b"\r\n".to_vec();
    leading.extend_from_slice(GET);
    assert_hello(&fresh.request(&leading));
}
