//! The client-side commands of the `ringwall-bench` binary: `slowloris`, the
//! regression harness ([`crate::slowloris`] with a command line) for any
//! server that answers keep-alive requests as HTTP/1.1, and `load`.
//!
//! Each command returns `Ok(true)` when it passed, `Ok(false)` when it ran and
//! found a regression (exit status 1), and `Err` when it could not run (exit
//! status 2).

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::attack::AttackPaths;
use crate::json_report;
use crate::load::{run_load, LoadConfig, LoadMode, RequestSpec};
use crate::peers::parse_duration;
use crate::report;
use crate::slowloris::{self, Expectations, Mode, Progress};
use crate::verdict::ModeResult;

// The soak paces its drips as the harness does.
pub use crate::slowloris::default_interval;

/// Resolves `HOST:PORT`, preferring IPv4.
pub fn resolve(target: &str) -> io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot resolve `{target}` (want HOST:PORT): {e}"),
            )
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| io::Error::other(format!("`{target}` resolves to no address")))
}

/// One plain connect, so a server that is not there is named as such rather
/// than reported as a thousand connect errors.
pub fn probe(addr: SocketAddr) -> io::Result<()> {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(io::Error::new(
            e.kind(),
            format!("connect to {addr} refused: is the server running?"),
        )),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(io::Error::new(
            e.kind(),
            format!("connect to {addr} timed out after 2s: is the address right?"),
        )),
        Err(e) => Err(io::Error::new(e.kind(), format!("connect to {addr}: {e}"))),
    }
}

/// `hello`, `bytes:N`, `echo:N` or `get:/path`.
pub fn parse_request(text: &str) -> Result<RequestSpec, String> {
    let size = |n: &str| {
        n.parse::<usize>()
            .map_err(|_| format!("`{text}`: `{n}` is not a byte count"))
    };
    match text.split_once(':') {
        None if text == "hello" => Ok(RequestSpec::Hello),
        Some(("bytes", n)) => Ok(RequestSpec::Bytes(size(n)?)),
        Some(("echo", n)) => Ok(RequestSpec::Echo(size(n)?)),
        Some(("get", path)) if path.starts_with('/') => Ok(RequestSpec::Get(path.to_string())),
        _ => Err(format!("`{text}`: use hello, bytes:N, echo:N or get:/path")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadModeArg {
    #[value(name = "keepalive", alias = "keep-alive")]
    KeepAlive,
    Pipelined,
    Churn,
}

/// Arguments of `ringwall-bench load`.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// The server, HOST:PORT.
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum, default_value = "keepalive")]
    pub mode: LoadModeArg,
    /// Requests per pipelined batch.
    #[arg(long, default_value_t = 16)]
    pub depth: usize,
    #[arg(short = 'c', long, default_value_t = 64)]
    pub connections: usize,
    #[arg(short = 't', long, default_value_t = 2)]
    pub threads: usize,
    #[arg(short = 'd', long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after sending this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// hello (GET /, expects Hello, World!), bytes:N, echo:N, or get:/path
    /// (any framed 200).
    #[arg(long, value_parser = parse_request, default_value = "hello")]
    pub request: RequestSpec,
}

