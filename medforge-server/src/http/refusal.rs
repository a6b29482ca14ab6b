//! What a refused request for a session host gets: a problem document for
//! API clients; for browsers, a way to sign in that comes back to the
//! session. Shared by the built-in proxy and by the gate endpoint (which
//! Caddy's `forward_auth` calls, and whose refusals Caddy passes on as they
//! are).

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use medforge_core::gate::Refusal;
use medforge_core::host::Host;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::html::{render, wants_html};
use super::problem::Problem;
use crate::config::Config;
use crate::service::Error;

/// What an unauthenticated browser gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// 302 to the login page (the built-in proxy: it owns the answer).
    Redirect,
    /// 401 with a page that sends the browser on to the login page: the
    /// gate keeps docs/api.md's status, which Caddy hands to the browser.
    Page,
}

/// The answer to `refusal`. `uri` is the URL the browser asked for on the
/// session host (for the way back after login).
pub fn refuse(
    config: &Config,
    headers: &HeaderMap,
    uri: &Uri,
    refusal: Refusal,
    unauthenticated: Unauthenticated,
) -> Response {
    let problem = Problem::from(&Error::from(refusal));
    if !wants_html(headers) {
        return problem.standalone(uri.path());
    }
    let (title, text) = match refusal {
        Refusal::Unauthenticated => ("Sign in to open this session", "You are not signed in."),
        Refusal::NotEntitled | Refusal::NotYours => ("Not your session", refusal.reason()),
        Refusal::NotFound => {
            ("No session here", "There is no running session at this address: it may have been stopped.")
        }
    };
    let scheme = config.scheme();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).and_then(|h| h.parse::<Host>().ok());
    let here = format!(
        "{scheme}://{}{}",
        host.as_ref().map_or_else(|| config.base_domain.clone(), Host::to_string),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    // The UI host is the base domain, on this request's port.
    let ui = format!("{scheme}://{}{}", config.base_domain, host.as_ref().map(Host::port_suffix).unwrap_or_default());
    let login = format!("{ui}/login?next={}", utf8_percent_encode(&here, NON_ALPHANUMERIC));
    let unauthenticated_browser = refusal == Refusal::Unauthenticated;
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
        home: format!("{ui}/"),
        login,
    };
    render(problem.status, page)
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
