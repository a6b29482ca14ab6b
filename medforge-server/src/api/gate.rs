//! `GET /api/v2/auth/session-proxy`: the forward_auth gate of docs/api.md.
//! The decision is the gatekeeper's (`crate::service::gatekeeper`); this
//! reads the cookie and the Host and answers with `X-Upstream`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::host::Host;

use super::schemas::{EnvelopeDoc, ProblemDoc};
use super::views::Message;
use crate::http::cookie;
use crate::http::envelope::Envelope;
use crate::http::html::wants_html;
use crate::http::refusal::{self, Unauthenticated};
use crate::service::gatekeeper::{self, Decision};
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
        (status = 401, description = "No valid login", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = ProblemDoc, content_type = "application/problem+json"),
        (status = 404, description = "No running session at this host", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn session_proxy(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, Error> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).and_then(|h| h.parse::<Host>().ok());
    let token = cookie::token_from(&headers);
    let decision = gatekeeper::decide(&state, token.as_ref(), host.as_ref(), state.config.gate_upstream).await?;
    match decision {
        Decision::Allow { upstream, .. } => {
            let value = HeaderValue::from_str(upstream.as_str()).unwrap_or_else(|_| HeaderValue::from_static(""));
            Ok(Envelope::ok(Message { message: "Session proxy authorized." })
                .header(header::HeaderName::from_static("x-upstream"), value)
                .into_response())
        }
        // A browser refused through Caddy's forward_auth sees this answer: give
        // it a page with the way to sign in and back, at the URL it asked for
        // (forward_auth sends it as X-Forwarded-Uri).
        Decision::Refuse(refusal) if wants_html(&headers) => {
            let uri = headers
                .get("x-forwarded-uri")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
                .filter(|u| u.scheme().is_none() && u.path().starts_with('/'))
                .unwrap_or_else(|| Uri::from_static("/"));
            Ok(refusal::refuse(&state.config, &headers, &uri, refusal, Unauthenticated::Page))
        }
        Decision::Refuse(refusal) => Err(refusal.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_route_is_the_gate_path_the_proxy_refuses() {
        assert_eq!(super::PATH, crate::http::GATE_PATH);
    }
}
