//! Server CPU time, resident memory and open descriptors, read from `/proc`.
//!
//! A server is a process tree: nginx is a master and its workers, the others
//! one process with threads (whose times `/proc/PID/stat` already sums). CPU
//! time is `utime + stime` (proc(5) fields 14 and 15, in clock ticks); memory
//! is `VmRSS` from `/proc/PID/status`. Both are summed over the tree, or read
//! for one process; descriptors are the entries of `/proc/PID/fd`.
//!
//! Context switches are per thread in Linux (`voluntary_ctxt_switches` and
//! `nonvoluntary_ctxt_switches` of `/proc/PID/task/TID/status`; the
//! process's own `status` shows its main thread's only), so they are summed
//! over every thread of every process of the tree. A thread that exits
//! between two readings takes its count with it: the servers measured here
//! keep their threads (io_uring's io-wq helpers are the exception, and come
//! and go only when work is punted to them).

use std::fs;
use std::io;
use std::time::Duration;

/// The fields of one `/proc/PID/stat` line that the runners use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    /// User-mode time, in clock ticks.
    pub utime: u64,
    /// Kernel-mode time, in clock ticks.
    pub stime: u64,
}

/// Parses a `/proc/PID/stat` line.
///
/// The second field is the command name in parentheses and may itself hold
/// spaces and `)`, so the fields after it are counted from the LAST `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    // After the name: field 3 (state) is index 0 here.
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcStat {
        pid,
        ppid: field(4)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
    })
}

/// `VmRSS` from a `/proc/PID/status` document, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// Context switches of one thread, or of a sum of threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtxSwitches {
    /// The thread gave up the CPU: it blocked (a wait with nothing ready).
    pub voluntary: u64,
    /// The scheduler took the CPU away (its slice ran out, or a woken
    /// thread preempted it).
    pub involuntary: u64,
}

impl CtxSwitches {
    /// What happened between `before` and `self`.
    pub fn since(self, before: CtxSwitches) -> CtxSwitches {
        CtxSwitches {
            voluntary: self.voluntary.saturating_sub(before.voluntary),
            involuntary: self.involuntary.saturating_sub(before.involuntary),
        }
    }
}

/// The two context-switch counts of a `/proc/PID/task/TID/status` document.
pub fn parse_ctxt_switches(status: &str) -> Option<CtxSwitches> {
    let count = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().parse().ok()
    };
    Some(CtxSwitches {
        voluntary: count("voluntary_ctxt_switches:")?,
        involuntary: count("nonvoluntary_ctxt_switches:")?,
    })
}

/// Every thread of `pid` alive now (the entries of `/proc/PID/task`).
pub fn threads(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every thread of `pid` and of its live descendants.
pub fn tree_threads(pid: i32) -> Vec<(i32, i32)> {
    process_tree(pid)
        .into_iter()
        .flat_map(|p| threads(p).into_iter().map(move |t| (p, t)))
        .collect()
}

/// Context switches so far of every live thread of `pid`'s process tree.
pub fn tree_ctxt_switches(pid: i32) -> io::Result<CtxSwitches> {
    let mut total = CtxSwitches::default();
    let mut read_any = false;
    for (p, t) in tree_threads(pid) {
        // A thread that exited between listing and reading counts nothing.
        let Ok(status) = fs::read_to_string(format!("/proc/{p}/task/{t}/status")) else {
            continue;
        };
        let c = parse_ctxt_switches(&status).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no ctxt_switches in /proc/{p}/task/{t}/status"),
            )
        })?;
        total.voluntary += c.voluntary;
        total.involuntary += c.involuntary;
        read_any = true;
    }
    if read_any {
        Ok(total)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no thread of {pid} readable in /proc"),
        ))
    }
}

/// Resident memory of `pid` alone, in bytes.
pub fn process_rss(pid: i32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no VmRSS in /proc/{pid}/status"),
        )
    })
}

/// Descriptors `pid` has open: sockets, the ring, eventfds, files.
pub fn fd_count(pid: i32) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Reads and parses `/proc/PID/stat`.
pub fn read_stat(pid: i32) -> io::Result<ProcStat> {
    let line = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&line).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable /proc/{pid}/stat: {line}"),
        )
    })
}

/// `pid` and all its descendants that are alive now.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(children(parent));
        i += 1;
    }
    tree
}

/// The children of `pid`: from `/proc/PID/task/*/children` where the kernel
/// has it (CONFIG_PROC_CHILDREN), otherwise by scanning `/proc` for the ppid.
fn children(pid: i32) -> Vec<i32> {
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        let mut found = Vec::new();
        let mut supported = false;
        for task in tasks.flatten() {
            if let Ok(list) = fs::read_to_string(task.path().join("children")) {
                supported = true;
                found.extend(
                    list.split_whitespace()
                        .filter_map(|w| w.parse::<i32>().ok()),
                );
            }
        }
        if supported {
            return found;
        }
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| read_stat(p).is_ok_and(|s| s.ppid == pid))
        .collect()
}

/// Clock ticks per second for the `utime`/`stime` fields.
fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf reads a constant of the C library; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// CPU time (user + system) used so far by `pid` and its live descendants.
pub fn tree_cpu_time(pid: i32) -> io::Result<Duration> {
    let cpu = tree_cpu_split(pid)?;
    Ok(cpu.user + cpu.system)
}

/// CPU time in user mode and in the kernel, apart: a server that spends its
/// time in syscalls and the TCP stack looks different from one that parses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSplit {
    pub user: Duration,
    pub system: Duration,
}

