//! nginx as a peer: a configuration generated into a private directory from
//! `benches/peers/nginx/nginx.conf.tmpl`, run as `nginx -p DIR -c DIR/nginx.conf`
//! in the foreground (`daemon off`) with a master and `workers` workers.
//!
//! Deadlines: `client_header_timeout` = header, `client_body_timeout` = body,
//! `keepalive_timeout` = idle, `send_timeout` = write. The last two of these
//! are nginx's "between two successive reads/writes", not totals.
//! Echo needs `libnginx-mod-http-echo`; without it POST answers 501 and the
//! runners leave nginx out of echo loads.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::deadlines::format_duration;
use super::process::{current_nofile_limit, find_executable, ServerProcess};
use super::scratch::Scratch;
use super::{Deadlines, PeerConfig, StartError};

const TEMPLATE: &str = include_str!("../../peers/nginx/nginx.conf.tmpl");

const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"];

const ECHO_MODULE_PATHS: &[&str] = &[
    "/usr/lib/nginx/modules/ngx_http_echo_module.so",
    "/usr/lib64/nginx/modules/ngx_http_echo_module.so",
    "/usr/share/nginx/modules/ngx_http_echo_module.so",
];

/// Everything the generated configuration depends on.
#[derive(Clone, Debug)]
pub struct NginxParams<'a> {
    pub addr: SocketAddr,
    /// The prefix directory: pid file, error log, temp paths, static files.
    pub dir: &'a Path,
    pub workers: usize,
    pub deadlines: Deadlines,
    pub max_connections: usize,
    /// The descriptor limit nginx inherits (`RLIMIT_NOFILE`): workers ask for
    /// it and no more, and `worker_connections` stays within it, so nginx
    /// neither fails a `setrlimit` nor warns at start.
    pub nofile: u64,
    /// `Some(path)` loads the echo module from `path`.
    pub echo_module: Option<&'a Path>,
    /// nginx started as root drops its workers to `nobody` unless told
    /// `user root;`, and `nobody` cannot read the private directory.
    pub run_as_root: bool,
}

/// The configuration text for `params`.
pub fn nginx_config(p: &NginxParams<'_>) -> String {
    let worker_connections =
        (p.max_connections as u64 + 1024).min(p.nofile.saturating_sub(64).max(1024));
    let echo = if p.echo_module.is_some() {
        "echo_read_request_body;\n            echo_request_body;"
    } else {
        "return 501;"
    };
    let load_echo = match p.echo_module {
        Some(path) => format!("load_module {};", path.display()),
        None => "# echo module not installed: POST answers 501".to_string(),
    };
    let user = if p.run_as_root { "user root;" } else { "" };
    let replacements: [(&str, String); 12] = [
        ("@USER@", user.to_string()),
        ("@LOAD_ECHO@", load_echo),
        ("@WORKERS@", p.workers.to_string()),
        ("@NOFILE@", p.nofile.to_string()),
        ("@WORKER_CONNECTIONS@", worker_connections.to_string()),
        ("@HEADER_TIMEOUT@", format_duration(p.deadlines.header)),
        ("@BODY_TIMEOUT@", format_duration(p.deadlines.body)),
        ("@IDLE_TIMEOUT@", format_duration(p.deadlines.idle)),
        ("@WRITE_TIMEOUT@", format_duration(p.deadlines.write)),
        ("@ADDR@", p.addr.to_string()),
        ("@ECHO@", echo.to_string()),
        ("@DIR@", p.dir.display().to_string()),
    ];
    replacements
        .iter()
        .fold(TEMPLATE.to_string(), |text, (key, value)| {
            text.replace(key, value)
        })
}

