//! The answers the driver writes itself, not a handler: refusals at the
//! caps, exhausted budgets, a handler that failed or never answered. One
//! table of statuses and messages, one encoder; each closes its connection.

use ringwall_h1::{encode_response, EncodeContext, HttpDate, Version};

/// An answer of the driver's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Canned {
    /// `max_connections` reached (at accept).
    ConnectionCap,
    /// `max_connections_per_ip` reached for the peer's address (at accept).
    PerIpCap,
    /// The worker's body budget cannot hold the body's next bytes.
    BodyBudget,
    /// The worker's partial-head budget cannot hold the head's next bytes.
    HeadBudget,
    /// A deferred handler gave no response head within `handler_timeout`.
    HandlerTimeout,
    /// A handler panicked, wrote nothing, or gave up before its head left.
    InternalError,
}

impl Canned {
    fn status(self) -> u16 {
        match self {
            Canned::InternalError => 500,
            _ => 503,
        }
    }

    fn body(self) -> &'static [u8] {
        match self {
            Canned::ConnectionCap => b"Service Unavailable: connection limit reached\n",
            Canned::PerIpCap => b"Service Unavailable: too many connections from this address\n",
            Canned::BodyBudget => b"Service Unavailable: request body budget exhausted\n",
            Canned::HeadBudget => b"Service Unavailable: request head budget exhausted\n",
            Canned::HandlerTimeout => b"Service Unavailable: the handler did not answer in time\n",
            Canned::InternalError => b"Internal Server Error\n",
        }
    }
}

/// Appends `canned` to `out`, framed for the request's `version` (no body
/// for HEAD) and with `Connection: close`; a 503 asks the client to come
/// back in a second (`Retry-After: 1`), as nginx's limits do. False only
/// if the encoder refused it, which these fixed answers never make it do.
pub(super) fn encode_canned(
    out: &mut Vec<u8>,
    canned: Canned,
    date: &HttpDate,
    version: Version,
    head_request: bool,
) -> bool {
    let ctx = EncodeContext {
        date,
        version,
        keep_alive: false,
        head_request,
    };
    let retry: &[(&str, &[u8])] = &[("Content-Type", b"text/plain"), ("Retry-After", b"1")];
    let fields = if canned.status() == 503 {
        retry
    } else {
        &retry[..1]
    };
    encode_response(out, canned.status(), fields, canned.body(), &ctx).is_ok()
}