/// [`CpuSplit`] used so far by `pid` and its live descendants.
pub fn tree_cpu_split(pid: i32) -> io::Result<CpuSplit> {
    let (mut user, mut system) = (0, 0);
    for p in process_tree(pid) {
        match read_stat(p) {
            Ok(s) => {
                user += s.utime;
                system += s.stime;
            }
            // A descendant that exited between listing and reading.
            Err(_) if p != pid => {}
            Err(e) => return Err(e),
        }
    }
    let tick_ns = 1_000_000_000 / clock_ticks_per_sec();
    Ok(CpuSplit {
        user: Duration::from_nanos(user * tick_ns),
        system: Duration::from_nanos(system * tick_ns),
    })
}

/// Resident memory of `pid` and its live descendants, in bytes. Pages shared
/// between nginx's master and workers are counted once per process; the
/// runners only use differences, where that cancels out.
pub fn tree_rss(pid: i32) -> io::Result<u64> {
    let mut total = 0;
    for p in process_tree(pid) {
        match fs::read_to_string(format!("/proc/{p}/status")) {
            Ok(status) => total += parse_vm_rss(&status).unwrap_or(0),
            Err(_) if p != pid => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line from an nginx worker, with a command name holding a space
    // and a parenthesis to show why fields are counted from the last `)`.
    const STAT: &str = "4242 (nginx: wor) ker) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 \
                        377 58 0 0 20 0 1 0 123456 12345678 2345 18446744073709551615 1 1 0 0 \
                        0 0 0 16781312 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_line_yields_pid_ppid_and_cpu_ticks() {
        let s = parse_stat(STAT).expect("parses");
        assert_eq!(s.pid, 4242);
        assert_eq!(s.ppid, 4241);
        assert_eq!(s.utime, 377);
        assert_eq!(s.stime, 58);
    }

    #[test]
    fn truncated_stat_line_is_rejected() {
        assert_eq!(parse_stat("4242 (nginx) S 4241 4241"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tnginx\nVmPeak:\t  10000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(5120 * 1024));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    // From a ringwall worker thread; the keys end in the same suffix, so a
    // prefix match on the shorter one would read the wrong line.
    const TASK_STATUS: &str = "Name:\tringwall-w0\nState:\tS (sleeping)\nTgid:\t4300\n\
        Pid:\t4302\nThreads:\t4\nCpus_allowed_list:\t0-1\n\
        voluntary_ctxt_switches:\t812345\nnonvoluntary_ctxt_switches:\t2710\n";

    #[test]
    fn both_context_switch_counts_are_read_from_a_task_status() {
        assert_eq!(
            parse_ctxt_switches(TASK_STATUS),
            Some(CtxSwitches {
                voluntary: 812_345,
                involuntary: 2710,
            })
        );
    }

    #[test]
    fn task_status_without_both_counts_is_rejected() {
        assert_eq!(
            parse_ctxt_switches("Name:\tx\nvoluntary_ctxt_switches:\t3\n"),
            None
        );
        assert_eq!(
            parse_ctxt_switches("Name:\tx\nnonvoluntary_ctxt_switches:\t3\n"),
            None
        );
        assert_eq!(
            parse_ctxt_switches("voluntary_ctxt_switches:\tmany\nnonvoluntary_ctxt_switches:\t3\n"),
            None
        );
    }

    #[test]
    fn context_switches_since_never_go_negative() {
        let before = CtxSwitches {
            voluntary: 10,
            involuntary: 5,
        };
        let after = CtxSwitches {
            voluntary: 25,
            involuntary: 4,
        };
        assert_eq!(
            after.since(before),
            CtxSwitches {
                voluntary: 15,
                involuntary: 0,
            }
        );
    }

    #[test]
    fn own_threads_are_summed_and_a_sleep_is_a_voluntary_switch() {
        let me = std::process::id() as i32;
        let before = tree_ctxt_switches(me).expect("own task status");
        // A thread of the tree that lives through both readings and blocks
        // in between: its sleeps are voluntary switches.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            ready_tx.send(()).unwrap();
            rx.recv().unwrap();
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(1));
            }
            ready_tx.send(()).unwrap();
            rx.recv().unwrap();
        });
        ready_rx.recv().unwrap();
        let mid = tree_ctxt_switches(me).expect("own task status");
        tx.send(()).unwrap();
        ready_rx.recv().unwrap();
        let after = tree_ctxt_switches(me).expect("own task status");
        tx.send(()).unwrap();
        sleeper.join().unwrap();
        assert!(mid.voluntary >= before.voluntary);
        assert!(after.since(mid).voluntary >= 3, "{mid:?} then {after:?}");
        assert!(tree_threads(me).iter().all(|&(p, _)| p == me));
        assert!(tree_ctxt_switches(-1).is_err());
    }

    #[test]
    fn own_process_has_cpu_time_and_rss() {
        let me = std::process::id() as i32;
        assert_eq!(read_stat(me).expect("own stat").pid, me);
        assert!(tree_rss(me).expect("own rss") > 0);
        assert!(process_rss(me).expect("own rss") > 0);
        assert!(tree_cpu_time(me).is_ok());
    }

    #[test]
    fn own_descriptors_are_counted() {
        let me = std::process::id() as i32;
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let n = fd_count(me).expect("own fds");
        assert!(n >= 4, "stdin, stdout, stderr and the socket: {n}");
        assert!(fd_count(-1).is_err());
    }
}
