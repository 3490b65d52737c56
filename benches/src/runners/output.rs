//! Where results go: the `--out` directory, and the stamp (date, commit,
//! machine) every written table carries.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default `--out`.
pub const DEFAULT_OUT: &str = "target/bench-out";

/// Creates `dir` and writes `name` in it; returns the path written.
pub fn write(dir: &Path, name: &str, contents: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    fs::write(&path, contents)?;
    Ok(path)
}

/// `date (UTC), commit, cores, kernel` for the head of a results file.
pub fn stamp() -> String {
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown date".into());
    let commit =
        run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let kernel = run("uname", &["-r"]).unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{date}, commit {commit}{}, {cores} cores, Linux {kernel}, loopback",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        }
    )
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
