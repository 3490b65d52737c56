//! The kernel's TCP socket table, `/proc/net/tcp` and `/proc/net/tcp6`:
//! which sockets sit on a server's port, in which state, and how many bytes
//! each still has to send.
//!
//! A server's process cannot see the bytes it has handed to the kernel. A
//! reader that never reads pins them in the socket's send queue, and a socket
//! the server has already closed keeps them (FIN_WAIT1, the FIN queued behind
//! the data) with no descriptor left to show for it. This table shows both.
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when ...
//!    0: 0100007F:1F90 0100007F:D2A4 01 0001A000:00000000 00:00000000 ...
//!       address:port (hex)          ^  Send-Q   Recv-Q (hex bytes)
//!                                   state (include/net/tcp_states.h)
//! ```
//!
//! `tx_queue` is `write_seq - snd_una`: bytes written and not yet
//! acknowledged, what `ss` shows as Send-Q.

use std::fs;
use std::io;

/// A socket's state, as numbered in `include/net/tcp_states.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    Other(u8),
}

impl TcpState {
    fn from_code(code: u8) -> TcpState {
        match code {
            0x01 => TcpState::Established,
            0x02 => TcpState::SynSent,
            0x03 => TcpState::SynRecv,
            0x04 => TcpState::FinWait1,
            0x05 => TcpState::FinWait2,
            0x06 => TcpState::TimeWait,
            0x07 => TcpState::Close,
            0x08 => TcpState::CloseWait,
            0x09 => TcpState::LastAck,
            0x0A => TcpState::Listen,
            0x0B => TcpState::Closing,
            0x0C => TcpState::NewSynRecv,
            other => TcpState::Other(other),
        }
    }

    /// The name `ss` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv | TcpState::NewSynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::Other(_) => "UNKNOWN",
        }
    }

    /// Closed by the owner of this end; the kernel is finishing it (and
    /// holds whatever is still queued) without a descriptor.
    pub fn closed_by_owner(self) -> bool {
        matches!(
            self,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
        )
    }
}

