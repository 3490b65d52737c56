//! Admission: the caps claimed for an accepted socket, its slot and its
//! header deadline, or the best-effort 503 of a refusal.

use super::*;

impl<H: Handler> Driver<H> {
    /// Takes an accepted socket: a slot with its header deadline running,
    /// or a refusal (connection cap, per-address cap, shutdown). `peer` is
    /// needed only when [`Driver::needs_peer_on_accept`].
    pub fn admit(&mut self, fd: RawFd, peer: Option<SocketAddr>) -> Admission {
        if self.shutting_down && !self.handing_over {
            self.counters().count_close(CloseReason::Shutdown, false);
            return Admission::Dropped;
        }
        // Claim before taking a slot: one CAS, never check-then-add: an accept
        // storm overruns a cap that is checked and then incremented.
        if !self.shared.cap.try_claim() {
            self.encode_refusal(CloseReason::ConnectionCap);
            return Admission::Refused;
        }
        let mut ip_bucket = NO_IP_BUCKET;
        if let Some(per_ip) = &self.shared.per_ip {
            // A peer already gone has no address: admitted uncounted, its
            // first read ends it.
            if let Some(peer) = peer {
                match per_ip.try_claim(&peer) {
                    Some(bucket) => ip_bucket = bucket,
                    None => {
                        self.shared.cap.release();
                        self.encode_refusal(CloseReason::PerIpCap);
                        return Admission::Refused;
                    }
                }
            }
        }
        // The cap claimed above keeps the slots from filling; were they
        // full anyway, the connection is refused rather than the table
        // grown past the bound the backend relies on.
        let Some(slot) = self.conns.vacant_entry() else {
            if let (Some(per_ip), true) = (&self.shared.per_ip, ip_bucket != NO_IP_BUCKET) {
                per_ip.release(ip_bucket);
            }
            self.shared.cap.release();
            self.encode_refusal(CloseReason::ConnectionCap);
            return Admission::Refused;
        };
        let key = slot.key();
        if key == self.generations.len() {
            self.generations.push(0);
        }
        let generation = next_generation(self.generations[key]);
        self.generations[key] = generation;
        let mut timers = self.new_conn_timers.clone();
        // The first head must arrive within header_timeout of accept.
        timers.on_accept(self.now);
        let mut conn = Connection::new(fd, generation, timers);
        conn.ip_bucket = ip_bucket;
        conn.awaiting_proxy_header = self.config.proxy_protocol;
        slot.insert(conn);
        self.counters().open_connections.incr();
        self.actions.push_back(Action::Read(key));
        self.sync_timer(key);
        Admission::Admitted { key, generation }
    }

    /// Encodes the best-effort 503 of a refused connection, counted under
    /// `reason`. nginx answers over-limit connections 503 too; a client
    /// seeing a bare close would retry at once.
    pub(super) fn encode_refusal(&mut self, reason: CloseReason) {
        self.counters().count_close(reason, false);
        self.refusal.clear();
        let canned = match reason {
            CloseReason::PerIpCap => Canned::PerIpCap,
            _ => Canned::ConnectionCap,
        };
        if encode_canned(
            &mut self.refusal,
            canned,
            &self.date,
            ringwall_h1::Version::Http11,
            false,
        ) {
            // Counted first: a client that reads the 503 sees the counter.
            self.counters().cap_responses.incr();
        } else {
            self.refusal.clear();
        }
    }
}
