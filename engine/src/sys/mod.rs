//! The system calls the engine makes outside a ring: listener setup and
//! per-connection socket options, the close sequence, the descriptor
//! table, malloc's tunables, and the clocks. Every `unsafe` block here
//! says which kernel contract it relies on.

pub(crate) mod clock;
pub(crate) mod malloc;
pub(crate) mod socket;
