//! PROXY protocol v1 and v2 on a server that opts in: the header sets
//! `Request::peer_addr`, a bad or missing header closes the connection
//! without a byte of response, and a server that did not opt in treats a
//! `PROXY` line as the start of an ordinary (bad) request.

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use ringwall::{Request, Response, ServerHandle};
use ringwall_tests::{
    assert_closed_within, builder, heavy_test_lock, start_or_skip, wait_until, Client, CloseKind,
};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Answers every request with the peer address it sees.
fn echo_peer(request: &Request<'_>, response: &mut Response<'_>) {
    let peer = request
        .peer_addr()
        .map_or_else(|| "none".to_owned(), |a| a.to_string());
    let _ = response.send(200, &[], peer.as_bytes());
}

fn start_with_proxy_protocol() -> Option<ServerHandle> {
    start_or_skip(builder().proxy_protocol(true), echo_peer)
}

fn v2_header(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(block);
    out
}

/// A v2 PROXY header for `source` (to 127.0.0.1:80 or [::1]:80).
fn v2_proxy(source: SocketAddr) -> Vec<u8> {
    let mut block = Vec::new();
    let family = match source.ip() {
        IpAddr::V4(ip) => {
            block.extend_from_slice(&ip.octets());
            block.extend_from_slice(&[127, 0, 0, 1]);
            0x11
        }
        IpAddr::V6(ip) => {
            block.extend_from_slice(&ip.octets());
            block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            0x21
        }
    };
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&80u16.to_be_bytes());
    v2_header(1, family, &block)
}

/// Sends `bytes` and expects a close with no response byte, counted as a
/// PROXY protocol error.
fn assert_closed_silently(server: &ServerHandle, bytes: &[u8]) {
    let before = server.stats().closes.proxy_protocol_error;
    let mut client = Client::connect(server.local_addr());
    client.send(bytes);
    let closed = client.wait_for_close(Duration::from_secs(5));
    assert_ne!(closed.kind, CloseKind::StillOpen, "never closed");
    assert!(
        closed.data.is_empty(),
        "response bytes: {:?}",
        String::from_utf8_lossy(&closed.data)
    );
    assert!(
        wait_until(Duration::from_secs(2), || server
            .stats()
            .closes
            .proxy_protocol_error
            == before + 1),
        "{}",
        server.stats()
    );
}

#[test]
fn v1_header_sets_peer_addr() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec();
    bytes.extend_from_slice(GET);
    let response = client.request(&bytes);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"192.0.2.7:4321");
}

#[test]
fn v1_tcp6_header_sets_peer_addr() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut bytes = b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n".to_vec();
    bytes.extend_from_slice(GET);
    let response = client.request(&bytes);
    assert_eq!(response.body, b"[2001:db8::7]:65535");
}

#[test]
fn v2_header_sets_peer_addr() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    for source in ["203.0.113.9:1234", "[2001:db8::9]:5678"] {
        let source: SocketAddr = source.parse().unwrap();
        let mut client = Client::connect(server.local_addr());
        let mut bytes = v2_proxy(source);
        bytes.extend_from_slice(GET);
        let response = client.request(&bytes);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, source.to_string().as_bytes());
    }
}

#[test]
fn v2_local_and_v1_unknown_keep_the_socket_peer() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    for header in [v2_header(0, 0x00, &[]), b"PROXY UNKNOWN\r\n".to_vec()] {
        let mut client = Client::connect(server.local_addr());
        let own = client.stream.local_addr().unwrap();
        let response = client.request(&[header, GET.to_vec()].concat());
        assert_eq!(response.status, 200);
        assert_eq!(response.body, own.to_string().as_bytes());
    }
}

