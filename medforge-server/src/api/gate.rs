//! `GET /api/v2/auth/session-proxy`: the forward_auth gate of docs/api.md.
//! The answer is `crate::http::session_host`'s, as the built-in proxy's
//! is; this reads what Caddy forwards and answers "forward" with
//! `X-Upstream`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::gate::Refusal;

use super::schemas::{EnvelopeDoc, ProblemDoc};
use super::views::Message;
use crate::http::envelope::Envelope;
use crate::http::host::request_host;
use crate::http::refusal::Unauthenticated;
use crate::http::session_host::{self, Answer, Asked};
use crate::service::{AppState, Error};

/// `crate::http::GATE_PATH`, written out for the docs check (scripts/tests/check_docs.py).
const PATH: &str = "/api/v2/auth/session-proxy";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PATH, get(session_proxy))
}

#[utoipa::path(
    get,
    path = "/api/v2/auth/session-proxy",
    tag = "gate",
    responses(
        (status = 200, description = "Allowed; X-Upstream names the upstream", body = EnvelopeDoc<Message>),
        (status = 302, description = "No valid pass: to the UI's /sessions/enter (the handshake)"),
        (status = 303, description = "A handshake code traded for the host's pass (Set-Cookie), on to `next`"),
        (status = 401, description = "No valid login", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No running session at this host", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn session_proxy(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, Error> {
    let Some(host) = request_host(&headers) else {
        return Err(Refusal::Unauthenticated.into());
    };
    // What the client asked Caddy for: forward_auth sends it along as
    // X-Forwarded-Method and X-Forwarded-Uri (a direct call: this request).
    let method =
        headers.get("x-forwarded-method").and_then(|v| Method::from_bytes(v.as_bytes()).ok()).unwrap_or(Method::GET);
    let uri = headers
        .get("x-forwarded-uri")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uri>().ok())
        .filter(|u| u.scheme().is_none() && u.path().starts_with('/'))
        .unwrap_or_else(|| Uri::from_static("/"));
    let asked = Asked { host: &host, method: &method, uri: &uri, headers: &headers, upgrade: false };
    match session_host::answer(&state, asked, state.config.gate_upstream, Unauthenticated::Page).await {
        Answer::Forward { upstream, slug, .. } => {
            // Behind Caddy each request to a session is asked here first:
            // it is its user's use of the session, as through the built-in proxy.
            state.activity.touch_slug(&slug, state.lifecycle.now());
            let value = HeaderValue::from_str(upstream.as_str()).unwrap_or_else(|_| HeaderValue::from_static(""));
            Ok(Envelope::ok(Message { message: "Session proxy authorized." })
                .header(header::HeaderName::from_static("x-upstream"), value)
                .into_response())
        }
        // Caddy hands every other answer to the client as it is: the
        // handshake's redirects and cookie, refusals, reserved paths.
        Answer::Respond(response) => Ok(response),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_route_is_the_gate_path_the_proxy_refuses() {
        assert_eq!(super::PATH, crate::http::GATE_PATH);
    }
}
