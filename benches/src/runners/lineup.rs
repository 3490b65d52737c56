//! The servers in a run: which ones were asked for, starting each one or
//! saying plainly why it is skipped.

use crate::peers::{Floor, Peer, PeerConfig, ServerKind};

/// The default `--servers`: ringwall first, so ratios read against it.
pub const DEFAULT_SERVERS: &str = "ringwall,hyper,nginx,go";

/// The default `--servers` of `throughput`: its floor, then the rest.
pub const THROUGHPUT_SERVERS: &str = "canned,ringwall,hyper,nginx,go";

/// The default `--servers` of `deadline`: its floor, then the rest.
pub const DEADLINE_SERVERS: &str = "closer,ringwall,hyper,nginx,go";

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

/// [`dedup`], without the floors of other runners (`floor` is this runner's,
/// `None` for a runner without one), each left out with a line saying why:
/// closer answers no request and canned closes no connection, so either
/// would only measure its own absence of an app.
pub fn lineup(servers: &[ServerKind], floor: Option<Floor>) -> Vec<ServerKind> {
    let (kept, left_out): (Vec<_>, Vec<_>) = dedup(servers)
        .into_iter()
        .partition(|k| k.floor_of().is_none() || k.floor_of() == floor);
    for kind in left_out {
        println!("{kind}: skipped: it is the floor of another runner");
    }
    kept
}

/// The order of round `round` (from 1): as given on odd rounds, reversed
/// on even ones, so over the rounds no server always runs first or last
/// (the first cell of a run meets a cold machine, the last one a warm,
/// perhaps throttled one).
pub fn round_order<T: Clone>(servers: &[T], round: usize) -> Vec<T> {
    let mut order = servers.to_vec();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
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

    #[test]
    fn a_runner_keeps_its_own_floor_only() {
        let asked = [ServerKind::Closer, ServerKind::Ringwall, ServerKind::Canned];
        assert_eq!(
            lineup(&asked, Some(Floor::Deadline)),
            vec![ServerKind::Closer, ServerKind::Ringwall]
        );
        assert_eq!(
            lineup(&asked, Some(Floor::Throughput)),
            vec![ServerKind::Ringwall, ServerKind::Canned]
        );
        assert_eq!(lineup(&asked, None), vec![ServerKind::Ringwall]);
    }

    #[test]
    fn every_other_round_runs_the_servers_in_reverse() {
        let servers = ["a", "b", "c"];
        assert_eq!(round_order(&servers, 1), ["a", "b", "c"]);
        assert_eq!(round_order(&servers, 2), ["c", "b", "a"]);
        assert_eq!(round_order(&servers, 3), ["a", "b", "c"]);
        assert_eq!(round_order(&servers, 4), ["c", "b", "a"]);
    }
}
