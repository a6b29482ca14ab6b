//! The built-in session proxy: every request to `s-<slug>.<exposure>.<domain>`
//! passes the same gate as `/api/v2/auth/session-proxy`, then goes to that
//! session's container, streamed both ways (no body is ever buffered), with
//! WebSocket (and any other) upgrades tunnelled.
//!
//! It runs before every other layer of the server (no body limit, no
//! problem-document rewriting: a code-server 404 must pass as it is). What
//! it changes on the way:
//! - refuses the gate path itself (any spelling) with a plain 403;
//! - drops hop-by-hop headers, any client `X-Upstream`, and MedForge's own
//!   login cookie (a session's code must never see a login token, least of
//!   all an admin's);
//! - sets `X-Forwarded-For/-Proto/-Host` (replacing what the client sent);
//! - fails closed: no upstream, or an upstream that does not answer, is 502.
//!
//! Open tunnels end when the session is stopped (the gate cache announces
//! the slug), not only when the container goes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use medforge_core::gate::Decision;
use percent_encoding::percent_decode_str;

use crate::api::auth::COOKIE as SESSION_COOKIE;
use crate::api::gate::{self, PATH as GATE_PATH};
use crate::api::{ApiError, standalone_problem};
use crate::config::{GateUpstream, Routing};
use crate::refusal::{self, Unauthenticated};
use crate::state::AppState;

/// How long the container has to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pooled HTTP/1 client to session containers.
pub type Upstreams = Client<HttpConnector, Body>;

pub fn upstreams() -> Upstreams {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(connector)
}

/// The outermost layer: with `routing = "builtin"`, session hosts go to the
/// proxy, everything else on. (With `routing = "caddy"`, Caddy serves the
/// session hosts and calls the gate with their `Host`: nothing to do here.)
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.config.routing == Routing::Builtin && is_session_host(req.headers(), &state.config.base_domain) {
        return handle(state, req).await;
    }
    next.run(req).await
}

/// `<anything>.external.<domain>` or `<anything>.internal.<domain>`: the
/// session zones. (The gate then answers 404 for a label that is no slug.)
pub fn is_session_host(headers: &HeaderMap, domain: &str) -> bool {
    let host = host_of(headers);
    ["external", "internal"].iter().any(|zone| {
        host.strip_suffix(&format!(".{zone}.{domain}")).is_some_and(|label| !label.is_empty() && !label.contains('.'))
    })
}

fn host_of(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        _ => host,
    }
}

/// Whether `path` names the gate, however spelt: any case, percent-encoded
/// (twice, even), with doubled or trailing slashes.
pub fn is_gate_path(path: &str) -> bool {
    let mut p = path.to_owned();
    for _ in 0..3 {
        p = percent_decode_str(&p).decode_utf8_lossy().into_owned();
    }
    let p = p.to_ascii_lowercase().replace('\\', "/");
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let gate: Vec<&str> = GATE_PATH.split('/').filter(|s| !s.is_empty()).collect();
    parts.starts_with(&gate)
}

async fn handle(state: Arc<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if is_gate_path(&path) {
        return (StatusCode::FORBIDDEN, "Forbidden\n").into_response();
    }
    let decided = gate::decide_for(&state, req.headers(), GateUpstream::Address).await;
    match decided {
        Ok((Decision::Allow { slug }, Some(upstream))) => forward(state, req, slug.to_string(), upstream).await,
        Ok((decision, _)) => refusal::refuse(&state, req.headers(), req.uri(), &decision, Unauthenticated::Redirect),
        Err(e) => {
            tracing::error!(error = ?e, "the session gate failed");
            standalone_problem(ApiError::http(StatusCode::BAD_GATEWAY, "The session gate failed."), &path)
        }
    }
}

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

/// The request's `Cookie` header without MedForge's login cookie.
fn strip_login_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(&format!("{SESSION_COOKIE}=")))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

