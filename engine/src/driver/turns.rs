//! Fairness: a connection that used its turn's budget yields, and resumes
//! after the next batch of completions, behind timers and everyone else.

use super::*;

impl<H: Handler> Driver<H> {
    /// The connection used its turn: the rest of its pipeline runs on a
    /// later loop turn.
    pub(super) fn yield_turn(&mut self, key: usize) {
        self.counters().turn_yields.incr();
        self.requeue(key);
    }

    pub(super) fn requeue(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if !conn.holds.add(Hold::Yielded) {
            return;
        }
        // Its next go starts with a whole budget.
        conn.decoded_since_rest = 0;
        // The server is behind, not the client: no body rate meanwhile.
        conn.timers.on_reading_paused();
        self.ready.push_back((key, conn.generation));
    }

    /// Gives each connection that yielded last turn its next turn. The
    /// backend calls it after each batch of completions, never before:
    /// one connection's backlog cannot delay timers or other connections.
    pub fn serve_ready(&mut self) {
        std::mem::swap(&mut self.ready, &mut self.serving);
        while let Some((key, generation)) = self.serving.pop_front() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.generation != generation || !conn.holds.remove(Hold::Yielded) {
                continue;
            }
            conn.holds.remove(Hold::InputFull);
            conn.timers.on_reading_resumed(self.now);
            if conn.phase == Phase::Open {
                self.process_input(key);
            }
            if self.wants_input(key) {
                self.actions.push_back(Action::Read(key));
            }
            self.sync_timer(key);
        }
    }
}