#[test]
fn header_split_across_writes_is_read_whole() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    let source: SocketAddr = "198.51.100.20:999".parse().unwrap();
    let v1 = b"PROXY TCP4 198.51.100.20 127.0.0.1 999 80\r\n".to_vec();
    for header in [v1, v2_proxy(source)] {
        let mut client = Client::connect(server.local_addr());
        // Byte by byte, with pauses so each piece is its own recv; the
        // request follows the header's last byte in the same write.
        let (last, head) = header.split_last().unwrap();
        for byte in head {
            client.send(&[*byte]);
            thread::sleep(Duration::from_millis(2));
        }
        client.send(&[&[*last], GET].concat());
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"198.51.100.20:999");
    }
}

#[test]
fn keep_alive_second_request_keeps_the_proxied_address() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut bytes = b"PROXY TCP4 192.0.2.55 127.0.0.1 2000 80\r\n".to_vec();
    bytes.extend_from_slice(GET);
    assert_eq!(client.request(&bytes).body, b"192.0.2.55:2000");
    let second = client.request(GET);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"192.0.2.55:2000");
}

#[test]
fn malformed_v1_header_closes_without_a_response() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    for line in [
        &b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 443\r\n"[..],
        b"PROXY TCP4 192.0.2.7  198.51.100.1 4321 443\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\n",
        b"PROXY UDP4 192.0.2.7 198.51.100.1 4321 443\r\n",
    ] {
        assert_closed_silently(&server, &[line, GET].concat());
    }
    // A line that never ends within 107 bytes.
    assert_closed_silently(&server, &[b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat());
}

#[test]
fn malformed_v2_header_closes_without_a_response() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    let good = v2_proxy("192.0.2.7:1".parse().unwrap());
    let mut bad_version = good.clone();
    bad_version[12] = 0x11;
    let mut bad_signature = good.clone();
    bad_signature[5] = b'X';
    let short = v2_header(1, 0x11, &[1, 2, 3]);
    let too_long = v2_header(1, 0x11, &[0; 1000]);
    for header in [bad_version, bad_signature, short, too_long] {
        assert_closed_silently(&server, &[header.as_slice(), GET].concat());
    }
}

#[test]
fn missing_header_closes_without_a_response() {
    let Some(server) = start_with_proxy_protocol() else {
        return;
    };
    assert_closed_silently(&server, GET);
    assert_eq!(server.stats().requests, 0);
}

#[test]
fn proxy_line_without_the_option_is_an_ordinary_bad_request() {
    // The default: off.
    let Some(server) = start_or_skip(builder(), echo_peer) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec();
    bytes.extend_from_slice(GET);
    let response = client.request(&bytes);
    assert_eq!(
        response.status,
        400,
        "{:?}",
        String::from_utf8_lossy(&response.raw)
    );
    let stats = server.stats();
    assert_eq!(stats.requests, 0, "{stats}");
    assert_eq!(stats.closes.proxy_protocol_error, 0, "{stats}");
}

#[test]
fn dripped_header_is_closed_at_the_header_deadline_armed_at_accept() {
    let _heavy = heavy_test_lock();
    let header = Duration::from_millis(300);
    let Some(server) = start_or_skip(
        builder().proxy_protocol(true).header_timeout(header),
        echo_peer,
    ) else {
        return;
    };
    let before = Instant::now();
    let mut client = Client::connect(server.local_addr());
    let connected = Instant::now();
    // One byte every 20 ms: the PROXY line alone takes about 880 ms, and
    // its bytes must not move the deadline armed at accept.
    let mut drip = client.stream.try_clone().unwrap();
    let dripper = thread::spawn(move || {
        for &byte in b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\nGET / HTTP/1.1\r\n" {
            if drip.write_all(&[byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let closed = client.wait_for_close(header + Duration::from_secs(2));
    // FIN, or RST when a dripped byte was unread at the close.
    assert_ne!(closed.kind, CloseKind::StillOpen, "{closed:?}");
    assert!(closed.data.is_empty(), "{closed:?}");
    assert_closed_within("dripped header", closed.at, before, connected, header);
    dripper.join().unwrap();
    let stats = server.stats();
    assert_eq!(stats.closes.header_timeout, 1, "{stats}");
    assert_eq!(stats.closes.proxy_protocol_error, 0, "{stats}");
}
