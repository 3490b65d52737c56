//! Handlers that answer later from another thread, over loopback, on the
//! backend under test: waiting handlers do not hold the worker, answers
//! leave in request order, streamed answers arrive whole, and a client that
//! leaves while its answer is pending leaks nothing.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ringwall::{Request, Responder, Response};
use ringwall_tests::{
    builder, heavy_test_lock, set_linger_zero, start_or_skip, wait_until, Client,
};

/// Defers every request to a thread that answers after the milliseconds
/// the path names (`/sleep/MS`), or streams `/stream/N` chunks of 1 KiB
/// as fast as they are taken, or `/paced/N` chunks of 4 KiB 10 ms apart.
fn deferring_app() -> impl Fn(&Request<'_>, &mut Response<'_>) + Send + Sync + 'static {
    let (jobs, queue) = mpsc::channel::<(String, Responder)>();
    let queue = std::sync::Mutex::new(queue);
    // One thread that sleeps per job would serialise them: each job gets
    // its own short-lived thread, from a dispatcher.
    thread::spawn(move || {
        while let Ok((path, responder)) = queue.lock().unwrap().recv() {
            thread::spawn(move || answer(&path, responder));
        }
    });
    let jobs = std::sync::Mutex::new(jobs);
    move |request, response| {
        let responder = response.defer().expect("first answer");
        let _ = jobs
            .lock()
            .unwrap()
            .send((request.path().to_owned(), responder));
    }
}

/// Answers to `/sleep/200` that found their connection gone.
static GONE_AT_200: AtomicUsize = AtomicUsize::new(0);

fn answer(path: &str, responder: Responder) {
    if let Some(ms) = path.strip_prefix("/sleep/") {
        thread::sleep(Duration::from_millis(ms.parse().unwrap()));
        let sent = responder.send(200, &[], path.as_bytes().to_vec());
        if sent.is_err() && path == "/sleep/200" {
            GONE_AT_200.fetch_add(1, Ordering::Relaxed);
        }
    } else if let Some(n) = path.strip_prefix("/stream/") {
        let Ok(sender) = responder.stream(200, &[], None) else {
            return;
        };
        for _ in 0..n.parse::<usize>().unwrap() {
            if sender.send(vec![b'x'; 1024]).is_err() {
                return;
            }
        }
        let _ = sender.finish();
    } else if let Some(n) = path.strip_prefix("/paced/") {
        // A producer slower than the reader: the send queue drains
        // between its chunks.
        let Ok(sender) = responder.stream(200, &[], None) else {
            return;
        };
        for _ in 0..n.parse::<usize>().unwrap() {
            thread::sleep(Duration::from_millis(10));
            if sender.send(vec![b'x'; 4096]).is_err() {
                return;
            }
        }
        let _ = sender.finish();
    }
    // Anything else: the responder is dropped, which answers 500.
}

#[test]
fn waiting_handlers_do_not_hold_the_worker() {
    let _heavy = heavy_test_lock();
    let Some(server) = start_or_skip(builder().workers(1), deferring_app()) else {
        return;
    };
    let addr = server.local_addr();
    let started = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|_| {
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                client.request(b"GET /sleep/300 HTTP/1.1\r\nHost: x\r\n\r\n")
            })
        })
        .collect();
    for client in clients {
        let response = client.join().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"/sleep/300");
    }
    // Inline, one worker would take 200 x 300 ms = 60 s.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(server.stats().requests, 200);
}

#[test]
fn pipelined_answers_finishing_out_of_order_leave_in_request_order() {
    let Some(server) = start_or_skip(builder(), deferring_app()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    client.send(
        b"GET /sleep/300 HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep/100 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    for expected in ["/sleep/300", "/sleep/1", "/sleep/100"] {
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, expected.as_bytes());
    }
}

#[test]
fn a_streamed_answer_arrives_whole_and_chunked() {
    let Some(server) = start_or_skip(builder(), deferring_app()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let response = client.request(b"GET /stream/2000 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 2000 * 1024);
    assert!(response.body.iter().all(|&b| b == b'x'));
    // The connection is kept: a second answer follows on it.
    let again = client.request(b"GET /sleep/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(again.body, b"/sleep/1");
}

/// Idle timeout of the stream tests: far shorter than each stream lasts.
const SHORT_IDLE: Duration = Duration::from_secs(1);

#[test]
fn a_stream_read_at_full_speed_is_not_cut_at_the_idle_timeout() {
    let Some(server) = start_or_skip(builder().idle_timeout(SHORT_IDLE), deferring_app()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    // 250 chunks 10 ms apart: 2.5 s of a stream whose queue is empty
    // between chunks, with a 1 s idle timeout.
    let started = Instant::now();
    let response = client.request(b"GET /paced/250 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 250 * 4096);
    assert!(
        started.elapsed() > SHORT_IDLE * 2,
        "{:?}",
        started.elapsed()
    );
    // Kept alive after the stream, and answered again.
    let again = client.request(b"GET /sleep/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(again.body, b"/sleep/1");
    assert_eq!(server.stats().closes.idle_timeout_reset, 0);
}

#[test]
fn a_stream_read_at_one_megabyte_per_second_is_not_cut_at_the_idle_timeout() {
    let Some(server) = start_or_skip(builder().idle_timeout(SHORT_IDLE), deferring_app()) else {
        return;
    };
    // A small receive buffer, so the reader's pace, not the kernel's
    // buffers, sets how fast the 3 MiB leave: about 3 s.
    let stream = ringwall_tests::connect_with_rcvbuf(server.local_addr(), 64 * 1024).unwrap();
    let mut client = Client::from_stream(stream);
    client.send(b"GET /stream/3072 HTTP/1.1\r\nHost: x\r\n\r\n");
    let started = Instant::now();
    let response = client.read_response_at(1 << 20);
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 3072 * 1024);
    assert!(
        started.elapsed() > SHORT_IDLE * 2,
        "{:?}",
        started.elapsed()
    );
    let again = client.request(b"GET /sleep/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(again.body, b"/sleep/1");
}

#[test]
fn a_dropped_responder_answers_500() {
    let Some(server) = start_or_skip(builder(), deferring_app()) else {
        return;
    };
    let mut client = Client::connect(server.local_addr());
    let response = client.request(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 500);
}

#[test]
fn clients_that_leave_while_their_answer_is_pending_leak_nothing() {
    let _heavy = heavy_test_lock();
    let Some(server) = start_or_skip(builder(), deferring_app()) else {
        return;
    };
    let addr = server.local_addr();
    for _ in 0..1000 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /sleep/200 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // A reset, not a FIN: a half-closed client may still read its
        // answer, and is waited for.
        set_linger_zero(&stream);
        drop(stream);
    }
    assert!(
        wait_until(Duration::from_secs(10), || server.open_connections() == 0),
        "connections still open: {}",
        server.stats()
    );
    // Every answer came after its connection had gone: its responder was
    // told, and nothing was sent.
    assert!(
        wait_until(Duration::from_secs(5), || GONE_AT_200
            .load(Ordering::Relaxed)
            == 1000),
        "{} of 1000 responders learned their connection was gone",
        GONE_AT_200.load(Ordering::Relaxed)
    );
    let stats = server.stats();
    assert_eq!(
        (stats.bytes_out, stats.closes.peer_reset),
        (0, 1000),
        "{stats}"
    );
    // The server still answers.
    let mut client = Client::connect(addr);
    let response = client.request(b"GET /sleep/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
}
