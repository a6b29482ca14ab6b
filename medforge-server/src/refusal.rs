//! What a refused request for a session host gets: a problem document for
//! API clients; for browsers, a way to sign in that comes back to the
//! session. Shared by the built-in proxy and by the gate endpoint (which
//! Caddy's `forward_auth` calls, and whose refusals Caddy passes on as they
//! are).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use medforge_core::gate::Decision;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::{ApiError, standalone_problem};
use crate::state::AppState;

/// What an unauthenticated browser gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// 302 to the login page (the built-in proxy: it owns the answer).
    Redirect,
    /// 401 with a page that sends the browser on to the login page: the
    /// gate keeps API.md's status, which Caddy hands to the browser.
    Page,
}

pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

pub fn scheme(state: &AppState) -> &'static str {
    if state.config.cookie_secure { "https" } else { "http" }
}

/// The refusal for `decision` (anything but `Allow`). `uri` is the URL the
/// browser asked for on the session host (for the way back after login).
pub fn refuse(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    decision: &Decision,
    unauthenticated: Unauthenticated,
) -> Response {
    let (error, status, title, text) = match decision {
        Decision::Unauthenticated => (
            ApiError::unauthorized(),
            StatusCode::UNAUTHORIZED,
            "Sign in to open this session",
            "You are not signed in.",
        ),
        Decision::Forbidden { reason } => {
            (ApiError::forbidden(*reason), StatusCode::FORBIDDEN, "Not your session", *reason)
        }
        _ => (
            ApiError::not_found("No running session at this host."),
            StatusCode::NOT_FOUND,
            "No session here",
            "There is no running session at this address: it may have been stopped.",
        ),
    };
    if !wants_html(headers) {
        return standalone_problem(error, uri.path());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let here = format!("{}://{host}{}", scheme(state), uri.path_and_query().map_or("/", |p| p.as_str()));
    // The UI host is the base domain, on this request's port.
    let port = host.rsplit_once(':').map(|(_, p)| format!(":{p}")).unwrap_or_default();
    let login = format!(
        "{}://{}{port}/login?next={}",
        scheme(state),
        state.config.base_domain,
        utf8_percent_encode(&here, NON_ALPHANUMERIC)
    );
    let unauthenticated_browser = matches!(decision, Decision::Unauthenticated);
    if unauthenticated_browser && unauthenticated == Unauthenticated::Redirect {
        let mut r = StatusCode::FOUND.into_response();
        if let Ok(v) = HeaderValue::from_str(&login) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let page = RefusalPage {
        title,
        text,
        refresh: unauthenticated_browser,
        sign_in: if unauthenticated_browser { "Sign in" } else { "Sign in as someone else" },
        home: format!("{}://{}{port}/", scheme(state), state.config.base_domain),
        login,
    };
    crate::ui::render(status, page)
}

/// A session host's refusal for browsers: what happened, and the way to
/// sign in (at once, with `refresh`) and back.
#[derive(askama::Template)]
#[template(path = "refusal.html")]
struct RefusalPage {
    title: &'static str,
    text: &'static str,
    refresh: bool,
    sign_in: &'static str,
    login: String,
    home: String,
}
