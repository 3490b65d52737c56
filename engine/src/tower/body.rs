//! The request body a service reads: streamed from the connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::{BodyError, RequestBody};

/// A request body: streamed from the connection as it arrives.
#[derive(Debug, Default)]
pub struct Body {
    kind: BodyKind,
}

#[derive(Debug, Default)]
enum BodyKind {
    #[default]
    Empty,
    Full(Bytes),
    Streamed(RequestBody),
}

impl Body {
    /// A body with nothing in it.
    pub fn empty() -> Body {
        Body::default()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body {
            kind: BodyKind::Full(bytes),
        }
    }
}

impl From<RequestBody> for Body {
    fn from(body: RequestBody) -> Body {
        Body {
            kind: BodyKind::Streamed(body),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            BodyKind::Empty => Poll::Ready(None),
            BodyKind::Full(_) => {
                let BodyKind::Full(bytes) = std::mem::take(&mut self.kind) else {
                    unreachable!("matched Full above");
                };
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            BodyKind::Streamed(body) => body
                .poll_chunk(cx)
                .map(|chunk| chunk.map(|piece| piece.map(|bytes| Frame::data(Bytes::from(bytes))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Empty => SizeHint::with_exact(0),
            BodyKind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            BodyKind::Streamed(body) => match body.content_length() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}
