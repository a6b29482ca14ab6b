//! The built-in session proxy: every request to `s-<slug>.<exposure>.<domain>`
//! gets the answer `crate::http::session_host` gives (the same as Caddy's
//! `forward_auth` gets from `/api/v2/auth/session-proxy`: the handshake,
//! the reserved paths, the gate), and when that is "forward", goes to that
//! session's container, streamed both ways (no body is ever buffered), with
//! WebSocket (and any other) upgrades tunnelled ([`forward`]).
//!
//! It runs before every other layer of the server (no body limit, no
//! problem-document rewriting: a code-server 404 must pass as it is). What
//! it changes on the way:
//! - refuses the gate path itself (any spelling) with a plain 403;
//! - drops hop-by-hop headers, any client `X-Upstream`, and every MedForge
//!   cookie (the pass; a login cookie a browser should never send here);
//! - drops any `Set-Cookie` of the container's that names a MedForge cookie;
//! - sets `X-Forwarded-For/-Proto/-Host` (replacing what the client sent);
//! - fails closed: no upstream, or an upstream that does not answer, is 502.
//!
//! Open tunnels end when what let them in is revoked
//! (`crate::service::passes::Revoked`: the session stopped, the login
//! ended, the user's rights changed), not only when the container goes;
//! behind Caddy too, which hands every upgrade to this proxy ([`dispatch`]).

pub mod forward;
pub mod upstreams;
pub mod ws_activity;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medforge_core::host::Host;

use crate::config::{GateUpstream, Routing};
use crate::http::GATE_PATH;
use crate::http::host::request_host;
use crate::http::refusal::Unauthenticated;
use crate::http::session_host::{self, Answer, Asked};
pub use upstreams::Proxy;

/// The outermost layer: with `routing = "builtin"`, session hosts go to the
/// proxy, everything else on. With `routing = "caddy"`, Caddy serves the
/// session hosts and calls the gate with their `Host` (that request goes
/// on to the gate's route), but hands us the requests that ask for an
/// upgrade (infra/caddy/session-route.caddy): tunnels run here, where a
/// revocation can close one (docs/decisions.md). They pass the same
/// answer as in built-in mode, pass and all.
pub async fn dispatch(State(proxy): State<Proxy>, req: Request, next: Next) -> Response {
    let config = &proxy.state.config;
    if let Some(host) = session_zone_host(req.headers(), config.sessions_domain())
        && proxies(config.routing, &req)
    {
        return handle(proxy, host, req).await;
    }
    next.run(req).await
}

/// Whether a request to a session host is the proxy's in this routing mode.
fn proxies(routing: Routing, req: &Request) -> bool {
    match routing {
        Routing::Builtin => true,
        // Caddy sends here forward_auth's calls to the gate (the gate's,
        // with the session's Host, and for an upgrade its Upgrade header
        // too: docs/testing.md) and the tunnels its route hands on. Every
        // other session-host request (one that reached the server past
        // Caddy, say) gets the proxy's answer too, never the control
        // plane's pages.
        Routing::Caddy => !is_gate_path(req.uri().path()),
    }
}

/// The request's Host when it is in a session zone (`<label>.external.<domain>`
/// or `<label>.internal.<domain>`; the gate then answers 404 for a label
/// that is no slug).
fn session_zone_host(headers: &HeaderMap, domain: &str) -> Option<Host> {
    request_host(headers).filter(|host| host.session_zone(domain).is_some())
}

/// Whether `path` names the gate, however spelt: any case, percent-encoded
/// (twice, even), with doubled or trailing slashes.
pub fn is_gate_path(path: &str) -> bool {
    let gate: Vec<&str> = GATE_PATH.split('/').filter(|s| !s.is_empty()).collect();
    let parts = session_host::segments(path);
    parts.len() >= gate.len() && parts.iter().zip(&gate).all(|(p, g)| p == g)
}

async fn handle(proxy: Proxy, host: Host, req: Request) -> Response {
    if is_gate_path(req.uri().path()) {
        return (StatusCode::FORBIDDEN, "Forbidden\n").into_response();
    }
    let asked = Asked {
        host: &host,
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        upgrade: forward::is_upgrade(req.headers()),
    };
    match session_host::answer(&proxy.state, asked, GateUpstream::Address, Unauthenticated::Redirect).await {
        Answer::Forward { slug, upstream, grant } => forward::forward(proxy, req, slug, upstream, grant).await,
        Answer::Respond(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

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
            session_zone_host(&m, "medforge.localhost").is_some()
        };
        assert!(h("s-abcdefgh.external.medforge.localhost"));
        assert!(h("S-ABCDEFGH.Internal.medforge.localhost:8080"));
        assert!(h("s-abcdefgh.external.medforge.localhost."));
        assert!(h("anything.external.medforge.localhost"));
        assert!(!h("external.medforge.localhost"));
        assert!(!h("medforge.localhost"));
        assert!(!h("api.medforge.localhost"));
        assert!(!h("a.b.external.medforge.localhost"));
        assert!(!h("s-abcdefgh.external.medforge.localhost.evil.org"));
    }
}
