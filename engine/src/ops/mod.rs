//! Operations: socket activation and the hand-over to a successor (with
//! the fd-passing protocol both ends share), the counters and their
//! Prometheus text, and the engine's events. Nothing here is on a
//! request's path except counting.

pub(crate) mod activation;
pub(crate) mod fd_passing;
pub(crate) mod handover;
pub(crate) mod log;
pub(crate) mod prometheus;
pub(crate) mod stats;
