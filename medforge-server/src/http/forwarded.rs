//! The client's address behind trusted proxies. Axum's `ConnectInfo` is
//! the TCP peer; behind Caddy that is Caddy for everyone, so the rate
//! limiter would give all users one bucket and events would log one
//! address. When the peer is in `limits.trusted_proxies`, the layer here
//! replaces `ConnectInfo` with the client `X-Forwarded-For` names, so
//! every handler (and the built-in proxy) sees the client without knowing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::service::AppState;

/// The client: the peer itself unless it is trusted; then the right-most
/// `X-Forwarded-For` address that is not a trusted proxy (each proxy
/// appends the address it saw, so everything left of that is whatever the
/// client chose to send and is not believed). Unparseable entries stop the
/// walk at the last trusted hop.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')).map(str::trim);
    let mut client = peer;
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The layer: rewrites `ConnectInfo` for requests from trusted proxies.
pub async fn layer(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let trusted = &state.config.limits.trusted_proxies;
    if !trusted.is_empty()
        && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
    {
        let headers: Vec<&str> =
            req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let client = client_ip(peer.ip(), &headers, trusted);
        if client != peer.ip() {
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_trusted_peers_may_name_the_client() {
        let trusted: Vec<IpNet> = vec!["172.29.0.0/24".parse().expect("net"), "127.0.0.1/32".parse().expect("net")];
        // An untrusted peer's header is ignored: anyone can send one.
        assert_eq!(client_ip(ip("203.0.113.9"), &["10.0.0.1"], &trusted), ip("203.0.113.9"));
        // Caddy appended the client it saw.
        assert_eq!(client_ip(ip("172.29.0.2"), &["198.51.100.7"], &trusted), ip("198.51.100.7"));
        // The client made up entries on the left: the right-most untrusted wins.
        assert_eq!(client_ip(ip("172.29.0.2"), &["6.6.6.6, 198.51.100.7"], &trusted), ip("198.51.100.7"));
        // Two trusted hops (a local proxy in front of Caddy), over two header lines.
        assert_eq!(client_ip(ip("127.0.0.1"), &["198.51.100.7", "172.29.0.2"], &trusted), ip("198.51.100.7"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client_ip(ip("172.29.0.2"), &["198.51.100.7, junk"], &trusted), ip("172.29.0.2"));
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("172.29.0.2"), &[], &trusted), ip("172.29.0.2"));
        // Nothing trusted: always the peer.
        assert_eq!(client_ip(ip("172.29.0.2"), &["198.51.100.7"], &[]), ip("172.29.0.2"));
    }
}
