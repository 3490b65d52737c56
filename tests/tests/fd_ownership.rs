//! Every descriptor a server opens (listeners, their dups, eventfds, rings
//! or epoll and timer fds, connections: served, refused, left open at
//! shutdown) is closed once it has shut down, and a start that fails
//! half-way closes what it had opened. Each has one owner that closes it
//! by dropping it; a descriptor with none would stay open here.
//!
//! This binary holds this one test, so nothing else in the process opens
//! or closes a descriptor while it compares before and after.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::fd::OwnedFd;

use ringwall::StartError;
use ringwall_tests::{app, builder, start_or_skip, Client};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// The process's open descriptors and what each names.
fn open_fds() -> BTreeMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((
                entry.file_name().to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

#[test]
fn a_stopped_server_and_a_failed_start_leave_no_descriptor_open() {
    // One listener of our own, passed like systemd's: each worker and the
    // handle dup it, and every dup must go.
    let passed = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let before = open_fds();

    let Some(server) = start_or_skip(
        builder()
            .max_connections(2)
            .listen_fd(OwnedFd::from(passed.try_clone().unwrap())),
        app,
    ) else {
        return;
    };
    let addr = server.local_addr();
    let mut held = [Client::connect(addr), Client::connect(addr)];
    for client in &mut held {
        assert_eq!(client.request(GET).status, 200);
    }
    // Past the cap: refused with its 503 and closed at once.
    let mut refused = Client::connect(addr);
    let answer = refused
        .try_read_response(false)
        .expect("a 503 before the close");
    assert_eq!(answer.status, 503);
    // The two held connections are idle: the shutdown closes them.
    let stats = server.shutdown().expect("a clean shutdown");
    assert_eq!(stats.closes.connection_cap, 1, "{stats}");
    drop((held, refused));

    // The second address is taken (no SO_REUSEPORT on `taken`): the start
    // fails after both workers' listeners on the first were bound. With
    // `reuse_port` it is the bind itself that fails, not the check before.
    let failed = builder()
        .bind(taken.local_addr().unwrap())
        .reuse_port(true)
        .build()
        .unwrap()
        .serve(app);
    assert!(
        matches!(failed, Err(StartError::Bind { .. })),
        "{:?}",
        failed.err()
    );

    let after = open_fds();
    let leaked: Vec<_> = after
        .iter()
        .filter(|(fd, _)| !before.contains_key(*fd))
        .collect();
    assert!(leaked.is_empty(), "left open: {leaked:?}");
    assert_eq!(after, before);
}
