//! What a refused request for a session host gets: a problem document for
//! API clients; for browsers, a way to sign in that comes back to the
//! session. Shared by the built-in proxy and by the gate endpoint (which
//! Caddy's `forward_auth` calls, and whose refusals Caddy passes on as they
//! are).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use medforge_core::gate::Decision;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::{ApiError, Finished, standalone_problem};
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
    let home = format!("{}://{}{port}/", scheme(state), state.config.base_domain);
    let (login, home) = (html_escape(&login), html_escape(&home));
    let (refresh, sign_in) = if unauthenticated_browser {
        (format!("<meta http-equiv=\"refresh\" content=\"0; url={login}\">"), "Sign in")
    } else {
        (String::new(), "Sign in as someone else")
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title} · MedForge</title></head>\n<body><main><h1>{title}</h1><p>{text}</p>\
         <p><a href=\"{login}\">{sign_in}</a> · <a href=\"{home}\">Your sessions</a></p></main></body></html>\n"
    );
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    r.extensions_mut().insert(Finished);
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}
