//! One sample a second of what the server holds, printed as it is taken.
//!
//! ```text
//!   /proc/PID/fd          ─► fds      descriptors open
//!   /proc/PID/status      ─► rss      VmRSS
//!   /proc/net/tcp, tcp6   ─► on the server's port: connections it holds
//!                            (open), connections it closed that the kernel
//!                            is still finishing (closing), and Send-Q summed
//! ```
//!
//! The process cannot see bytes it has handed to the kernel; Send-Q and the
//! closing count show what slow readers pin there, descriptor or not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::peers::procfs;
use crate::peers::tcp_table::{self, PortUse};

/// Where the soak is when a sample is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Legit load only, before the baseline.
    Warmup,
    /// Every class running.
    Soak,
    /// Past the soak's end, while started exchanges finish.
    Tail,
    /// Every client gone: waiting for descriptors and memory to come back.
    Settle,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Soak => "soak",
            Phase::Tail => "tail",
            Phase::Settle => "settle",
        }
    }
}

/// The server's resources at one moment; `None` where unreadable (the
/// process is gone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub fds: Option<usize>,
    pub rss: Option<u64>,
    pub port: Option<PortUse>,
}

/// Reads the server's resources now.
pub fn read(pid: i32, port: u16) -> Reading {
    Reading {
        fds: procfs::fd_count(pid).ok(),
        rss: procfs::process_rss(pid).ok(),
        port: tcp_table::read()
            .ok()
            .map(|t| tcp_table::port_use(&t, port)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Since the sampler started.
    pub at: Duration,
    pub phase: Phase,
    pub reading: Reading,
}

/// The column heads of [`row`].
pub fn header() -> String {
    format!(
        "{:>6}  {:<6}  {:>5}  {:>7}  {:>5}  {:>8}  {:>10}",
        "t", "phase", "open", "closing", "fds", "rss MiB", "Send-Q KiB"
    )
}

/// One sample, aligned under [`header`].
pub fn row(s: &Sample) -> String {
    let r = &s.reading;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    format!(
        "{:>5}s  {:<6}  {:>5}  {:>7}  {:>5}  {:>8}  {:>10}",
        s.at.as_secs(),
        s.phase.name(),
        or_dash(r.port.map(|p| p.open.to_string())),
        or_dash(r.port.map(|p| p.closing.to_string())),
        or_dash(r.fds.map(|n| n.to_string())),
        or_dash(r.rss.map(mib)),
        or_dash(r.port.map(|p| format!("{:.0}", p.send_q as f64 / 1024.0))),
    )
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The largest value of each column over the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    pub fds: usize,
    pub rss: u64,
    pub send_q: u64,
    pub open: usize,
    pub closing: usize,
}

pub fn peaks(samples: &[Sample]) -> Peaks {
    let mut p = Peaks::default();
    for r in samples.iter().map(|s| &s.reading) {
        p.fds = p.fds.max(r.fds.unwrap_or(0));
        p.rss = p.rss.max(r.rss.unwrap_or(0));
        if let Some(port) = r.port {
            p.send_q = p.send_q.max(port.send_q);
            p.open = p.open.max(port.open);
            p.closing = p.closing.max(port.closing);
        }
    }
    p
}

struct Shared {
    phase: Phase,
    /// Once the soak runs: its end, after which a sample is `Tail`.
    soak_end: Option<Instant>,
}

/// Samples the server once a second on its own thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    handle: JoinHandle<Vec<Sample>>,
}

pub const EVERY: Duration = Duration::from_secs(1);

impl Sampler {
    /// Starts sampling `pid` and `port`, printing every `print_every`th
    /// sample. Stops by itself after `max_samples`.
    pub fn start(
        pid: i32,
        port: u16,
        print_every: usize,
        max_samples: usize,
    ) -> std::io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared {
            phase: Phase::Warmup,
            soak_end: None,
        }));
        let (stop2, shared2) = (Arc::clone(&stop), Arc::clone(&shared));
        let print_every = print_every.max(1);
        let handle = thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                println!("{}", header());
                let origin = Instant::now();
                let mut samples = Vec::new();
                for k in 0..max_samples {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    let phase = {
                        let s = shared2.lock().unwrap_or_else(|e| e.into_inner());
                        match s.soak_end {
                            Some(end) if s.phase == Phase::Soak && Instant::now() > end => {
                                Phase::Tail
                            }
                            _ => s.phase,
                        }
                    };
                    let sample = Sample {
                        at: origin.elapsed(),
                        phase,
                        reading: read(pid, port),
                    };
                    if k % print_every == 0 {
                        println!("{}", row(&sample));
                    }
                    samples.push(sample);
                    sleep_until(origin + EVERY * (k as u32 + 1), &stop2);
                }
                samples
            })?;
        Ok(Sampler {
            stop,
            shared,
            handle,
        })
    }

    pub fn set_phase(&self, phase: Phase, soak_end: Option<Instant>) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.phase = phase;
        s.soak_end = soak_end;
    }

    /// Stops sampling and returns every sample taken.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Sleeps until `at`, in slices short enough to notice `stop` promptly.
fn sleep_until(at: Instant, stop: &AtomicBool) {
    let slice = Duration::from_millis(50);
    // Bounded: `at` is at most one interval away.
    for _ in 0..=(EVERY.as_millis() / slice.as_millis()) {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(left.min(slice));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: u64, fds: usize, rss_mib: u64, send_q: u64) -> Sample {
        Sample {
            at: Duration::from_secs(secs),
            phase: Phase::Soak,
            reading: Reading {
                fds: Some(fds),
                rss: Some(rss_mib << 20),
                port: Some(PortUse {
                    open: fds / 2,
                    closing: 1,
                    send_q,
                }),
            },
        }
    }

    #[test]
    fn peaks_are_the_largest_of_each_column() {
        let p = peaks(&[sample(1, 10, 50, 4096), sample(2, 30, 20, 0)]);
        assert_eq!((p.fds, p.rss, p.send_q, p.open), (30, 50 << 20, 4096, 15));
    }

    #[test]
    fn a_row_lines_up_under_the_header() {
        let r = row(&sample(12, 40, 7, 10 * 1024));
        assert_eq!(r.len(), header().len(), "{r}\n{}", header());
        assert!(r.ends_with("10"), "{r}");
        let gone = Sample {
            reading: Reading::default(),
            ..sample(13, 0, 0, 0)
        };
        assert!(row(&gone).contains('-'));
    }

    #[test]
    fn own_process_reads() {
        let r = read(std::process::id() as i32, 1);
        assert!(r.fds.is_some_and(|n| n > 0) && r.rss.is_some_and(|b| b > 0));
        assert!(r.port.is_some());
    }
}
