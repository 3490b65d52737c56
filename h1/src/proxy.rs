//! The PROXY protocol header (HAProxy, versions 1 and 2) that a load
//! balancer puts in front of a connection's first byte to say whom it
//! accepted the connection from.
//!
//! ```text
//!  bytes at hand ──► parse_proxy_header ──► Incomplete          (read more, call again with all of it)
//!                                       ├─► Done { consumed, source }
//!                                       └─► Err(ProxyHeaderError) ─► close, no response
//! ```
//!
//! Stateless: the caller keeps the bytes and passes all of them each time,
//! so a header split anywhere decides the same as one that arrives whole.
//! The first bytes decide the version (`PROXY ` for v1, the 12-byte
//! signature for v2); anything else is an error, because a server that
//! expects the header must not guess that a request is one.
//!
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What the bytes at hand amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStatus {
    /// A prefix of a valid header: read more.
    Incomplete,
    /// A whole header, `consumed` bytes long; the bytes after it belong to
    /// the application protocol. `source` is the original client's
    /// address, or `None` for a v2 LOCAL command, v1 `UNKNOWN`, or a v2
    /// family without an IP address (AF_UNSPEC, AF_UNIX): the connection's
    /// own peer stands.
    Done {
        /// Length of the PROXY header in bytes, from the start of the input.
        consumed: usize,
        /// The original client's address, if the header carries one.
        source: Option<SocketAddr>,
    },
}

/// A header refused. The connection cannot be trusted after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The first bytes are neither `PROXY ` nor the v2 signature.
    MissingHeader,
    /// No CRLF within the 107 bytes a v1 line may take (spec 2.1).
    V1TooLong,
    /// A CR not followed by LF, or an LF without a CR.
    V1MissingCrlf,
    /// A byte other than printable ASCII in a v1 line.
    V1InvalidByte,
    /// The protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    V1UnknownProtocol,
    /// Not exactly four fields after the protocol, separated by single
    /// spaces.
    V1FieldCount,
    /// An address that is not a valid address of the announced family.
    V1InvalidAddress,
    /// A port that is not 0..=65535 in decimal without leading zeros.
    V1InvalidPort,
    /// The version nibble is not 2.
    V2UnsupportedVersion,
    /// The command nibble is neither LOCAL (0) nor PROXY (1).
    V2UnknownCommand,
    /// The family or transport nibble is not one the spec defines.
    V2UnknownFamily,
    /// The length field announces more than [`MAX_V2_HEADER_BYTES`] in all.
    V2TooLong,
    /// The length field is shorter than the announced family's addresses.
    V2AddressTooShort,
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingHeader => "no PROXY protocol header",
            Self::V1TooLong => "PROXY v1 line longer than 107 bytes",
            Self::V1MissingCrlf => "PROXY v1 line not ended by CRLF",
            Self::V1InvalidByte => "PROXY v1 line has a byte that is not printable ASCII",
            Self::V1UnknownProtocol => "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN",
            Self::V1FieldCount => "PROXY v1 line does not have four single-spaced fields",
            Self::V1InvalidAddress => "PROXY v1 address is not valid for its protocol",
            Self::V1InvalidPort => "PROXY v1 port is not a decimal 0-65535",
            Self::V2UnsupportedVersion => "PROXY v2 header has a version other than 2",
            Self::V2UnknownCommand => "PROXY v2 command is neither LOCAL nor PROXY",
            Self::V2UnknownFamily => "PROXY v2 address family or transport is unknown",
            Self::V2TooLong => "PROXY v2 header is longer than this server accepts",
            Self::V2AddressTooShort => "PROXY v2 length is shorter than its addresses",
        })
    }
}

impl std::error::Error for ProxyHeaderError {}

/// The longest v1 line, CRLF included (spec 2.1).
pub const MAX_V1_HEADER_BYTES: usize = 107;

/// The longest v2 header accepted, its 16 fixed bytes included: the
/// largest address block (AF_UNIX, 216 bytes) plus room for TLVs, which are
/// skipped. The spec's length field allows 64 KiB; a server holding that
/// much per connection before it knows the client would be a memory lever.
pub const MAX_V2_HEADER_BYTES: usize = 536;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED_BYTES: usize = 16;

