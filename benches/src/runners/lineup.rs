//! The servers in a run: which ones were asked for, starting each one or
//! saying plainly why it is skipped.

use crate::peers::{Peer, PeerConfig, ServerKind};

/// The default `--servers`: ringwall first, so ratios read against it.
pub const DEFAULT_SERVERS: &str = "ringwall,hyper,nginx,go";

/// Starts `kind`, or prints one line saying why it is skipped. A missing
/// peer never fails the run.
pub fn start_or_skip(kind: ServerKind, config: &PeerConfig) -> Option<Peer> {
    match Peer::start(kind, config) {
        Ok(peer) => Some(peer),
        Err(e) => {
            println!("{kind}: skipped: {e}");
            None
        }
    }
}

/// The worker count every server gets: `--workers`, or one per core.
pub fn workers(asked: Option<usize>) -> usize {
    asked.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Servers in the order asked, each once.
pub fn dedup(servers: &[ServerKind]) -> Vec<ServerKind> {
    let mut seen = Vec::new();
    for s in servers {
        if !seen.contains(s) {
            seen.push(*s);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_keep_their_order_without_repeats() {
        let asked = [
            ServerKind::Nginx,
            ServerKind::Ringwall,
            ServerKind::Nginx,
            ServerKind::Go,
        ];
        assert_eq!(
            dedup(&asked),
            vec![ServerKind::Nginx, ServerKind::Ringwall, ServerKind::Go]
        );
    }
}
