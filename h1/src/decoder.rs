//! The request decoder: bytes in, events out, one request at a time.

use std::mem;

use httparse::Header;

use crate::chunked::ChunkedDecoder;
use crate::error::DecodeError;
use crate::framing::BodyKind;
use crate::head::{analyze, FieldSpan, HeadInfo, RequestHead};
use crate::head_reader::HeadReader;
use crate::limits::Limits;

/// What [`Decoder::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A head has begun and is still incomplete after every byte at hand
    /// was parsed: the moment to arm a header deadline. Reported once per
    /// head. A head that arrives whole reports none; a partial pipelined
    /// head left behind a complete request reports it when polled after
    /// that request's `RequestComplete`.
    HeadStarted,
    /// The head is complete and valid; [`Decoder::head`] is `Some` now.
    HeadComplete,
    /// This many decoded body bytes were appended to [`Decoder::body`].
    BodyData(usize),
    /// The request is complete: `head()` and `body()` hold all of it until
    /// the next `poll()`, which drops it and moves to the next request.
    RequestComplete,
}

/// The decoder's memory, handed out while a connection idles so that an
/// idle connection holds none, and lent back (from a pool) before the next
/// bytes are fed. Capacity is kept across the round trip.
#[derive(Debug, Default)]
pub struct DecodeBuffers {
    /// Bytes fed and not yet consumed, plus the current head.
    input: Vec<u8>,
    /// The current request's decoded body.
    body: Vec<u8>,
    /// Positions of the current head's header fields.
    fields: Vec<FieldSpan>,
    /// httparse's header slots, empty between parses.
    scratch: Vec<Header<'static>>,
}

impl DecodeBuffers {
    /// Heap bytes these buffers hold (their capacity), so a pool can refuse
    /// buffers that one huge request grew.
    #[must_use]
    pub fn retained_bytes(&self) -> usize {
        self.input.capacity()
            + self.body.capacity()
            + self.fields.capacity() * mem::size_of::<FieldSpan>()
            + self.scratch.capacity() * mem::size_of::<Header<'static>>()
    }

    fn clear(&mut self) {
        self.input.clear();
        self.body.clear();
        self.fields.clear();
        self.scratch.clear();
    }
}

/// Where the decoder is in the current request. What it keeps while
/// reading a head (the head reader) and what it keeps once the head is
/// parsed (its meaning, the body's framing) share one place: a connection
/// holding a partial head (slowloris) pays only for the larger of the two.
#[derive(Debug)]
enum State {
    /// Reading a head; `started` once HeadStarted was reported.
    Head { started: bool, reader: HeadReader },
    /// The head is parsed; `head` lives until the request is dropped.
    Request { head: HeadInfo, body: Body },
    /// Every poll returns this error.
    Failed(DecodeError),
}

impl State {
    const fn new_head() -> State {
        State::Head {
            started: false,
            reader: HeadReader::new(),
        }
    }

    /// RequestComplete was reported: the next poll drops the request.
    fn is_complete(&self) -> bool {
        matches!(
            self,
            State::Request {
                body: Body::Complete,
                ..
            }
        )
    }

    /// The current head, from HeadComplete until the request is dropped.
    fn head(&self) -> Option<&HeadInfo> {
        match self {
            State::Request { head, .. } => Some(head),
            State::Head { .. } | State::Failed(_) => None,
        }
    }
}

/// The most input one poll of a chunked body decodes (see `Body::poll`).
const CHUNKED_POLL_BYTES: usize = 16 * 1024;

/// The body of a parsed request.
#[derive(Debug)]
enum Body {
    /// Content-Length bytes still to come (zero for no body).
    Length(u64),
    Chunked(ChunkedDecoder),
    /// RequestComplete was reported; the next poll drops the request.
    Complete,
}

