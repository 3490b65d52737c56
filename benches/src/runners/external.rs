//! Servers a runner measures but did not start: `--target NAME=HOST:PORT[,PID]`.
//!
//! Someone benchmarking their own server puts it in the same table as the
//! floor and the peers, under the same client settings. The runner never
//! starts, stops or restarts it. With a PID its CPU time and RSS are read
//! from `/proc` like a started server's (summed over its process tree);
//! without one those columns show `-`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use crate::peers::{procfs, Peer, ServerKind, Usage};

/// One `--target` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalTarget {
    pub name: String,
    pub addr: SocketAddr,
    /// The server's PID, for the CPU and memory columns.
    pub pid: Option<i32>,
}

impl ExternalTarget {
    /// CPU time and RSS of its process tree, or `None` without a PID.
    pub fn usage(&self) -> io::Result<Option<Usage>> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        let cpu = procfs::tree_cpu_split(pid)?;
        Ok(Some(Usage {
            cpu: cpu.user + cpu.system,
            user: cpu.user,
            system: cpu.system,
            rss_bytes: procfs::tree_rss(pid)?,
        }))
    }
}

impl FromStr for ExternalTarget {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| format!("--target `{arg}`: {why} (want NAME=HOST:PORT[,PID])");
        let (name, rest) = arg
            .split_once('=')
            .ok_or_else(|| bad("no `=` after the name".into()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("empty name".into()));
        }
        if name.parse::<ServerKind>().is_ok() {
            return Err(bad(format!(
                "`{name}` is the name of a server the runner starts; pick another"
            )));
        }
        let (address, pid) = match rest.split_once(',') {
            Some((address, pid)) => (address, Some(pid)),
            None => (rest, None),
        };
        let addr = address
            .trim()
            .to_socket_addrs()
            .map_err(|e| bad(format!("bad address `{address}`: {e}")))?
            .next()
            .ok_or_else(|| bad(format!("address `{address}` resolves to nothing")))?;
        let pid = match pid {
            None => None,
            Some(pid) => {
                let pid: i32 = pid
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad(format!("PID `{pid}` is not a positive number")))?;
                procfs::read_stat(pid)
                    .map_err(|e| bad(format!("no process {pid}: /proc/{pid}/stat: {e}")))?;
                Some(pid)
            }
        };
        Ok(ExternalTarget {
            name: name.to_string(),
            addr,
            pid,
        })
    }
}

/// A server in a runner's table: one it started, or a `--target`.
#[derive(Debug)]
pub enum Server {
    Started(Peer),
    External(ExternalTarget),
}

impl Server {
    pub fn name(&self) -> String {
        match self {
            Server::Started(peer) => peer.kind().to_string(),
            Server::External(target) => target.name.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Started(peer) => peer.addr(),
            Server::External(target) => target.addr,
        }
    }

    /// The kind, for a server the runner started.
    pub fn kind(&self) -> Option<ServerKind> {
        match self {
            Server::Started(peer) => Some(peer.kind()),
            Server::External(_) => None,
        }
    }

    /// The PID of its process tree's root, if known.
    pub fn pid(&self) -> Option<i32> {
        match self {
            Server::Started(peer) => Some(peer.pid()),
            Server::External(target) => target.pid,
        }
    }

    /// CPU time and RSS, or `None` for a target given without a PID.
    pub fn usage(&self) -> io::Result<Option<Usage>> {
        match self {
            Server::Started(peer) => peer.usage().map(Some),
            Server::External(target) => target.usage(),
        }
    }
}

impl fmt::Display for ExternalTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)?;
        if let Some(pid) = self.pid {
            write!(f, ",{pid}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_address_and_pid_are_read() {
        let me = std::process::id() as i32;
        let t: ExternalTarget = format!("mine=127.0.0.1:8080,{me}").parse().unwrap();
        assert_eq!(t.name, "mine");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.pid, Some(me));
        assert!(t.usage().unwrap().is_some_and(|u| u.rss_bytes > 0));
        let t: ExternalTarget = "mine=localhost:80".parse().unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.pid, None);
        assert_eq!(t.usage().unwrap(), None);
    }

    #[test]
    fn bad_forms_are_refused_naming_the_argument() {
        for (arg, why) in [
            ("mine127.0.0.1:8080", "no `=`"),
            ("=127.0.0.1:8080", "empty name"),
            ("ringwall=127.0.0.1:8080", "a server the runner starts"),
            ("mine=127.0.0.1", "bad address"),
            ("mine=127.0.0.1:http", "bad address"),
            ("mine=127.0.0.1:8080,abc", "not a positive number"),
            ("mine=127.0.0.1:8080,-1", "not a positive number"),
            ("mine=127.0.0.1:8080,2147483647", "no process 2147483647"),
        ] {
            let err = arg.parse::<ExternalTarget>().unwrap_err();
            assert!(err.contains(&format!("`{arg}`")), "{arg}: {err}");
            assert!(err.contains(why), "{arg}: {err}");
        }
    }
}