/// Parses the PROXY header at the start of `input` (all bytes received so
/// far). Call again with more bytes after [`ProxyStatus::Incomplete`].
pub fn parse_proxy_header(input: &[u8]) -> Result<ProxyStatus, ProxyHeaderError> {
    match input.first() {
        None => Ok(ProxyStatus::Incomplete),
        Some(b'P') => parse_v1(input),
        Some(b'\r') => parse_v2(input),
        Some(_) => Err(ProxyHeaderError::MissingHeader),
    }
}

/// Whether `input` and `expected` agree on their common length.
fn agrees_with(input: &[u8], expected: &[u8]) -> bool {
    let n = input.len().min(expected.len());
    input[..n] == expected[..n]
}

fn parse_v1(input: &[u8]) -> Result<ProxyStatus, ProxyHeaderError> {
    if !agrees_with(input, V1_PREFIX) {
        return Err(ProxyHeaderError::MissingHeader);
    }
    // Scan for the CR in the order bytes arrive, so a prefix fails on the
    // same byte the whole line fails on. The CR must leave room for its LF
    // inside the 107 bytes.
    let window = &input[..input.len().min(MAX_V1_HEADER_BYTES - 1)];
    for (i, &byte) in window.iter().enumerate() {
        match byte {
            b'\r' => {
                return match input.get(i + 1) {
                    None => Ok(ProxyStatus::Incomplete),
                    Some(b'\n') => {
                        let source = parse_v1_fields(&input[V1_PREFIX.len()..i])?;
                        Ok(ProxyStatus::Done {
                            consumed: i + 2,
                            source,
                        })
                    }
                    Some(_) => Err(ProxyHeaderError::V1MissingCrlf),
                };
            }
            b'\n' => return Err(ProxyHeaderError::V1MissingCrlf),
            b' '..=b'~' => {}
            _ => return Err(ProxyHeaderError::V1InvalidByte),
        }
    }
    if input.len() >= MAX_V1_HEADER_BYTES - 1 {
        Err(ProxyHeaderError::V1TooLong)
    } else {
        Ok(ProxyStatus::Incomplete)
    }
}

/// The fields between `PROXY ` and the CRLF.
fn parse_v1_fields(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut fields = line.split(|&b| b == b' ');
    let protocol = fields.next().unwrap_or_default();
    let is_v4 = match protocol {
        b"TCP4" => true,
        b"TCP6" => false,
        // Spec 2.1: whatever follows UNKNOWN up to the CRLF is ignored.
        b"UNKNOWN" => return Ok(None),
        _ => return Err(ProxyHeaderError::V1UnknownProtocol),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyHeaderError::V1FieldCount);
    };
    let address = |text: &[u8]| -> Result<IpAddr, ProxyHeaderError> {
        let text = std::str::from_utf8(text).map_err(|_| ProxyHeaderError::V1InvalidAddress)?;
        let parsed = if is_v4 {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        };
        parsed.map_err(|_| ProxyHeaderError::V1InvalidAddress)
    };
    let ip = address(src)?;
    address(dst)?;
    let port = parse_v1_port(sport)?;
    parse_v1_port(dport)?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Spec 2.1: a port is 0..=65535 in decimal, without leading zeros.
fn parse_v1_port(text: &[u8]) -> Result<u16, ProxyHeaderError> {
    let digits_only = !text.is_empty() && text.len() <= 5 && text.iter().all(u8::is_ascii_digit);
    let leading_zero = text.len() > 1 && text[0] == b'0';
    if !digits_only || leading_zero {
        return Err(ProxyHeaderError::V1InvalidPort);
    }
    let value = text.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| ProxyHeaderError::V1InvalidPort)
}

