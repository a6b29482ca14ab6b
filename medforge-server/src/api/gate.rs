//! `GET /api/v2/auth/session-proxy`: the forward_auth gate of API.md. The
//! decision itself is `medforge_core::gate`; this adds the cookie, the
//! cache and the `X-Upstream` answer.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use medforge_core::gate::{self, Decision};
use medforge_core::model;
use medforge_core::runtime::{SESSION_PORT, container_name};

use super::auth::token_from;
use super::{ApiError, Envelope};
use crate::config::GateUpstream;
use crate::refusal::{self, Unauthenticated};
use crate::state::AppState;

pub const PATH: &str = "/api/v2/auth/session-proxy";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(PATH, get(session_proxy))
}

/// The decision for `host` and the caller's cookie, from the cache when it
/// can, with the upstream the config names (for `forward_auth`).
pub async fn decide(state: &AppState, headers: &HeaderMap) -> Result<(Decision, Option<String>), ApiError> {
    decide_for(state, headers, state.config.gate_upstream).await
}

/// The same, with the upstream as `mode` says: the built-in proxy on the
/// host always needs the container's address.
pub async fn decide_for(
    state: &AppState,
    headers: &HeaderMap,
    mode: GateUpstream,
) -> Result<(Decision, Option<String>), ApiError> {
    let Some(token) = token_from(headers) else {
        count(&Decision::Unauthenticated, "none");
        return Ok((Decision::Unauthenticated, None));
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    let token_hash = state.auth.key().hash(&token);
    // The two upstream forms are cached apart; the key still starts with
    // the host, so forgetting a slug forgets both.
    let cache_key = match mode {
        GateUpstream::Name => host.clone(),
        GateUpstream::Address => format!("{host}|address"),
    };
    if let Some(hit) = state.gate_cache.get(&token_hash, &cache_key) {
        count(&hit.0, "hit");
        return Ok(hit);
    }
    let generation = state.gate_cache.generation();
    let user = state.auth.authenticate(&token, model::now()).await?.map(|(u, _)| u);
    let parsed = gate::parse_session_host(&host, &state.config.base_domain);
    let session = match (&user, &parsed) {
        (Some(_), Some((slug, _))) => state.store.session_by_slug(slug).await?,
        _ => None,
    };
    let decision = gate::decide(user.as_ref(), parsed, session.as_ref());
    let upstream = match (&decision, mode) {
        (Decision::Allow { slug }, GateUpstream::Name) => Some(format!("{}:{SESSION_PORT}", container_name(slug))),
        (Decision::Allow { slug }, GateUpstream::Address) => state
            .runtime
            .inspect(&container_name(slug))
            .await
            .map_err(ApiError::internal)?
            .and_then(|c| c.ip)
            .map(|ip| std::net::SocketAddr::new(ip, SESSION_PORT).to_string()),
        _ => None,
    };
    // No upstream for an allowed session: its container has no address; fail closed.
    let decision =
        if matches!(decision, Decision::Allow { .. }) && upstream.is_none() { Decision::NotFound } else { decision };
    state.gate_cache.put(generation, &token_hash, &cache_key, decision.clone(), upstream.clone());
    count(&decision, "miss");
    Ok((decision, upstream))
}

fn count(decision: &Decision, cache: &'static str) {
    let label = match decision {
        Decision::Allow { .. } => "allow",
        Decision::Unauthenticated => "unauthenticated",
        Decision::NotFound => "not_found",
        Decision::Forbidden { .. } => "forbidden",
    };
    metrics::counter!(super::metrics::GATE_DECISIONS, "decision" => label, "cache" => cache).increment(1);
}

#[utoipa::path(get, path = "/api/v2/auth/session-proxy", tag = "gate", responses((status = 200, description = "Allowed; X-Upstream names the upstream", body = super::openapi::EnvelopeDoc), (status = 401, description = "No valid login", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 403, description = "Not allowed", body = super::openapi::ProblemDoc, content_type = "application/problem+json"), (status = 404, description = "No running session at this host", body = super::openapi::ProblemDoc, content_type = "application/problem+json")))]
pub(crate) async fn session_proxy(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let decided = decide(&state, &headers).await;
    // A browser refused through Caddy's forward_auth sees this answer: give
    // it a page with the way to sign in and back, at the URL it asked for
    // (forward_auth sends it as X-Forwarded-Uri).
    if let Ok((decision, _)) = &decided
        && !matches!(decision, Decision::Allow { .. })
        && refusal::wants_html(&headers)
    {
        let uri = headers
            .get("x-forwarded-uri")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Uri>().ok())
            .filter(|u| u.scheme().is_none() && u.path().starts_with('/'))
            .unwrap_or_else(|| Uri::from_static("/"));
        return refusal::refuse(&state, &headers, &uri, decision, Unauthenticated::Page);
    }
    match decided {
        Ok((Decision::Allow { .. }, Some(upstream))) => {
            let value = HeaderValue::from_str(&upstream).unwrap_or_else(|_| HeaderValue::from_static(""));
            Envelope::ok(serde_json::json!({ "message": "Session proxy authorized." }))
                .header(header::HeaderName::from_static("x-upstream"), value)
                .into_response()
        }
        Ok((Decision::Unauthenticated, _)) => ApiError::unauthorized().into_response(),
        Ok((Decision::Forbidden { reason }, _)) => ApiError::forbidden(reason).into_response(),
        Ok(_) => ApiError::not_found("No running session at this host.").into_response(),
        Err(e) => e.into_response(),
    }
}
