//! Placeholder.
pub mod peers;
pub mod runners;
