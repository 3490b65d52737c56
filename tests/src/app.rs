//! The benchmark app, the same as the `ringwall` binary's (it is the
//! engine's own `benchmark_app`): tests that use it check the behaviour a
//! benchmark run would see.

pub use ringwall::{benchmark_app as app, BENCHMARK_MAX_BYTES as MAX_BYTES_RESPONSE};