pub fn echo_module() -> Option<PathBuf> {
    ECHO_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

pub(super) struct Started {
    pub process: ServerProcess,
    pub scratch: Scratch,
    pub echo: bool,
}

pub(super) fn start(config: &PeerConfig, addr: SocketAddr) -> Result<Started, StartError> {
    let nginx = find_executable("nginx", SBIN_DIRS).ok_or_else(|| StartError::Missing {
        reason: "nginx is not installed (apt-get install -y nginx)".into(),
    })?;
    let failed = |what: &str, e: &dyn std::fmt::Display| StartError::Failed {
        reason: format!("{what}: {e}"),
    };
    let scratch = Scratch::new("nginx").map_err(|e| failed("temp dir", &e))?;
    let dir = scratch.path();
    for size in &config.byte_sizes {
        let static_dir = dir.join("static/bytes");
        fs::create_dir_all(&static_dir).map_err(|e| failed("static dir", &e))?;
        fs::write(static_dir.join(size.to_string()), vec![b'x'; *size])
            .map_err(|e| failed("static file", &e))?;
    }
    let echo_module = echo_module();
    // SAFETY: geteuid has no preconditions and touches no memory.
    let run_as_root = unsafe { libc::geteuid() } == 0;
    let text = nginx_config(&NginxParams {
        addr,
        dir,
        workers: config.workers,
        deadlines: config.deadlines,
        max_connections: config.max_connections,
        nofile: current_nofile_limit(),
        echo_module: echo_module.as_deref(),
        run_as_root,
    });
    let conf = dir.join("nginx.conf");
    fs::write(&conf, text).map_err(|e| failed("write nginx.conf", &e))?;
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"));
    let process = ServerProcess::spawn(command, &dir.join("stderr.log"))
        .map_err(|e| failed("spawn nginx", &e))?;
    Ok(Started {
        process,
        scratch,
        echo: echo_module.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params<'a>(dir: &'a Path, echo: Option<&'a Path>) -> NginxParams<'a> {
        NginxParams {
            addr: "127.0.0.1:18080".parse().unwrap(),
            dir,
            workers: 2,
            deadlines: Deadlines {
                header: Duration::from_millis(1500),
                body: Duration::from_secs(10),
                idle: Duration::from_secs(60),
                write: Duration::from_secs(7),
            },
            max_connections: 10_000,
            nofile: 65_536,
            echo_module: echo,
            run_as_root: false,
        }
    }

    #[test]
    fn generated_config_carries_the_four_deadlines() {
        let text = nginx_config(&params(Path::new("/tmp/x"), None));
        assert!(text.contains("client_header_timeout 1500ms;"), "{text}");
        assert!(text.contains("client_body_timeout 10s;"));
        assert!(text.contains("keepalive_timeout 60s;"));
        assert!(text.contains("send_timeout 7s;"));
    }

    #[test]
    fn generated_config_fills_every_placeholder() {
        let text = nginx_config(&params(Path::new("/tmp/x"), None));
        assert!(!text.contains('@'), "unfilled placeholder in:\n{text}");
        assert!(text.contains("listen 127.0.0.1:18080 reuseport backlog=4096;"));
        assert!(text.contains("worker_processes 2;"));
        assert!(text.contains("worker_connections 11024;"));
        assert!(text.contains("worker_rlimit_nofile 65536;"));
        assert!(text.contains("pid /tmp/x/nginx.pid;"));
        assert!(text.contains("access_log off;"));
    }

    #[test]
    fn worker_connections_stay_within_the_descriptor_limit() {
        let mut p = params(Path::new("/tmp/x"), None);
        p.max_connections = 100_000;
        p.nofile = 20_000;
        let text = nginx_config(&p);
        assert!(text.contains("worker_connections 19936;"), "{text}");
        assert!(text.contains("worker_rlimit_nofile 20000;"));
    }

    #[test]
    fn echo_location_uses_the_module_only_when_it_is_loaded() {
        let without = nginx_config(&params(Path::new("/tmp/x"), None));
        assert!(without.contains("return 501;"));
        assert!(!without.contains("load_module"));
        let module = Path::new("/usr/lib/nginx/modules/ngx_http_echo_module.so");
        let with = nginx_config(&params(Path::new("/tmp/x"), Some(module)));
        assert!(with.contains("load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;"));
        assert!(with.contains("echo_request_body;"));
    }

    #[test]
    fn root_runs_workers_as_root() {
        let mut p = params(Path::new("/tmp/x"), None);
        assert!(!nginx_config(&p).contains("user root;"));
        p.run_as_root = true;
        assert!(nginx_config(&p).contains("user root;"));
    }
}
