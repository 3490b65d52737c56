//! After warm-up, decoding a request and encoding its response allocate
//! nothing: buffers are reused, not regrown.
//!
//! A counting global allocator counts allocations made by the test's own
//! thread while `counting` is on (other test threads are not counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringwall_h1::{
    encode_chunk, encode_chunked_head, encode_error, encode_last_chunk, encode_response,
    DecodeError, Decoder, EncodeContext, Event, HttpDate, Limits,
};

struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counting touches only const-initialized
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by System with `layout` (we forward all).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by System with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

const TYPICAL_GET: &[u8] = b"GET /api/v1/items?page=2&sort=desc HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef\r\n\
Cache-Control: no-cache\r\n\r\n";

const CHUNKED_POST: &[u8] = b"POST /upload HTTP/1.1\r\nHost: example.com\r\n\
Transfer-Encoding: chunked\r\n\r\n10;x=y\r\n0123456789abcdef\r\n4\r\nwxyz\r\n0\r\nT: v\r\n\r\n";

/// Decodes one request and answers it the way the engine does.
fn serve_one(d: &mut Decoder, out: &mut Vec<u8>, date: &HttpDate, request: &[u8], pieces: usize) {
    let step = request.len().div_ceil(pieces);
    let mut fed = 0;
    let mut saw_complete = false;
    while !saw_complete {
        if fed < request.len() {
            let end = (fed + step).min(request.len());
            d.feed(&request[fed..end]);
            fed = end;
        }
        while let Some(event) = d.poll().expect("valid request") {
            if event == Event::RequestComplete {
                let head = d.head().expect("head");
                assert!(head.path().starts_with('/'));
                assert!(head.header("host").is_some());
                assert!(head.query().is_none() || head.query().is_some());
                let _ = head.headers().count();
                let ctx = EncodeContext {
                    date,
                    version: head.version(),
                    keep_alive: head.keep_alive(),
                    head_request: head.is_head(),
                };
                let body = d.body();
                out.clear();
                encode_response(
                    out,
                    200,
                    &[("Content-Type", b"text/plain"), ("Server", b"ringwall")],
                    if body.is_empty() {
                        b"hello, world"
                    } else {
                        body
                    },
                    &ctx,
                )
                .expect("valid response");
                saw_complete = true;
            }
        }
    }
    assert_eq!(d.poll(), Ok(None));
}

#[test]
fn decoding_and_encoding_after_warm_up_allocate_nothing() {
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut d = Decoder::new(Limits::default());
    let mut out = Vec::new();

    // Warm-up: the buffers grow to their working size once.
    serve_one(&mut d, &mut out, &date, TYPICAL_GET, 1);
    serve_one(&mut d, &mut out, &date, CHUNKED_POST, 1);
    serve_one(&mut d, &mut out, &date, TYPICAL_GET, 7);

    assert_eq!(
        allocations_in(|| serve_one(&mut d, &mut out, &date, TYPICAL_GET, 1)),
        0,
        "a GET head fed whole"
    );
    assert_eq!(
        allocations_in(|| serve_one(&mut d, &mut out, &date, TYPICAL_GET, 7)),
        0,
        "a GET head fed in seven pieces (the incremental path)"
    );
    assert_eq!(
        allocations_in(|| serve_one(&mut d, &mut out, &date, CHUNKED_POST, 3)),
        0,
        "a chunked POST"
    );
    let mut pipelined = TYPICAL_GET.to_vec();
    pipelined.extend_from_slice(CHUNKED_POST);
    d.feed(&pipelined);
    assert_eq!(
        allocations_in(|| {
            while d.poll().unwrap().is_some() {}
            while d.poll().unwrap().is_some() {}
        }),
        0,
        "pipelined requests"
    );
}

#[test]
fn buffers_reclaimed_and_lent_to_another_decoder_need_no_allocation() {
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let mut out = Vec::new();
    let mut first = Decoder::new(Limits::default());
    serve_one(&mut first, &mut out, &date, TYPICAL_GET, 1);
    serve_one(&mut first, &mut out, &date, TYPICAL_GET, 5);
    let pooled = first.reclaim().expect("idle");

    let mut second = Decoder::new(Limits::default());
    assert_eq!(
        allocations_in(|| {
            second.lend(pooled);
            serve_one(&mut second, &mut out, &date, TYPICAL_GET, 1);
            serve_one(&mut second, &mut out, &date, TYPICAL_GET, 5);
        }),
        0
    );
}

#[test]
fn new_decoder_allocates_nothing() {
    assert_eq!(
        allocations_in(|| {
            let d = Decoder::new(Limits::default());
            assert!(d.is_idle());
        }),
        0
    );
}

#[test]
fn streaming_and_error_responses_into_a_reused_vec_allocate_nothing() {
    let date = HttpDate::from_unix_secs(1_700_000_000);
    let ctx = EncodeContext {
        date: &date,
        version: ringwall_h1::Version::Http11,
        keep_alive: true,
        head_request: false,
    };
    let mut out = Vec::with_capacity(4096);
    assert_eq!(
        allocations_in(|| {
            encode_chunked_head(&mut out, 200, &[("Content-Type", b"text/plain")], &ctx).unwrap();
            encode_chunk(&mut out, b"some data");
            encode_last_chunk(&mut out);
            out.clear();
            encode_error(&mut out, &DecodeError::HeadTooLarge, &date);
            out.clear();
            let _ = HttpDate::from_unix_secs(1_800_000_000);
        }),
        0
    );
}

#[test]
fn the_counter_sees_an_allocation() {
    // Guards the tests above against a counter that never counts.
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
