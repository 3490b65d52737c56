//! The PROXY protocol header in front of a connection's first request.

use std::collections::HashMap;
use std::net::SocketAddr;

use ringwall_h1::{parse_proxy_header, ProxyHeaderError, ProxyStatus, MAX_V2_HEADER_BYTES};

use super::connection::Connection;

/// Reads a connection's PROXY header from `input`, the bytes of one read:
/// returns the bytes after the header (empty while it is incomplete) and,
/// once it is whole, the client address it carried. A header that arrived
/// in pieces is gathered in `pending` under the slot's `key`; one that
/// arrives whole is parsed in place and copies nothing.
pub(super) fn take_proxy_header<'a>(
    conn: &mut Connection,
    pending: &mut HashMap<usize, Vec<u8>>,
    key: usize,
    input: &'a [u8],
) -> Result<(&'a [u8], Option<SocketAddr>), ProxyHeaderError> {
    let (status, earlier) = match pending.get_mut(&key) {
        None => (parse_proxy_header(input), 0),
        Some(gathered) => {
            let earlier = gathered.len();
            // Up to the cap only: a prefix that long is always decided, so
            // nothing more than one header is ever held.
            let room = MAX_V2_HEADER_BYTES.saturating_sub(earlier);
            gathered.extend_from_slice(&input[..input.len().min(room)]);
            (parse_proxy_header(gathered), earlier)
        }
    };
    match status {
        Ok(ProxyStatus::Incomplete) => {
            if earlier == 0 {
                pending.insert(key, input.to_vec());
            }
            Ok((&[], None))
        }
        Ok(ProxyStatus::Done { consumed, source }) => {
            if earlier > 0 {
                pending.remove(&key);
            }
            conn.awaiting_proxy_header = false;
            // The earlier bytes were an incomplete header, so the header
            // ends inside this read.
            Ok((&input[consumed - earlier..], source))
        }
        Err(e) => {
            pending.remove(&key);
            Err(e)
        }
    }
}