/// `load`: prints the report; fails when any response was wrong or none came.
pub fn load(args: &LoadArgs) -> io::Result<bool> {
    let target = resolve(&args.target)?;
    probe(target)?;
    let cfg = LoadConfig {
        target,
        mode: match args.mode {
            LoadModeArg::KeepAlive => LoadMode::KeepAlive,
            LoadModeArg::Pipelined => LoadMode::Pipelined { depth: args.depth },
            LoadModeArg::Churn => LoadMode::Churn,
        },
        connections: args.connections,
        threads: args.threads,
        duration: args.duration,
        max_requests: args.max_requests,
        pace: None,
        request: args.request.clone(),
    };
    println!("{}", report::describe_load(&cfg));
    let r = run_load(&cfg)?;
    println!("{r}");
    Ok(r.errors.total() == 0 && r.requests > 0)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegitExpect {
    /// 200 and exactly `Hello, World!` (ringwall and its peers).
    Hello,
    /// 200 with a correctly framed body of any content.
    Any,
}

/// Arguments of `ringwall-bench slowloris`.
#[derive(clap::Args, Clone, Debug)]
pub struct SlowlorisArgs {
    /// The server under test, HOST:PORT.
    #[arg(long)]
    pub target: String,
    /// The server's header deadline (from accept to a complete head).
    #[arg(long, value_parser = parse_duration)]
    pub expect_header_timeout: Duration,
    /// The server's body deadline; enables slow-body by default.
    #[arg(long, value_parser = parse_duration)]
    pub expect_body_timeout: Option<Duration>,
    /// The server's write (send) deadline; enables slow-read by default.
    #[arg(long, value_parser = parse_duration)]
    pub expect_write_timeout: Option<Duration>,
    /// The server's keep-alive idle timeout; bounds the idle hold.
    #[arg(long, value_parser = parse_duration)]
    pub expect_idle_timeout: Option<Duration>,
    /// Attack connections per mode.
    #[arg(short = 'c', long, default_value_t = 200)]
    pub connections: usize,
    /// Modes to run (default: slowloris, idle, and slow-body / slow-read when
    /// their timeouts are given).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub modes: Option<Vec<Mode>>,
    /// A close later than deadline + slack is a hang.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub slack: Duration,
    /// One byte per this interval (default: the mode's deadline / 10, within 10ms..1s).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Spread the attack's connects over this window.
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub open_over: Duration,
    /// How long idle connections sit (default: header timeout + 2 x slack,
    /// kept below the idle timeout minus slack).
    #[arg(long, value_parser = parse_duration)]
    pub idle_hold: Option<Duration>,
    /// Response size slow-read asks for: `{bytes}` in --slow-read-path. With
    /// a path of your own, the size of its response. It must outlast the
    /// server's send buffer, or its send finishes and no write deadline
    /// starts.
    #[arg(long, default_value_t = 1 << 20)]
    pub slow_read_bytes: usize,
    /// The target of slowloris' never-finished GET head.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub slowloris_path: String,
    /// The target slow-body POSTs its dripped 1,000,000-byte body to: a route
    /// that reads the body.
    #[arg(long, default_value = "/echo", value_name = "PATH")]
    pub slow_body_path: String,
    /// The target slow-read GETs and reads one byte per interval: a response
    /// of --slow-read-bytes (`{bytes}` is replaced by that number).
    #[arg(long, default_value = "/bytes/{bytes}", value_name = "PATH")]
    pub slow_read_path: String,
    /// The target of idle's one keep-alive GET before its silence.
    #[arg(long, default_value = "/", value_name = "PATH")]
    pub idle_path: String,
    /// Legit keep-alive connections running beside each attack (0: none).
    #[arg(long, default_value_t = 8)]
    pub legit_connections: usize,
    #[arg(long, default_value_t = 1)]
    pub legit_threads: usize,
    /// The path legit load requests.
    #[arg(long, default_value = "/")]
    pub legit_path: String,
    /// What a legit response must be.
    #[arg(long, value_enum, default_value = "any")]
    pub legit_expect: LegitExpect,
    /// Fail when legit throughput under attack drops below this share of its
    /// baseline (0: report only; machines running client and server together
    /// are noisy).
    #[arg(long, default_value_t = 0.0)]
    pub min_legit_kept: f64,
    /// Write every timed close as `mode,overshoot_ns` to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write the report (counts, overshoot percentiles, legit load, the
    /// verdict per mode and overall) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Fail when a timed mode's overshoot p99 exceeds this: a precision
    /// regression, not only a hang.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub max_p99: Option<Duration>,
    /// Fail slow-read when the server closes a timed-out reader with a FIN
    /// and response bytes keep arriving after the deadline (by default a
    /// warning): the server should reset it (SO_LINGER 0).
    #[arg(long)]
    pub require_reset_slow_read: bool,
}

impl SlowlorisArgs {
    /// The library's view of these flags.
    pub fn expectations(&self) -> Expectations {
        let mut e = Expectations::new(self.expect_header_timeout);
        e.body_timeout = self.expect_body_timeout;
        e.write_timeout = self.expect_write_timeout;
        e.idle_timeout = self.expect_idle_timeout;
        e.modes = self.modes.clone();
        e.connections = self.connections;
        e.slack = self.slack;
        e.interval = self.interval;
        e.open_over = self.open_over;
        e.idle_hold = self.idle_hold;
        e.slow_read_bytes = self.slow_read_bytes;
        e.paths = AttackPaths {
            slowloris: self.slowloris_path.clone(),
            slow_body: self.slow_body_path.clone(),
            slow_read: self.slow_read_path.clone(),
            idle: self.idle_path.clone(),
        };
        e.legit_connections = self.legit_connections;
        e.legit_threads = self.legit_threads;
        e.legit_request = match self.legit_expect {
            LegitExpect::Hello => RequestSpec::Hello,
            LegitExpect::Any => RequestSpec::Get(self.legit_path.clone()),
        };
        e.min_legit_kept = self.min_legit_kept;
        e.max_p99 = self.max_p99;
        e.require_reset_slow_read = self.require_reset_slow_read;
        e
    }
}

/// `slowloris`: runs [`slowloris::run`] with a line per mode as it goes,
/// then prints the table, the warnings and every failure, and writes the
/// CSV and JSON asked for; passes only when every mode's verdict does (see
/// [`crate::verdict`]).
pub fn slowloris(args: &SlowlorisArgs) -> io::Result<bool> {
    let expect = args.expectations();
    let target = resolve(&args.target)?;
    let report = slowloris::run_with_progress(target, &expect, |p| match p {
        Progress::Ready { nofile_limit } => println!(
            "slowloris harness against {target}: {} connections per mode opened over {:?}, \
             slack {:?}; legit keep-alive c={} ({}); RLIMIT_NOFILE {nofile_limit}",
            args.connections,
            args.open_over,
            args.slack,
            args.legit_connections,
            match args.legit_expect {
                LegitExpect::Hello => "expects Hello, World!".to_string(),
                LegitExpect::Any => format!("GET {}, any framed 200", args.legit_path),
            }
        ),
        Progress::Starting(m) => {
            print!("{:<10} deadline {:?} ... ", m.mode.name(), m.deadline);
            let _ = io::stdout().flush();
        }
        Progress::Finished(r) => println!("done in {:.2}s", r.elapsed.as_secs_f64()),
    })?;
    println!();
    print!("{}", report.table());
    println!(
        "(overshoot = close seen - deadline; early = more than 5ms before it; hang = open at \
         deadline + slack; after deadline = slow-read response bytes that arrived after it)"
    );
    for w in report.warnings() {
        println!("{w}");
    }
    if let Some(path) = &args.csv {
        write_csv(path, &report.modes)?;
        println!("overshoots written to {}", path.display());
    }
    if let Some(path) = &args.json {
        json_report::write(path, &report.to_json())?;
        println!("report written to {}", path.display());
    }
    println!();
    let passed = report.passed();
    if passed {
        let p99 = args.max_p99.map_or(String::new(), |max| {
            format!(", overshoot p99 within {max:?}")
        });
        println!("PASS: no hang, early close, false kill or legit error{p99}");
    } else {
        for f in report.failures() {
            println!("FAIL {f}");
        }
    }
    Ok(passed)
}

fn write_csv(path: &PathBuf, results: &[ModeResult]) -> io::Result<()> {
    let mut out = String::from("mode,overshoot_ns\n");
    for m in results {
        for o in &m.attack.overshoots_ns {
            out.push_str(&format!("{},{o}\n", m.name()));
        }
    }
    std::fs::write(path, out)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_specs_parse() {
        assert_eq!(parse_request("hello"), Ok(RequestSpec::Hello));
        assert_eq!(parse_request("bytes:4096"), Ok(RequestSpec::Bytes(4096)));
        assert_eq!(parse_request("echo:10"), Ok(RequestSpec::Echo(10)));
        assert_eq!(parse_request("get:/x"), Ok(RequestSpec::Get("/x".into())));
        assert!(parse_request("get:x").is_err());
        assert!(parse_request("bytes:lots").is_err());
    }

    #[test]
    fn refused_connect_names_the_likely_cause() {
        // Bind then drop: nothing listens on the port afterwards.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = probe(addr).unwrap_err();
        assert!(err.to_string().contains("is the server running?"), "{err}");
    }
}
