//! Forwarding an allowed request to its session's container: headers
//! cleaned (see the module docs of `crate::proxy`), the body streamed, an
//! upgrade tunnelled until either side closes or what let it in is revoked.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use medforge_core::model::Slug;

use super::upstreams::{CONNECT_TIMEOUT, Proxy};
use super::ws_activity::FrameScanner;
use crate::http::cookie;
use crate::http::problem::Problem;
use crate::http::server::Permit;
use crate::service::gatekeeper::Upstream;
use crate::service::passes::{Grant, Revoked};

fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in ["keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer"] {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

pub async fn forward(proxy: Proxy, mut req: Request, slug: Slug, upstream: Upstream, grant: Grant) -> Response {
    let state = &proxy.state;
    let path = req.uri().path().to_owned();
    let bad_gateway = |why: &dyn std::fmt::Display| {
        tracing::warn!(%slug, error = %why, "session upstream failed");
        // The container may have died: the next request asks the database
        // again instead of a cached "allow".
        state.gate_cache.forget_slug(&slug);
        metrics::counter!("medforge_proxy_upstream_errors_total").increment(1);
        Problem::http(StatusCode::BAD_GATEWAY, "The session's container did not answer.").standalone(&path)
    };
    let upgrade = is_upgrade(req.headers());
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    // The client connection's place under the listener's caps: a tunnel
    // keeps it for as long as it lives.
    let permit = req.extensions().get::<Permit>().cloned();
    let host = req.headers().get(header::HOST).cloned();
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(uri) = format!("http://{upstream}{pq}").parse() else {
        return bad_gateway(&"the upstream address is not a URI");
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    cookie::strip_medforge(headers);
    headers.remove("x-upstream");
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] {
        headers.remove(name);
    }
    if let Some(ip) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        headers.insert("x-forwarded-for", ip);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(state.config.scheme()));
    if let Some(h) = host {
        headers.insert("x-forwarded-host", h);
    }
    // Every request a browser sends is its user's use of the session
    // (docs/decisions.md, "What counts as using a session").
    state.activity.touch_slug(&slug, state.lifecycle.now());
    metrics::counter!("medforge_proxy_client_requests_total").increment(1);
    if !upgrade {
        return match proxy.upstreams.request(req).await {
            Ok(response) => {
                let mut response = response.map(Body::new);
                strip_hop_by_hop(response.headers_mut(), false);
                cookie::drop_medforge_set_cookies(response.headers_mut());
                response
            }
            Err(e) => bad_gateway(&e),
        };
    }
    // An upgrade: one connection of its own, handed to a tunnel on 101.
    // No compression, so that the tunnel can tell a user's frames from an
    // idle tab's heartbeats (`super::ws_activity`).
    req.headers_mut().remove(header::SEC_WEBSOCKET_EXTENSIONS);
    let client_side = hyper::upgrade::on(&mut req);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(upstream.as_str())).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return bad_gateway(&e),
        Err(_) => return bad_gateway(&"connect timed out"),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return bad_gateway(&e),
    };
    tokio::spawn(connection.with_upgrades());
    let mut response = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(&e),
    };
    cookie::drop_medforge_set_cookies(response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_side = hyper::upgrade::on(&mut response);
        let mut revoked = state.passes.revocations();
        let state = state.clone();
        tokio::spawn(async move {
            let (Ok(client), Ok(upstream)) = (client_side.await, upstream_side.await) else { return };
            let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            metrics::gauge!("medforge_proxy_tunnels_open").increment(1.0);
            tokio::select! {
                _ = tunnel(client, upstream, &state, &slug) => {}
                why = until_covered(&mut revoked, &grant) => {
                    tracing::info!(%slug, ?why, "closing a tunnel: what let it in was revoked");
                }
            }
            metrics::gauge!("medforge_proxy_tunnels_open").decrement(1.0);
            drop(permit);
        });
    }
    response.map(Body::new)
}

/// Carries a tunnel both ways until either side closes; what the client
/// sends is read as it passes, and its user's frames count as use of the
/// session (at most one report a second).
async fn tunnel<C, U>(client: C, upstream: U, state: &crate::service::AppState, slug: &Slug)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let up = async {
        let mut scanner = FrameScanner::default();
        let mut buf = vec![0u8; 16 * 1024];
        let mut reported: Option<std::time::Instant> = None;
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                upstream_write.shutdown().await?;
                return Ok::<_, std::io::Error>(());
            }
            let before = scanner.counts;
            if scanner.feed(&buf[..n]) && reported.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
                state.activity.touch_slug(slug, state.lifecycle.now());
                reported = Some(std::time::Instant::now());
            }
            let after = scanner.counts;
            for (kind, n) in [
                ("use", after.uses - before.uses),
                ("automatic", after.automatic - before.automatic),
                ("control", after.controls - before.controls),
            ] {
                if n > 0 {
                    metrics::counter!("medforge_proxy_client_messages_total", "kind" => kind).increment(n);
                }
            }
            upstream_write.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        tokio::io::copy(&mut upstream_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    let _ = tokio::try_join!(up, down);
}

/// Waits for a revocation that covers `grant`. A receiver that fell
/// behind cannot know what it missed: it closes the tunnel too (the client
/// reconnects through the gate).
async fn until_covered(revoked: &mut tokio::sync::broadcast::Receiver<Revoked>, grant: &Grant) -> Option<Revoked> {
    loop {
        match revoked.recv().await {
            Ok(r) if r.covers(grant) => return Some(r),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return None,
            // The server is going away: so is the tunnel.
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_do_not_pass() {
        let mut m = HeaderMap::new();
        m.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        m.insert("x-secret", HeaderValue::from_static("1"));
        m.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        m.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        m.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut m, false);
        for gone in ["connection", "x-secret", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(!m.contains_key(gone), "{gone} passed");
        }
        let mut ws = HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws.get(header::UPGRADE).and_then(|v| v.to_str().ok()), Some("websocket"));
        assert_eq!(ws.get(header::CONNECTION).and_then(|v| v.to_str().ok()), Some("upgrade"));
    }
}
