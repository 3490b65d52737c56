//! Output backpressure: a client that pipelines faster than it reads makes
//! the server stop reading (bounded memory), and a client that half-closes
//! after pipelining still gets every answer.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringwall_tests::{app, builder, heavy_test_lock, start_or_skip, Client};

/// Each answer is far over the engine's 1 MiB output high-water mark, so the
/// connection pauses after every request. Before the fix, the drain re-armed
/// recv even when the next answer paused it again: the server kept pulling
/// whole socket buffers of requests it would not parse (hundreds of MB).
#[test]
fn pipelining_faster_than_reading_keeps_server_input_bounded() {
    let _heavy = heavy_test_lock();
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let request = b"GET /bytes/2000000 HTTP/1.1\r\nHost: t\r\n\r\n";
    let stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = Arc::clone(&stop);
    let writes = std::thread::spawn(move || {
        let batch: Vec<u8> = request.repeat(1000);
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end && !stop_writer.load(Ordering::Relaxed) {
            // Timeouts are expected: the server stops reading on purpose.
            let _ = writer.write(&batch);
        }
    });
    let received = Arc::new(AtomicU64::new(0));
    let mut reader = stream;
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    writes.join().unwrap();
    let answered = received.load(Ordering::Relaxed) / 2_000_000;
    let stats = server.stats();
    let unparsed = stats
        .bytes_in
        .saturating_sub((answered + 2) * request.len() as u64);
    assert!(answered > 0, "no answer arrived: {stats}");
    assert!(
        unparsed < 16 << 20,
        "the server pulled {unparsed} bytes of requests it did not answer ({answered} answered): {stats}"
    );
}

/// A client may pipeline requests and then shut its write side; every
/// complete request is still answered, in order, before the close.
#[test]
fn half_closed_pipelined_requests_are_all_answered() {
    let _heavy = heavy_test_lock();
    let Some(server) = start_or_skip(builder(), app) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let mut batch = Vec::new();
    for _ in 0..50 {
        batch.extend_from_slice(b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    client.send(&batch);
    client.stream.shutdown(Shutdown::Write).unwrap();
    for i in 0..50 {
        let r = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("response {i} of 50 missing: {e}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 100_000);
    }
    let closed = client.wait_for_close(Duration::from_secs(5));
    assert_eq!(closed.kind, ringwall_tests::CloseKind::Fin, "{closed:?}");
}