fn parse_v2(input: &[u8]) -> Result<ProxyStatus, ProxyHeaderError> {
    if !agrees_with(input, V2_SIGNATURE) {
        return Err(ProxyHeaderError::MissingHeader);
    }
    // Each fixed byte is judged as soon as it is here.
    let is_proxy = match input.get(12) {
        None => return Ok(ProxyStatus::Incomplete),
        Some(&ver_cmd) if ver_cmd >> 4 != 2 => return Err(ProxyHeaderError::V2UnsupportedVersion),
        Some(&ver_cmd) => match ver_cmd & 0x0f {
            0 => false,
            1 => true,
            _ => return Err(ProxyHeaderError::V2UnknownCommand),
        },
    };
    // Address bytes each family needs (spec 2.2): INET 4+4+2+2, INET6
    // 16+16+2+2, UNIX 108+108; UNSPEC none.
    let address_bytes = match input.get(13) {
        None => return Ok(ProxyStatus::Incomplete),
        Some(&family) if family & 0x0f > 2 => return Err(ProxyHeaderError::V2UnknownFamily),
        Some(&family) => match family >> 4 {
            0 => 0,
            1 => 12,
            2 => 36,
            3 => 216,
            _ => return Err(ProxyHeaderError::V2UnknownFamily),
        },
    };
    let [Some(&high), Some(&low)] = [input.get(14), input.get(15)] else {
        return Ok(ProxyStatus::Incomplete);
    };
    let length = usize::from(u16::from_be_bytes([high, low]));
    let total = V2_FIXED_BYTES + length;
    if total > MAX_V2_HEADER_BYTES {
        return Err(ProxyHeaderError::V2TooLong);
    }
    // LOCAL (spec 2.2): the sender's own connection (a health check); the
    // address block, if any, is skipped unread.
    if is_proxy && length < address_bytes {
        return Err(ProxyHeaderError::V2AddressTooShort);
    }
    let Some(block) = input.get(V2_FIXED_BYTES..total) else {
        return Ok(ProxyStatus::Incomplete);
    };
    let source = if !is_proxy {
        None
    } else {
        match address_bytes {
            12 => {
                let ip: [u8; 4] = block[0..4].try_into().expect("4 bytes");
                let port = u16::from_be_bytes([block[8], block[9]]);
                Some(SocketAddr::new(IpAddr::from(ip), port))
            }
            36 => {
                let ip: [u8; 16] = block[0..16].try_into().expect("16 bytes");
                let port = u16::from_be_bytes([block[32], block[33]]);
                Some(SocketAddr::new(IpAddr::from(ip), port))
            }
            _ => None,
        }
    };
    Ok(ProxyStatus::Done {
        consumed: total,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use ProxyHeaderError as E;

    fn done(consumed: usize, source: Option<&str>) -> Result<ProxyStatus, ProxyHeaderError> {
        Ok(ProxyStatus::Done {
            consumed,
            source: source.map(|s| s.parse().expect("test address")),
        })
    }

    /// A v2 header: version/command byte, family byte, then `block` with
    /// its length.
    fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    fn v2_inet_block() -> Vec<u8> {
        let mut block = vec![192, 0, 2, 7, 198, 51, 100, 1];
        block.extend_from_slice(&4321u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block
    }

    fn v2_inet6_block() -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut block = src.octets().to_vec();
        block.extend_from_slice(&dst.octets());
        block.extend_from_slice(&65535u16.to_be_bytes());
        block.extend_from_slice(&80u16.to_be_bytes());
        block
    }

    /// One `#[test]` per case: the bytes, and what parsing them whole
    /// decides. Each case also checks split invariance: every prefix is
    /// `Incomplete` or decides the same as the whole.
    macro_rules! cases {
        ($($name:ident: $input:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let input: Vec<u8> = $input;
                let expected: Result<ProxyStatus, ProxyHeaderError> = $expected;
                assert_eq!(parse_proxy_header(&input), expected, "whole");
                assert_splits_decide_the_same(&input, expected);
            }
        )*};
    }

    fn assert_splits_decide_the_same(input: &[u8], whole: Result<ProxyStatus, ProxyHeaderError>) {
        for cut in 0..input.len() {
            let prefix = &input[..cut];
            let got = parse_proxy_header(prefix);
            match (got, whole) {
                (Ok(ProxyStatus::Incomplete), _) => {}
                (Ok(ProxyStatus::Done { consumed, .. }), Ok(_)) => {
                    assert!(consumed <= cut, "done beyond the bytes at {cut}");
                    assert_eq!(got, whole, "prefix of {cut} bytes");
                }
                _ => assert_eq!(got, whole, "prefix of {cut} bytes"),
            }
        }
    }

    fn with_request(mut header: Vec<u8>) -> Vec<u8> {
        header.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        header
    }

    cases! {
        v1_tcp4_gives_the_source:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec()
            => done(44, Some("192.0.2.7:4321"));
        v1_tcp6_gives_the_source:
            b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 80\r\n".to_vec()
            => done(45, Some("[2001:db8::7]:65535"));
        v1_port_zero_is_valid:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 0 443\r\n".to_vec()
            => done(41, Some("192.0.2.7:0"));
        v1_unknown_gives_no_source:
            b"PROXY UNKNOWN\r\n".to_vec() => done(15, None);
        v1_unknown_ignores_the_rest_of_its_line:
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".to_vec()
            => done(59, None);
        v1_bytes_after_the_line_are_not_consumed:
            with_request(b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec())
            => done(44, Some("192.0.2.7:4321"));
        v1_longest_unknown_line_of_107_bytes_is_accepted:
            { let mut l = b"PROXY UNKNOWN ".to_vec(); l.resize(105, b'x'); l.extend(b"\r\n"); l }
            => done(107, None);
        v1_line_of_108_bytes_is_too_long:
            { let mut l = b"PROXY UNKNOWN ".to_vec(); l.resize(106, b'x'); l.extend(b"\r\n"); l }
            => Err(E::V1TooLong);
        v1_endless_line_is_too_long:
            { let mut l = b"PROXY TCP4 ".to_vec(); l.resize(400, b'1'); l }
            => Err(E::V1TooLong);
        v1_missing_lf_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\rX".to_vec() => Err(E::V1MissingCrlf);
        v1_bare_lf_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443\n".to_vec() => Err(E::V1MissingCrlf);
        v1_control_byte_is_refused:
            b"PROXY TCP4 192.0.2.7\t198.51.100.1 4321 443\r\n".to_vec() => Err(E::V1InvalidByte);
        v1_lowercase_proxy_is_a_missing_header:
            b"proxy TCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec() => Err(E::MissingHeader);
        v1_proxy_without_space_is_a_missing_header:
            b"PROXYTCP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec() => Err(E::MissingHeader);
        v1_unknown_protocol_is_refused:
            b"PROXY UDP4 192.0.2.7 198.51.100.1 4321 443\r\n".to_vec()
            => Err(E::V1UnknownProtocol);
        v1_double_space_is_refused:
            b"PROXY TCP4  192.0.2.7 198.51.100.1 4321 443\r\n".to_vec() => Err(E::V1FieldCount);
        v1_trailing_space_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443 \r\n".to_vec() => Err(E::V1FieldCount);
        v1_missing_port_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321\r\n".to_vec() => Err(E::V1FieldCount);
        v1_v6_address_under_tcp4_is_refused:
            b"PROXY TCP4 2001:db8::7 198.51.100.1 4321 443\r\n".to_vec()
            => Err(E::V1InvalidAddress);
        v1_v4_address_under_tcp6_is_refused:
            b"PROXY TCP6 192.0.2.7 2001:db8::1 4321 443\r\n".to_vec()
            => Err(E::V1InvalidAddress);
        v1_bad_destination_address_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.256 4321 443\r\n".to_vec()
            => Err(E::V1InvalidAddress);
        v1_port_over_65535_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n".to_vec() => Err(E::V1InvalidPort);
        v1_port_with_leading_zero_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 04321 443\r\n".to_vec() => Err(E::V1InvalidPort);
        v1_signed_port_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 +4321 443\r\n".to_vec() => Err(E::V1InvalidPort);
        v1_bad_destination_port_is_refused:
            b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 4x3\r\n".to_vec() => Err(E::V1InvalidPort);
        http_request_is_a_missing_header:
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec() => Err(E::MissingHeader);
        v2_proxy_inet_gives_the_source:
            v2(0x21, 0x11, &v2_inet_block()) => done(28, Some("192.0.2.7:4321"));
        v2_proxy_inet6_gives_the_source:
            v2(0x21, 0x21, &v2_inet6_block()) => done(52, Some("[2001:db8::7]:65535"));
        v2_tlvs_after_the_addresses_are_skipped:
            with_request(v2(0x21, 0x11, &[v2_inet_block(), vec![0x04, 0, 3, 1, 2, 3]].concat()))
            => done(34, Some("192.0.2.7:4321"));
        v2_local_gives_no_source:
            v2(0x20, 0x00, &[]) => done(16, None);
        v2_local_skips_an_address_block:
            v2(0x20, 0x11, &v2_inet_block()) => done(28, None);
        v2_proxy_unspec_gives_no_source:
            v2(0x21, 0x00, &[]) => done(16, None);
        v2_proxy_unix_gives_no_source:
            v2(0x21, 0x31, &[0; 216]) => done(232, None);
        v2_longest_accepted_header:
            v2(0x21, 0x11, &[v2_inet_block(), vec![0; 520 - 12]].concat()) => done(536, Some("192.0.2.7:4321"));
        v2_header_over_the_cap_is_refused:
            v2(0x21, 0x11, &[v2_inet_block(), vec![0; 521 - 12]].concat()) => Err(E::V2TooLong);
        v2_bad_signature_is_a_missing_header:
            { let mut h = v2(0x21, 0x11, &v2_inet_block()); h[6] = b'X'; h } => Err(E::MissingHeader);
        v2_version_1_is_refused:
            v2(0x11, 0x11, &v2_inet_block()) => Err(E::V2UnsupportedVersion);
        v2_unknown_command_is_refused:
            v2(0x22, 0x11, &v2_inet_block()) => Err(E::V2UnknownCommand);
        v2_unknown_family_is_refused:
            v2(0x21, 0x41, &v2_inet_block()) => Err(E::V2UnknownFamily);
        v2_unknown_transport_is_refused:
            v2(0x21, 0x13, &v2_inet_block()) => Err(E::V2UnknownFamily);
        v2_length_short_of_the_inet_addresses_is_refused:
            v2(0x21, 0x11, &v2_inet_block()[..11]) => Err(E::V2AddressTooShort);
        v2_length_short_of_the_inet6_addresses_is_refused:
            v2(0x21, 0x21, &v2_inet_block()) => Err(E::V2AddressTooShort);
    }

    #[test]
    fn empty_input_is_incomplete() {
        assert_eq!(parse_proxy_header(b""), Ok(ProxyStatus::Incomplete));
    }

    #[test]
    fn truncated_v2_header_stays_incomplete_until_its_last_byte() {
        let header = v2(0x21, 0x21, &v2_inet6_block());
        for cut in 0..header.len() {
            assert_eq!(
                parse_proxy_header(&header[..cut]),
                Ok(ProxyStatus::Incomplete),
                "cut at {cut}"
            );
        }
        assert_eq!(
            parse_proxy_header(&header),
            done(52, Some("[2001:db8::7]:65535"))
        );
    }

    #[test]
    fn v1_line_without_crlf_is_incomplete_until_107_bytes() {
        let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 4321 443";
        assert_eq!(parse_proxy_header(line), Ok(ProxyStatus::Incomplete));
        let mut padded = b"PROXY UNKNOWN ".to_vec();
        padded.resize(105, b'x');
        assert_eq!(parse_proxy_header(&padded), Ok(ProxyStatus::Incomplete));
        padded.push(b'x');
        assert_eq!(parse_proxy_header(&padded), Err(E::V1TooLong));
    }

    #[test]
    fn every_error_has_its_own_message() {
        let all = [
            E::MissingHeader,
            E::V1TooLong,
            E::V1MissingCrlf,
            E::V1InvalidByte,
            E::V1UnknownProtocol,
            E::V1FieldCount,
            E::V1InvalidAddress,
            E::V1InvalidPort,
            E::V2UnsupportedVersion,
            E::V2UnknownCommand,
            E::V2UnknownFamily,
            E::V2TooLong,
            E::V2AddressTooShort,
        ];
        let messages: std::collections::HashSet<String> =
            all.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), all.len());
    }
}