impl Body {
    /// Decodes what `input` holds of the body into `out`; returns the event
    /// and how many input bytes it used.
    fn poll(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(Option<Event>, usize), DecodeError> {
        match self {
            Body::Length(0) => {
                *self = Body::Complete;
                Ok((Some(Event::RequestComplete), 0))
            }
            Body::Length(remaining) => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                if take == 0 {
                    return Ok((None, 0));
                }
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok((Some(Event::BodyData(take)), take))
            }
            Body::Chunked(chunked) => {
                if chunked.is_done() {
                    *self = Body::Complete;
                    return Ok((Some(Event::RequestComplete), 0));
                }
                // A slice at a time: a body of one-byte chunks costs a state
                // machine step per byte of framing, and a caller's fairness
                // budget can act only between polls.
                let mut used = 0;
                loop {
                    let end = input.len().min(used + CHUNKED_POLL_BYTES);
                    let progress = chunked.decode(&input[used..end], out)?;
                    used += progress.consumed;
                    if progress.appended > 0 {
                        return Ok((Some(Event::BodyData(progress.appended)), used));
                    }
                    if progress.done {
                        *self = Body::Complete;
                        return Ok((Some(Event::RequestComplete), used));
                    }
                    if used == input.len() || progress.consumed == 0 {
                        return Ok((None, used));
                    }
                    // A slice of framing alone (extensions, trailers, both
                    // bounded by `max_head_bytes`): go on.
                }
            }
            Body::Complete => unreachable!("a complete request is dropped before polling"),
        }
    }
}

/// A sans-IO HTTP/1.1 request decoder for one connection.
///
/// Feed it what the socket delivers and poll it until it returns
/// `Ok(None)`:
///
/// ```
/// use ringwall_h1::{Decoder, Event, Limits};
///
/// let mut d = Decoder::new(Limits::default());
/// d.feed(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
/// assert_eq!(d.poll(), Ok(Some(Event::HeadComplete)));
/// assert_eq!(d.head().unwrap().path(), "/echo");
/// assert_eq!(d.poll(), Ok(Some(Event::BodyData(2))));
/// assert_eq!(d.poll(), Ok(Some(Event::RequestComplete)));
/// assert_eq!(d.body(), b"hi");
/// assert_eq!(d.poll(), Ok(None));
/// assert!(d.is_idle());
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    bufs: DecodeBuffers,
    /// The current head's first byte in `bufs.input`.
    head_start: usize,
    /// The first byte of `bufs.input` not consumed yet. While a head is
    /// being read it equals `head_start`; afterwards it moves through the
    /// body.
    pos: usize,
    state: State,
    /// Bytes of empty lines skipped before the current request line.
    empty_lines: usize,
}

