//! A bound address is served by one server unless it opts in to sharing:
//! without `ServerBuilder::reuse_port`, a second server on a port already
//! served fails to start instead of joining the first one's `SO_REUSEPORT`
//! group and taking a share of its connections.

use std::net::SocketAddr;

use ringwall::StartError;
use ringwall_tests::{app, builder, start_or_skip, Client};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// A builder like `builder()`'s, on `addr` instead of port 0.
fn on(addr: SocketAddr) -> ringwall::ServerBuilder {
    ringwall::Server::builder()
        .backend(ringwall_tests::test_backend())
        .bind(addr)
        .workers(2)
}

#[test]
fn a_second_server_on_a_served_port_fails_to_start() {
    let Some(first) = start_or_skip(builder(), app) else {
        return;
    };
    let addr = first.local_addr();
    let second = on(addr).build().unwrap().serve(app);
    match second {
        Err(StartError::AddrInUse { addr: refused }) => {
            assert_eq!(refused, addr);
            let text = StartError::AddrInUse { addr }.to_string();
            assert!(text.contains(&addr.to_string()), "{text}");
            assert!(text.contains("reuse_port"), "{text}");
        }
        other => panic!("expected AddrInUse, got {:?}", other.err()),
    }
    // The first one still serves every connection.
    assert_eq!(Client::connect(addr).request(GET).status, 200);
    first.shutdown().expect("a clean shutdown");
}

#[test]
fn a_listener_without_reuseport_is_refused_the_same_way() {
    // Refused before any worker starts, so this needs no io_uring.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let second = on(addr).build().unwrap().serve(app);
    assert!(
        matches!(second, Err(StartError::AddrInUse { addr: a }) if a == addr),
        "{:?}",
        second.err()
    );
}

#[test]
fn reuse_port_shares_a_served_port_on_purpose() {
    let Some(first) = start_or_skip(builder(), app) else {
        return;
    };
    let addr = first.local_addr();
    let second = on(addr)
        .reuse_port(true)
        .build()
        .unwrap()
        .serve(app)
        .expect("reuse_port joins the first server's port");
    assert_eq!(second.local_addr(), addr);
    // Both accept: the kernel spreads new connections over both groups'
    // sockets, and whichever takes one answers it.
    for _ in 0..8 {
        assert_eq!(Client::connect(addr).request(GET).status, 200);
    }
    let (a, b) = (first.shutdown().unwrap(), second.shutdown().unwrap());
    assert_eq!(a.accepted + b.accepted, 8, "{a}\n{b}");
}

#[test]
fn a_stopped_servers_port_is_served_again_at_once() {
    let Some(first) = start_or_skip(builder(), app) else {
        return;
    };
    let addr = first.local_addr();
    // The server closes first (`Connection: close`), so the connection's
    // TIME_WAIT is on the server's side, on the served port: the check
    // before binding must not mistake it for a listener.
    let mut client = Client::connect(addr);
    let response = client.request(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(response.status, 200);
    drop(client);
    first.shutdown().expect("a clean shutdown");
    let again = start_or_skip(on(addr), app).expect("io_uring worked a moment ago");
    assert_eq!(Client::connect(addr).request(GET).status, 200);
    again.shutdown().expect("a clean shutdown");
}
