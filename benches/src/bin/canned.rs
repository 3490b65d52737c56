//! `canned`: the floor of the `throughput` runner. An io_uring keep-alive
//! responder with no HTTP in it: per `\r\n\r\n` received it sends one fixed
//! response ([`CANNED_RESPONSE`]: ringwall's answer to `GET /` with a fixed
//! `Date`). No parser, no deadlines, no allocation per request: what a
//! request costs here is the ring, the TCP stack and the client.
//!
//! ```text
//!   per worker thread: its own SO_REUSEPORT listener and ring
//!   multishot accept ─► recv ─► count heads ─► unsent += heads × response ─► recv again
//!                                                 └► send (one in flight) from the
//!                                                    response repeated, until unsent = 0
//!   FIN: close once all is sent.  error: shutdown, close once no operation names it
//! ```
//!
//! It never closes a connection itself, so churn (which waits for the
//! server's close) is not for it. Stops on SIGTERM.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use clap::Parser;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use ringwall_bench::peers::floor::{run_workers, HeadCounter};
use ringwall_bench::peers::CANNED_RESPONSE;

/// Answers every request head with one fixed 200 (the floor of ringwall-bench throughput).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    addr: SocketAddr,
    /// Worker threads, each with its own listener and ring.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

const RING_ENTRIES: u32 = 4096;
const RECV_BUFFER: usize = 16 * 1024;
/// Copies of the response in the send buffer: one send covers a pipelined
/// batch of up to this many.
const REPEATS: usize = 64;
const ACCEPT: u64 = u64::MAX;
const RECV: u64 = 0;
const SEND: u64 = 1;

fn main() -> io::Result<()> {
    let args = Args::parse();
    run_workers(args.addr, args.workers, Worker::run)
}

/// One accepted connection, found by its descriptor.
#[derive(Default)]
struct Conn {
    /// Boxed: the kernel writes into it while `conns` may grow and move.
    buf: Box<[u8]>,
    heads: HeadCounter,
    /// Response bytes owed and not yet sent.
    unsent: usize,
    /// Where in the response the next byte to send is.
    offset: usize,
    receiving: bool,
    sending: bool,
    /// The client sent its FIN.
    peer_done: bool,
    /// An operation failed: nothing more is started.
    broken: bool,
}

fn push(ring: &mut IoUring, entry: squeue::Entry) -> io::Result<()> {
    // SAFETY: every buffer an entry names outlives its operation: a receive
    // buffer is freed only once no operation is in flight on it, the
    // response buffer lives as long as the ring.
    while unsafe { ring.submission().push(&entry) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

/// Pops one completion; the queue's borrow of the ring ends on return.
fn next_completion(ring: &mut IoUring) -> Option<cqueue::Entry> {
    ring.completion().next()
}

struct Worker {
    ring: IoUring,
    /// Indexed by descriptor; a slot is freed only when no operation names it.
    conns: Vec<Option<Conn>>,
    /// The response `REPEATS` times; lives as long as the ring.
    responses: Vec<u8>,
}

impl Worker {
    fn run(listener: TcpListener) -> io::Result<()> {
        let mut w = Worker {
            ring: IoUring::new(RING_ENTRIES)?,
            conns: Vec::new(),
            responses: CANNED_RESPONSE.repeat(REPEATS),
        };
        let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build();
        push(&mut w.ring, accept.clone().user_data(ACCEPT))?;
        loop {
            match w.ring.submit_and_wait(1) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            while let Some(done) = next_completion(&mut w.ring) {
                let (data, result) = (done.user_data(), done.result());
                if data != ACCEPT {
                    w.complete((data >> 1) as i32, data & 1, result)?;
                    continue;
                }
                if result >= 0 {
                    w.open(result)?;
                }
                if !cqueue::more(done.flags()) {
                    push(&mut w.ring, accept.clone().user_data(ACCEPT))?;
                }
            }
        }
    }

    fn open(&mut self, fd: i32) -> io::Result<()> {
        let slot = fd as usize;
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        let buf = vec![0; RECV_BUFFER].into();
        self.conns[slot] = Some(Conn {
            buf,
            ..Conn::default()
        });
        self.start_operations(fd)
    }

    /// Starts the receive and the send `fd` is owed, one of each at most.
    fn start_operations(&mut self, fd: i32) -> io::Result<()> {
        let conn = self.conns[fd as usize].as_mut().expect("open connection");
        let user_data = |op| (fd as u64) << 1 | op;
        if !conn.broken && !conn.sending && conn.unsent > 0 {
            conn.sending = true;
            let len = conn.unsent.min(self.responses.len() - conn.offset);
            let start = self.responses[conn.offset..].as_ptr();
            let send =
                opcode::Send::new(types::Fd(fd), start, len as u32).flags(libc::MSG_NOSIGNAL);
            push(&mut self.ring, send.build().user_data(user_data(SEND)))?;
        }
        if !conn.broken && !conn.peer_done && !conn.receiving {
            conn.receiving = true;
            let recv = opcode::Recv::new(types::Fd(fd), conn.buf.as_mut_ptr(), RECV_BUFFER as u32);
            push(&mut self.ring, recv.build().user_data(user_data(RECV)))?;
        }
        Ok(())
    }

    fn complete(&mut self, fd: i32, op: u64, result: i32) -> io::Result<()> {
        let conn = self.conns[fd as usize].as_mut().expect("open connection");
        let n = result.max(0) as usize;
        if op == RECV {
            conn.receiving = false;
            // A FIN: answer what came before it, then close.
            conn.peer_done |= result == 0;
            conn.unsent += conn.heads.feed(&conn.buf[..n]) * CANNED_RESPONSE.len();
        } else {
            conn.sending = false;
            conn.unsent -= n;
            conn.offset = (conn.offset + n) % CANNED_RESPONSE.len();
        }
        if result < 0 && !conn.broken {
            conn.broken = true;
            // Ends the other operation in flight, if any, so the slot frees.
            // SAFETY: `fd` is open: it is closed only below, once idle.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        let idle = !conn.receiving && !conn.sending;
        if idle && (conn.broken || (conn.peer_done && conn.unsent == 0)) {
            self.conns[fd as usize] = None;
            // SAFETY: no operation names `fd` any more.
            unsafe { libc::close(fd) };
            return Ok(());
        }
        self.start_operations(fd)
    }
}