/// One line of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: TcpState,
    /// Bytes written and not yet acknowledged (Send-Q).
    pub send_q: u64,
    /// Bytes received and not yet read (Recv-Q).
    pub recv_q: u64,
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`. Lines that are
/// not socket lines (the header) are skipped.
pub fn parse(text: &str) -> Vec<TcpSocket> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<TcpSocket> {
    let mut fields = line.split_whitespace();
    if !fields.next()?.ends_with(':') {
        return None;
    }
    let port = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
    let local_port = port(fields.next()?)?;
    let remote_port = port(fields.next()?)?;
    let state = TcpState::from_code(u8::from_str_radix(fields.next()?, 16).ok()?);
    let (tx, rx) = fields.next()?.split_once(':')?;
    Some(TcpSocket {
        local_port,
        remote_port,
        state,
        send_q: u64::from_str_radix(tx, 16).ok()?,
        recv_q: u64::from_str_radix(rx, 16).ok()?,
    })
}

/// Every TCP socket of this network namespace, IPv4 and IPv6. A kernel
/// without IPv6 has no `tcp6`; that is not an error.
pub fn read() -> io::Result<Vec<TcpSocket>> {
    let mut sockets = parse(&fs::read_to_string("/proc/net/tcp")?);
    match fs::read_to_string("/proc/net/tcp6") {
        Ok(text) => sockets.extend(parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(sockets)
}

/// The server's side of a port: the sockets whose local port it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortUse {
    /// Connections the server holds (ESTAB, SYN-RECV, CLOSE-WAIT).
    pub open: usize,
    /// Connections the server has closed and the kernel is still finishing
    /// (FIN-WAIT-1/2, CLOSING, LAST-ACK).
    pub closing: usize,
    /// Send-Q summed over both.
    pub send_q: u64,
}

/// What sits on the server's end of `port`. The listening socket and
/// TIME-WAIT remnants hold no data and are left out.
pub fn port_use(sockets: &[TcpSocket], port: u16) -> PortUse {
    let mut u = PortUse::default();
    for s in sockets.iter().filter(|s| s.local_port == port) {
        match s.state {
            TcpState::Listen | TcpState::TimeWait | TcpState::Close => continue,
            state if state.closed_by_owner() => u.closing += 1,
            _ => u.open += 1,
        }
        u.send_q += s.send_q;
    }
    u
}

/// The server's end of the connection a client opened from `client_port`.
pub fn server_end(sockets: &[TcpSocket], port: u16, client_port: u16) -> Option<TcpSocket> {
    sockets
        .iter()
        .find(|s| s.local_port == port && s.remote_port == client_port)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    // From a loopback run: the listener on 8080 (0x1F90); a slow reader's
    // server end with 0x1A000 bytes unsent; the client end of that same
    // connection; a closed-behind-data server end (FIN-WAIT-1); a TIME-WAIT
    // remnant; a connection to another port.
    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1607 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2A4 01 0001A000:00000000 01:00000014 00000000     0        0 2231 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2A4 0100007F:1F90 01 00000000:00021D40 00:00000000 00000000     0        0 2232 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D2B0 04 003E8000:00000000 01:00000014 00000003     0        0 0 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:1F90 0100007F:C001 06 00000000:00000000 03:00000A3F 00000000     0        0 0 3 0000000000000000
   5: 0100007F:96C1 0100007F:A0B2 01 00000010:00000000 00:00000000 00000000     0        0 2400 1 0000000000000000 20 4 30 10 -1
";

    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:E001 08 00000200:00000000 00:00000000 00000000     0        0 3001 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn socket_lines_yield_ports_state_and_queues() {
        let s = parse(TCP);
        assert_eq!(s.len(), 6, "the header is skipped");
        assert_eq!(
            s[1],
            TcpSocket {
                local_port: 8080,
                remote_port: 0xD2A4,
                state: TcpState::Established,
                send_q: 0x1A000,
                recv_q: 0,
            }
        );
        assert_eq!(s[2].recv_q, 0x21D40);
        assert_eq!(s[3].state, TcpState::FinWait1);
        assert_eq!(s[0].state, TcpState::Listen);
    }

    #[test]
    fn ipv6_lines_parse_the_same_way() {
        let s = parse(TCP6);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].local_port, 8080);
        assert_eq!(s[0].state, TcpState::CloseWait);
        assert_eq!(s[0].send_q, 0x200);
    }

    #[test]
    fn port_use_counts_only_the_server_end() {
        let mut sockets = parse(TCP);
        sockets.extend(parse(TCP6));
        let u = port_use(&sockets, 8080);
        // ESTAB (line 1) and CLOSE-WAIT (tcp6) are open; FIN-WAIT-1 is closing;
        // the listener, TIME-WAIT, the client end and port 0x96C1 are not counted.
        assert_eq!(u.open, 2);
        assert_eq!(u.closing, 1);
        assert_eq!(u.send_q, 0x1A000 + 0x3E8000 + 0x200);
    }

    #[test]
    fn server_end_is_found_by_the_client_port() {
        let sockets = parse(TCP);
        let end = server_end(&sockets, 8080, 0xD2B0).expect("present");
        assert_eq!(end.state, TcpState::FinWait1);
        assert_eq!(end.send_q, 0x3E8000);
        assert_eq!(server_end(&sockets, 8080, 0xBEEF), None);
    }

    #[test]
    fn truncated_or_foreign_lines_are_skipped() {
        assert!(parse("   7: 0100007F:1F90 0100007F").is_empty());
        assert!(parse("   7: 0100007F:1F90 0100007F:D2A4 ZZ 0:0").is_empty());
        assert!(parse("garbage\n\n").is_empty());
    }

    #[test]
    fn this_machine_has_a_readable_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = read().expect("/proc/net/tcp is readable");
        assert!(sockets
            .iter()
            .any(|s| s.local_port == port && s.state == TcpState::Listen));
    }
}