impl Decoder {
    /// A decoder that has allocated nothing yet.
    ///
    /// `limits` should have passed [`Limits::validate`]; the decoder does
    /// not panic on invalid limits, but a zero limit rejects every request.
    #[must_use]
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            bufs: DecodeBuffers::default(),
            head_start: 0,
            pos: 0,
            state: State::new_head(),
            empty_lines: 0,
        }
    }

    /// The limits this decoder checks each request against.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends bytes from the peer. Poll afterwards: the decoder only
    /// bounds what it holds when it is polled. Bytes fed after an error are
    /// dropped.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.compact();
        self.bufs.input.extend_from_slice(bytes);
    }

    /// The next event; `Ok(None)` when more bytes are needed.
    ///
    /// On `Err`, answer with [`DecodeError::status`] and close: the rest of
    /// the stream cannot be framed. Every later poll returns the same error.
    pub fn poll(&mut self) -> Result<Option<Event>, DecodeError> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        let r = self.step();
        if let Err(e) = r {
            self.state = State::Failed(e);
        }
        r
    }

    /// The current request's head, from HeadComplete until the poll after
    /// RequestComplete.
    #[must_use]
    pub fn head(&self) -> Option<RequestHead<'_>> {
        let info = self.state.head()?;
        let bytes = &self.bufs.input[self.head_start..self.head_start + info.layout.len];
        Some(RequestHead::new(bytes, info, &self.bufs.fields))
    }

    /// The body decoded so far; all of it at RequestComplete.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.bufs.body
    }

    /// Drops the body decoded so far, for a caller that has taken it (a
    /// body streamed to its consumer as it arrives): the decoder then holds
    /// at most one read's worth of body, whatever the body's length.
    pub fn discard_body(&mut self) {
        self.bufs.body.clear();
    }

    /// Bytes fed and not consumed yet (a partial head counts).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.bufs.input.len() - self.pos
    }

    /// Bytes held of a head not parsed yet: what a slowloris connection
    /// makes the server keep (at most `max_head_bytes` before the decoder
    /// answers 431). Zero once the head is parsed.
    #[must_use]
    pub fn partial_head_bytes(&self) -> usize {
        match self.state {
            State::Head { .. } => self.buffered(),
            State::Request { .. } | State::Failed(_) => 0,
        }
    }

    /// No request in progress and nothing buffered: the connection waits for
    /// the next request (keep-alive). A request that was completed and not
    /// yet dropped by a poll counts as finished.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        (matches!(self.state, State::Head { .. }) || self.state.is_complete())
            && self.buffered() == 0
    }

    /// Hands the buffers out (cleared, capacity kept) when idle, so the
    /// idle connection holds no memory. A completed request still held is
    /// dropped. `None` when not idle.
    pub fn reclaim(&mut self) -> Option<DecodeBuffers> {
        if !self.is_idle() {
            return None;
        }
        self.next_request();
        let mut bufs = mem::take(&mut self.bufs);
        bufs.clear();
        self.head_start = 0;
        self.pos = 0;
        Some(bufs)
    }

    /// Back to the state of a new connection's decoder, keeping its
    /// buffers' capacity, when idle (see [`is_idle`](Self::is_idle)); a
    /// completed request still held is dropped. `false`, and nothing
    /// changes, when not idle. For pooling whole decoders: an idle
    /// connection then holds none.
    pub fn reset_if_idle(&mut self) -> bool {
        if !self.is_idle() {
            return false;
        }
        self.next_request();
        self.bufs.clear();
        self.head_start = 0;
        self.pos = 0;
        true
    }

    /// Heap bytes the decoder's buffers keep allocated.
    #[must_use]
    pub fn retained_bytes(&self) -> usize {
        self.bufs.retained_bytes()
    }

    /// Gives the decoder (pooled) buffers to use; meant for before the next
    /// feed after [`reclaim`](Self::reclaim). Anything the decoder holds is
    /// carried over, so lending is always safe.
    pub fn lend(&mut self, mut bufs: DecodeBuffers) {
        bufs.clear();
        bufs.input.extend_from_slice(&self.bufs.input);
        bufs.body.extend_from_slice(&self.bufs.body);
        bufs.fields.extend_from_slice(&self.bufs.fields);
        if bufs.scratch.capacity() < self.bufs.scratch.capacity() {
            mem::swap(&mut bufs.scratch, &mut self.bufs.scratch);
        }
        self.bufs = bufs;
    }

    fn step(&mut self) -> Result<Option<Event>, DecodeError> {
        if self.state.is_complete() {
            self.next_request();
        }
        match &mut self.state {
            State::Head { .. } => self.poll_head(),
            State::Request { body, .. } => {
                let (event, consumed) =
                    body.poll(&self.bufs.input[self.pos..], &mut self.bufs.body)?;
                self.pos += consumed;
                Ok(event)
            }
            State::Failed(_) => unreachable!("handled in poll"),
        }
    }

    fn poll_head(&mut self) -> Result<Option<Event>, DecodeError> {
        if matches!(self.state, State::Head { started: false, .. }) {
            self.skip_empty_lines()?;
            // A lone CR may be the first half of an empty line still to be
            // skipped: it starts nothing yet, and the head reader must not
            // see it (keeps feeding split-invariant).
            if self.bufs.input[self.head_start..] == *b"\r" {
                return Ok(None);
            }
        }
        let State::Head { started, reader } = &mut self.state else {
            unreachable!("poll_head runs while reading a head");
        };
        let DecodeBuffers {
            input,
            fields,
            scratch,
            ..
        } = &mut self.bufs;
        let head = &input[self.head_start..];
        let Some(layout) = reader.poll(head, &self.limits, scratch, fields)? else {
            if !*started && !head.is_empty() {
                *started = true;
                return Ok(Some(Event::HeadStarted));
            }
            return Ok(None);
        };
        let head_len = layout.len;
        let info = analyze(&head[..head_len], layout, fields, &self.limits)?;
        self.pos = self.head_start + head_len;
        let body = match info.body_kind() {
            BodyKind::None => Body::Length(0),
            BodyKind::Length(n) => Body::Length(n),
            BodyKind::Chunked => Body::Chunked(ChunkedDecoder::new(&self.limits)),
        };
        self.state = State::Request { head: info, body };
        Ok(Some(Event::HeadComplete))
    }

    /// RFC 9112 2.2: empty lines before a request line are ignored. They are
    /// consumed here rather than by the head reader so that they do not
    /// count as a started head: a keep-alive client that sends a stray CRLF
    /// after its request stays idle, judged by its idle deadline, and holds
    /// no buffer.
    /// Bounded: more than `max_head_bytes` of empty lines before one request
    /// is a 431 like any other oversized head.
    fn skip_empty_lines(&mut self) -> Result<(), DecodeError> {
        let input = &self.bufs.input;
        let mut at = self.head_start;
        loop {
            match &input[at..] {
                [b'\r', b'\n', ..] => at += 2,
                [b'\n', ..] => at += 1,
                _ => break,
            }
        }
        if at == self.head_start {
            return Ok(());
        }
        self.empty_lines += at - self.head_start;
        if self.empty_lines > self.limits.max_head_bytes {
            return Err(DecodeError::HeadTooLarge);
        }
        if at == input.len() {
            self.bufs.input.clear();
            at = 0;
        }
        self.head_start = at;
        self.pos = at;
        Ok(())
    }

    /// Drops the finished request and starts reading the next head.
    fn next_request(&mut self) {
        self.bufs.body.clear();
        self.bufs.fields.clear();
        self.head_start = self.pos;
        if self.pos == self.bufs.input.len() {
            self.bufs.input.clear();
            self.head_start = 0;
            self.pos = 0;
        }
        self.state = State::new_head();
        self.empty_lines = 0;
    }

    /// Drops consumed bytes before new ones are appended, keeping the
    /// current head (if any) at the buffer's start. Offsets in the head are
    /// relative to its start, so moving it is free of bookkeeping.
    fn compact(&mut self) {
        let input = &mut self.bufs.input;
        let head_len = self.state.head().map_or(0, |i| i.layout.len);
        let head_end = self.head_start + head_len;
        let removable = self.head_start + (self.pos - head_end);
        if removable == 0 {
            return;
        }
        if self.head_start > 0 {
            input.copy_within(self.head_start..head_end, 0);
        }
        input.copy_within(self.pos.., head_len);
        let len = input.len();
        input.truncate(len - removable);
        self.head_start = 0;
        self.pos = head_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection holding a partial head (slowloris) pays for the
    /// decoder and the bytes received, nothing more: no header slots, no
    /// field positions. It held 3 slots (96 bytes) for this head before.
    #[test]
    fn a_partial_head_holds_only_its_bytes() {
        let mut d = Decoder::new(Limits::default());
        d.feed(b"GET / HTTP/1.1\r\nHost: memory\r\n");
        assert_eq!(d.poll(), Ok(Some(Event::HeadStarted)));
        d.feed(b"X-Slow: 1\r\n");
        assert_eq!(d.poll(), Ok(None));
        assert_eq!(d.bufs.scratch.capacity(), 0);
        assert_eq!(d.bufs.fields.capacity(), 0);
        assert_eq!(d.bufs.body.capacity(), 0);
    }

    /// The decoder is boxed per connection with a request in progress; what
    /// it keeps while reading a head and after parsing one share storage
    /// (`State`). It was 416 bytes with both side by side, and 336 with
    /// `usize` offsets into the head.
    #[test]
    fn decoder_stays_small() {
        let size = mem::size_of::<Decoder>();
        assert!(size <= 296, "Decoder grew to {size} bytes");
    }
}
