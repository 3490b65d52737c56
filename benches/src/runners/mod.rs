//! The benchmark runners behind `ringwall-bench deadline`, `throughput` and
//! `memory`: each starts ringwall and its peers ([`crate::peers`]), plus any
//! server it was pointed at and did not start ([`external`], `--target`),
//! drives them with the same client settings in the same run, and prints one
//! table with ratios against ringwall.

pub mod deadline;
pub mod external;
pub mod lineup;
pub mod memory;
pub mod output;
pub mod scale;
pub mod summary;
pub mod svg;
pub mod table;
pub mod throughput;
