//! Planted cookies: what happens when a request carries MedForge's cookie
//! twice. Our own is host-only; the other was planted for a parent domain
//! by a page on a sibling host (a session's script can write
//! `document.cookie = "medforge_session=...; domain=<base>"`, which no
//! proxy sees). Such a request has no login at all ([`super::cookie::token`]),
//! and its answer deletes the planted copies: a `GET` is sent back to
//! itself with the deletions (once: a short marker cookie stops a loop
//! where the deletion does not take), so the user stays signed in;
//! anything else is refused with the deletions. With the `__Host-` prefix
//! (`cookie_secure`) browsers refuse to plant at all.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cookie::{self, Kind};
use super::problem::Problem;
use crate::config::Config;
use crate::service::AppState;

const MARKER: &str = "medforge_replanted";
const MARKER_SET: &str = "medforge_replanted=1; Path=/; Max-Age=30";

/// For the control plane's hosts: their login cookie.
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let domains = [state.config.base_domain.clone()];
    match answer(&state.config, Kind::Login, &domains, req.method(), req.uri(), req.headers()) {
        Some(response) => response,
        None => next.run(req).await,
    }
}

/// The answer to a request that carries `kind`'s cookie twice (`None`:
/// it does not). `domains`: the parents a sibling host could plant for.
pub fn answer(
    config: &Config,
    kind: Kind,
    domains: &[String],
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Option<Response> {
    if cookie::count(headers, config, kind) < 2 {
        return None;
    }
    let navigating = matches!(*method, Method::GET | Method::HEAD);
    if navigating && cookie::has(headers, MARKER) {
        // The deletion did not take: go on as signed out rather than loop.
        return None;
    }
    let mut response = if navigating {
        let mut r = StatusCode::SEE_OTHER.into_response();
        let back = uri.path_and_query().map_or("/", |p| p.as_str());
        if let Ok(v) = HeaderValue::from_str(back) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_static(MARKER_SET));
        r
    } else {
        Problem::http(
            StatusCode::FORBIDDEN,
            "This request carried a second copy of MedForge's cookie; it was removed. Try again.",
        )
        .standalone(uri.path())
    };
    for d in cookie::delete_planted(config, kind, domains, uri.path()) {
        response.headers_mut().append(header::SET_COOKIE, d);
    }
    Some(response)
}