async fn forward(state: Arc<AppState>, mut req: Request, slug: String, upstream: String) -> Response {
    let path = req.uri().path().to_owned();
    let bad_gateway = |why: &dyn std::fmt::Display| {
        tracing::warn!(%slug, error = %why, "session upstream failed");
        // The container may have died: the next request asks the database
        // again instead of a cached "allow".
        state.gate_cache.forget_slug(&slug);
        metrics::counter!("medforge_proxy_upstream_errors_total").increment(1);
        standalone_problem(ApiError::http(StatusCode::BAD_GATEWAY, "The session's container did not answer."), &path)
    };
    let upgrade = is_upgrade(req.headers());
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let host = req.headers().get(header::HOST).cloned();
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(uri) = format!("http://{upstream}{pq}").parse() else {
        return bad_gateway(&"the upstream address is not a URI");
    };
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    strip_login_cookie(headers);
    headers.remove("x-upstream");
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"] {
        headers.remove(name);
    }
    if let Some(ip) = peer.and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok()) {
        headers.insert("x-forwarded-for", ip);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(refusal::scheme(&state)));
    if let Some(h) = host {
        headers.insert("x-forwarded-host", h);
    }
    if !upgrade {
        return match state.upstreams.request(req).await {
            Ok(response) => {
                let mut response = response.map(Body::new);
                strip_hop_by_hop(response.headers_mut(), false);
                response
            }
            Err(e) => bad_gateway(&e),
        };
    }
    // An upgrade: one connection of its own, handed to a tunnel on 101.
    let client_side = hyper::upgrade::on(&mut req);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&upstream)).await {
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
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_side = hyper::upgrade::on(&mut response);
        let mut closed = state.gate_cache.closed_slugs();
        tokio::spawn(async move {
            let (Ok(client), Ok(upstream)) = (client_side.await, upstream_side.await) else { return };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            metrics::gauge!("medforge_proxy_tunnels_open").increment(1.0);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                () = async { while closed.recv().await.is_ok_and(|s| s != slug) {} } => {
                    tracing::info!(%slug, "session stopped: closing its tunnel");
                }
            }
            metrics::gauge!("medforge_proxy_tunnels_open").decrement(1.0);
        });
    }
    response.map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_path_is_refused_however_spelt() {
        for p in [
            "/api/v2/auth/session-proxy",
            "/API/V2/Auth/Session-Proxy",
            "/api/v2/auth/session-proxy/",
            "//api//v2/auth/session-proxy",
            "/api%2Fv2%2Fauth%2Fsession-proxy",
            "/api%252Fv2%252Fauth%252Fsession-proxy",
            "/api/v2/auth/%73ession-proxy",
            "/./api/v2/auth/session-proxy",
            "/api/v2/auth/session-proxy/x",
            "\\api\\v2\\auth\\session-proxy",
        ] {
            assert!(is_gate_path(p), "{p} passed");
        }
        for p in ["/", "/api/v2/auth/session-proxyx", "/static/api/v2/auth/session-proxy", "/healthz"] {
            assert!(!is_gate_path(p), "{p} refused");
        }
    }

    #[test]
    fn session_hosts_are_the_two_zones() {
        let h = |host: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
            is_session_host(&m, "medforge.localhost")
        };
        assert!(h("s-abcdefgh.external.medforge.localhost"));
        assert!(h("S-ABCDEFGH.Internal.medforge.localhost:8080"));
        assert!(h("anything.external.medforge.localhost"));
        assert!(!h("external.medforge.localhost"));
        assert!(!h("medforge.localhost"));
        assert!(!h("api.medforge.localhost"));
        assert!(!h("a.b.external.medforge.localhost"));
        assert!(!h("s-abcdefgh.external.medforge.localhost.evil.org"));
    }

    #[test]
    fn hop_by_hop_headers_and_the_login_cookie_do_not_pass() {
        let mut m = HeaderMap::new();
        m.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        m.insert("x-secret", HeaderValue::from_static("1"));
        m.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        m.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        m.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        m.insert(header::COOKIE, HeaderValue::from_static("a=1; medforge_session=tok; b=2"));
        strip_hop_by_hop(&mut m, false);
        strip_login_cookie(&mut m);
        for gone in ["connection", "x-secret", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(!m.contains_key(gone), "{gone} passed");
        }
        assert_eq!(m.get(header::COOKIE).and_then(|v| v.to_str().ok()), Some("a=1; b=2"));
        let mut ws = HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws.get(header::UPGRADE).and_then(|v| v.to_str().ok()), Some("websocket"));
        assert_eq!(ws.get(header::CONNECTION).and_then(|v| v.to_str().ok()), Some("upgrade"));
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("medforge_session=tok"));
        strip_login_cookie(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }
}
