//! Placeholder.
pub mod peers;
