//! A storm of slowloris connections, each holding most of a 16 KiB head:
//! once they are closed at their header deadline, `ringwall serve` gives
//! their memory back. Before, 10,000 such connections left RSS at 137 MB
//! (from a 4.7 MB baseline) for as long as the server ran: the freed
//! buffers sat in the middle of malloc's heap and in the decoder pool.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{exchange, io_uring_available, line_after, Running};

/// Connections in the storm, and the head bytes each sends before it
/// stalls: 30 MB held at the peak, far above the server's baseline.
const CONNECTIONS: usize = 2_000;
const HEAD_BYTES: usize = 15 * 1024;

/// The server's anonymous resident memory (RssAnon): the heap, stacks
/// and buffers, not the pages of its binary and libraries, which the
/// storm's code paths map in once and which are not memory it holds.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("an RssAnon line")
}

/// A head of `HEAD_BYTES` with no blank line at its end.
fn partial_head() -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    let mut n = 0;
    while head.len() < HEAD_BYTES - 600 {
        head.extend(format!("X-Field-{n}: ").as_bytes());
        head.extend([b'a'; 500]);
        head.extend(b"\r\n");
        n += 1;
    }
    head
}

#[test]
fn memory_held_by_a_storm_of_partial_heads_is_given_back_after_it_on_io_uring() {
    if io_uring_available() {
        storm_then_rss("io-uring");
    }
}

#[test]
fn memory_held_by_a_storm_of_partial_heads_is_given_back_after_it_on_epoll() {
    storm_then_rss("epoll");
}

/// One storm at a time: two at once on two cores would each connect
/// slower than their deadlines and never build up.
static ONE_STORM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn storm_then_rss(backend: &str) {
    let _one = ONE_STORM.lock().unwrap_or_else(|e| e.into_inner());
    ringwall_tests::raise_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwall"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "2"])
        .args(["--backend", backend])
        .args(["--header-timeout", "5s"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let running = Running::new(child);
    let pid = running.child.id();
    let addr: SocketAddr = line_after(&mut stdout, "ringwall listening on ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(exchange(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 200"));
    // The baseline of a server that has served: 2,000 requests cycle every
    // provided receive buffer of both workers (256 of 16 KiB each, fixed
    // memory that any traffic touches) through the kernel once.
    let mut warm: Vec<ringwall_tests::Client> = (0..8)
        .map(|_| ringwall_tests::Client::connect(addr))
        .collect();
    for round in 0..250 {
        for client in &mut warm {
            let r = client.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(r.status, 200, "warm-up round {round}");
        }
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_kib(pid);

    let head = partial_head();
    let mut storm: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(&head).expect("send the partial head");
            s
        })
        .collect();
    // The server holds them once it has read them all.
    let mut peak = rss_kib(pid);
    let started = Instant::now();
    while peak <= baseline * 2 + 20_000 && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(rss_kib(pid));
    }
    // 30 MB of heads, 15 MB a worker: past the 8 MiB fall that counts as
    // a storm's end.
    assert!(
        peak > baseline * 2 + 20_000,
        "the storm did not show: {baseline} KiB before, {peak} KiB during"
    );

    // Every one is closed at its header deadline (5 s after connecting).
    for s in &mut storm {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    drop(storm);

    // Given back within a few pool ticks (one a second).
    let bound = baseline * 2;
    let started = Instant::now();
    let mut after = rss_kib(pid);
    while after > bound && started.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(200));
        after = rss_kib(pid);
    }
    assert!(
        after <= bound,
        "RSS {after} KiB after the storm, {baseline} KiB before it, {peak} KiB at its peak"
    );
    eprintln!(
        "RssAnon on {backend}: {baseline} KiB before, {peak} KiB at the peak, {after} KiB after"
    );
}
