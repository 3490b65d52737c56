//! systemd's notification protocol (sd_notify(3)) for `Type=notify` units:
//! one datagram per state change to the socket named by `NOTIFY_SOCKET`, a
//! path or, after `@`, a name in the abstract namespace. Without the
//! variable (not under systemd) nothing is sent.
//!
//! `ringwall serve` sends `READY=1` once every worker accepts, `STOPPING=1`
//! when a stop begins, and `MAINPID=<successor>` when it hands its sockets
//! over after SIGUSR2, so that systemd follows the new process instead of
//! taking the old one's exit for the service's. Not `WATCHDOG=1`: that
//! needs a sign that every worker's loop still turns, which the engine
//! does not give (an idle worker sleeps in the kernel until an event).

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a unit that may notify.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (`READY=1`, `STOPPING=1`, `MAINPID=N`, newline-separated
/// assignments) to systemd if it listens. A failure is logged, not
/// returned: the server serves whether or not systemd hears of it.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        tracing::warn!(
            "cannot tell systemd {state:?} through {NOTIFY_SOCKET}={}: {e}",
            socket.to_string_lossy()
        );
    }
}

fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let addr = match socket.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
        [b'/', ..] => SocketAddr::from_pathname(socket)?,
        // systemd 253 may also pass `vsock:CID:PORT`, for a service in a VM.
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor an @abstract name",
            ))
        }
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the datagram was cut short",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn received(listener: &UnixDatagram) -> String {
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("a datagram arrives");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_socket_path() {
        let path = std::env::temp_dir().join(format!("ringwall-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(received(&listener), "READY=1");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn sends_to_an_abstract_name_after_an_at_sign() {
        let name = format!("ringwall-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(received(&listener), "STOPPING=1");
    }

    #[test]
    fn refuses_what_is_neither_a_path_nor_an_abstract_name() {
        let err = send(OsStr::new("vsock:2:1234"), "READY=1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(send(OsStr::new(""), "READY=1").is_err());
    }
}
