//! The kernel's view of the server's sockets, from /proc/net/tcp{,6}: what
//! a client cannot see, such as an orphaned socket still holding a send
//! queue after the server closed it.

use std::fs;

/// One socket row whose local port is the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRow {
    /// The kernel's TCP state number (1 ESTABLISHED, 4 FIN_WAIT1, ...).
    pub state: u8,
    /// Bytes in the send queue (the `tx_queue` column).
    pub tx_queue: u64,
}

/// Every IPv4 and IPv6 socket bound to local port `port`.
pub fn sockets_on_local_port(port: u16) -> Vec<TcpRow> {
    let mut rows = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            rows.extend(parse_tcp_table(&text, port));
        }
    }
    rows
}

/// Parses the text of /proc/net/tcp (or tcp6), keeping rows on `port`.
pub fn parse_tcp_table(text: &str, port: u16) -> Vec<TcpRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let (_, local_port) = local.rsplit_once(':')?;
            if u16::from_str_radix(local_port, 16).ok()? != port {
                return None;
            }
            let state = u8::from_str_radix(fields.nth(1)?, 16).ok()?;
            let (tx, _rx) = fields.next()?.split_once(':')?;
            Some(TcpRow {
                state,
                tx_queue: u64::from_str_radix(tx, 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_on_the_port_are_parsed() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 04 0001A000:00000000 01:00000014 00000000     0        0 0 2 0 20 4 30 10 -1\n\
   2: 0100007F:0050 0100007F:C351 01 00000010:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n";
        let rows = parse_tcp_table(text, 8080);
        assert_eq!(
            rows,
            vec![
                TcpRow {
                    state: 0x0A,
                    tx_queue: 0
                },
                TcpRow {
                    state: 4,
                    tx_queue: 0x1A000
                }
            ]
        );
    }
}
