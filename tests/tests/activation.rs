//! Socket activation: a listening socket bound by someone else (systemd, a
//! parent) is served by every worker and is still listening after the
//! server shuts down, because it belongs to whoever passed it too.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use ringwall::activation::NotAListener;
use ringwall::{Server, StartError};
use ringwall_tests::{app, start_or_skip, Client};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// Accepts one connection on `listener` within `within`, or says why not.
fn accept_within(listener: &TcpListener, within: Duration) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn an_inherited_listener_is_served_and_still_listens_after_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    // What systemd keeps: another fd for the same socket.
    let kept = listener.try_clone().unwrap();
    let builder = Server::builder()
        .backend(ringwall_tests::test_backend())
        .listen_fd(OwnedFd::from(listener))
        .workers(2)
        .shutdown_timeout(Duration::from_secs(2));
    let Some(server) = start_or_skip(builder, app) else {
        return;
    };
    assert_eq!(server.local_addrs(), &[addr], "only the passed socket");
    // Enough connections that both workers' accepts take some.
    for _ in 0..20 {
        let r = Client::connect(addr).request(GET);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"Hello, World!"[..]),
            "{r:?}"
        );
    }
    let stats = server.shutdown().expect("no worker failed");
    assert_eq!(stats.requests, 20, "{stats}");

    // A shutdown() of the socket would have moved it out of LISTEN: the
    // connect would be refused, and accept would fail with EINVAL.
    let client = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("the passed socket still completes handshakes after shutdown");
    let accepted = accept_within(&kept, Duration::from_secs(2))
        .expect("the passed socket still accepts after shutdown");
    assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
}

/// Checked before any ring is set up, so this holds without io_uring too.
#[test]
fn a_socket_that_is_not_listening_is_refused_at_start() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = Server::builder()
        .backend(ringwall_tests::test_backend())
        .listen_fd(OwnedFd::from(udp))
        .workers(1)
        .build()
        .unwrap();
    match server.serve(app) {
        Err(StartError::Inherited {
            problem: NotAListener::NotStream { .. },
            ..
        }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a UDP socket was accepted as a listener"),
    }
}

#[test]
fn a_server_with_bound_and_inherited_listeners_serves_both() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let inherited = listener.local_addr().unwrap();
    let builder = Server::builder()
        .backend(ringwall_tests::test_backend())
        .bind(([127, 0, 0, 1], 0).into())
        .listen_fd(OwnedFd::from(listener))
        .workers(2);
    let Some(server) = start_or_skip(builder, app) else {
        return;
    };
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(addrs[1], inherited, "inherited sockets follow bound ones");
    for addr in addrs {
        let r = Client::connect(addr).request(GET);
        assert_eq!(r.status, 200, "{addr}: {r:?}");
    }
    server.shutdown().expect("no worker failed");
}
