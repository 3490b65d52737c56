//! A server grows the process's descriptor table for its connection limit
//! when it starts, not during the first burst of accepts: the kernel grows
//! a table shared by several threads only after an RCU grace period
//! (`expand_fdtable` calls `synchronize_rcu()`), and the accepting worker
//! waited for it several times per burst (5,000 connections opened at once:
//! close overshoot p99 about 90 ms against about 40 with the table grown
//! first; BENCHMARKS-history.md, "At the floor").
//!
//! This binary holds this one test: the table's size is per process, and
//! any other test opening descriptors would grow it too.

use ringwall_tests::{app, builder, raise_nofile_limit, start_or_skip};

/// The process's descriptor table size (`FDSize` in /proc/self/status).
fn fd_table_slots() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("FDSize in /proc/self/status")
}

#[test]
fn a_started_server_has_grown_the_descriptor_table_for_its_connections() {
    const MAX_CONNECTIONS: usize = 2000;
    let limit = raise_nofile_limit(u64::MAX).expect("RLIMIT_NOFILE");
    if limit < MAX_CONNECTIONS as u64 + 256 {
        eprintln!("SKIP: RLIMIT_NOFILE is {limit}, too low to size a table for {MAX_CONNECTIONS} connections");
        return;
    }
    let before = fd_table_slots();
    assert!(
        before < MAX_CONNECTIONS,
        "the table is already {before} slots: this test would prove nothing"
    );
    let Some(server) = start_or_skip(builder().max_connections(MAX_CONNECTIONS), app) else {
        return;
    };
    let after = fd_table_slots();
    server.shutdown().expect("a clean shutdown");
    assert!(
        after >= MAX_CONNECTIONS,
        "{after} descriptor slots after starting a server for {MAX_CONNECTIONS} connections (before: {before})"
    );
}
