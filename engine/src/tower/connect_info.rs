//! axum's `ConnectInfo` from ringwall's connection: behind the `axum`
//! feature. The impl lives here, not in axum, because the target type is
//! ringwall's (the orphan rule allows a foreign trait with a local type
//! parameter).

use std::net::{Ipv4Addr, SocketAddr};

use axum::extract::connect_info::Connected;

use super::IncomingConnection;

/// `router.into_make_service_with_connect_info::<SocketAddr>()` on ringwall:
/// the client's address, the PROXY protocol's when there is one (see
/// [`PeerAddr`](super::PeerAddr)); `0.0.0.0:0` in the rare request whose
/// peer was gone before it was read.
impl Connected<IncomingConnection> for SocketAddr {
    fn connect_info(connection: IncomingConnection) -> SocketAddr {
        connection
            .peer_addr()
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    }
}
