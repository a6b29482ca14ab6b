//! CSRF tokens for the web UI's forms (docs/security.md). A page made for
//! a signed-in user carries the token of that login in every form (a
//! hidden `csrf` field, from `super::page::csrf_token`); every post of a browser that
//! holds a login cookie must bring it back (the field, or an
//! `X-CSRF-Token` header), or it is refused with 403. The token is
//! `HMAC(server secret, "csrf", login token)`: only this server can make
//! it, and only for a page it served to that login.
//!
//! Sign-in and sign-up are the exception: they do not use the login the
//! browser may hold (an expired one must not stop a new sign-in), and the
//! Origin rule (`crate::http::origin`) guards them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::failure::error_page;
use super::page::CSRF_TOKEN;
use crate::http::cookie;
use crate::service::{AppState, Denied, Error, accounts};

/// The form field, and the header a script may send instead.
pub const FIELD: &str = "csrf";
pub const HEADER: &str = "x-csrf-token";
const EXEMPT: [&str; 2] = ["/login", "/signup"];

/// Checks the token on posts, and makes it the one the pages' forms carry
/// (`super::page::csrf_token`).
pub async fn layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let expected = cookie::token_from(req.headers(), &state.config).map(|t| accounts::csrf_token(&state, &t));
    let checked = req.method() == Method::POST && !EXEMPT.contains(&req.uri().path());
    let req = match (&expected, checked) {
        (Some(expected), true) => match check(req, expected, state.config.limits.max_body_bytes).await {
            Ok(req) => req,
            Err(e) => return e,
        },
        _ => req,
    };
    CSRF_TOKEN.scope(expected.unwrap_or_default(), next.run(req)).await
}

/// The request again (its body read and put back) when it carries
/// `expected`; otherwise the refusal.
async fn check(req: Request, expected: &str, limit: usize) -> Result<Request, Response> {
    let refused = || error_page(None, &Error::Forbidden(Denied::BadCsrfToken));
    let matches = |sent: &str| bool::from(sent.as_bytes().ct_eq(expected.as_bytes()));
    if let Some(sent) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return if matches(sent) { Ok(req) } else { Err(refused()) };
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(Error::field("body", "is too large").into_response());
    };
    let sent = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == FIELD).map(|(_, v)| v.into_owned());
    match sent {
        Some(sent) if matches(&sent) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}
