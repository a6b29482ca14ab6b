//! What a refused request for a session host gets: a problem document for
//! API clients; for browsers, a way to sign in that comes back to the
//! session. Shared by the built-in proxy and by the gate endpoint (which
//! Caddy's `forward_auth` calls, and whose refusals Caddy passes on as they
//! are).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medforge_core::gate::Refusal;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::host::port_suffix;
use super::html::{render, wants_html};
use super::problem::Problem;
use crate::config::Config;
use crate::service::Error;

/// What an unauthenticated browser gets when it cannot simply be
/// redirected (a form's post, an upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// 302 to the way in (the built-in proxy: it owns the answer).
    Redirect,
    /// 401 with a page that sends the browser on to the way in: the gate
    /// keeps docs/api.md's status, which Caddy hands to the browser.
    Page,
}

/// The answer to `refusal` on a session host. `way_in` is the handshake's
/// first step for the URL asked for (`crate::http::session_host::enter_url`),
/// `path` the path asked for.
pub fn refuse(
    config: &Config,
    headers: &HeaderMap,
    way_in: &str,
    path: &str,
    refusal: Refusal,
    unauthenticated: Unauthenticated,
) -> Response {
    let problem = Problem::from(&Error::from(refusal));
    if !wants_html(headers) {
        return problem.standalone(path);
    }
    let (title, text) = match refusal {
        Refusal::Unauthenticated => ("Sign in to open this session", "You are not signed in."),
        Refusal::NotEntitled | Refusal::NotYours => ("Not your session", refusal.reason()),
        Refusal::NotFound => {
            ("No session here", "There is no running session at this address: it may have been stopped.")
        }
    };
    let ui = ui_home(config, headers);
    let unauthenticated_browser = refusal == Refusal::Unauthenticated;
    // Someone signed in who may not enter signs in as someone else, then
    // comes back through the way in.
    let sign_in = if unauthenticated_browser {
        way_in.to_owned()
    } else {
        format!("{ui}login?next={}", utf8_percent_encode(way_in, NON_ALPHANUMERIC))
    };
    if unauthenticated_browser && unauthenticated == Unauthenticated::Redirect {
        let mut r = StatusCode::FOUND.into_response();
        if let Ok(v) = HeaderValue::from_str(&sign_in) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let page = RefusalPage {
        title,
        text,
        refresh: unauthenticated_browser,
        sign_in_text: if unauthenticated_browser { "Sign in" } else { "Sign in as someone else" },
        home: ui,
        sign_in,
    };
    render(problem.status, page)
}

/// A handshake code that was used, expired, or is for another host: a
/// page with the way in again (never taken by itself, so no loop).
pub fn expired_link(way_in: &str) -> Response {
    let page = RefusalPage {
        title: "This link has expired",
        text: "Links into a session work once, for a minute.",
        refresh: false,
        sign_in_text: "Open the session",
        sign_in: way_in.to_owned(),
        home: String::new(),
    };
    render(StatusCode::FORBIDDEN, page)
}

/// The UI's home page, on this request's port.
fn ui_home(config: &Config, headers: &HeaderMap) -> String {
    format!("{}://{}{}/", config.scheme(), config.base_domain, port_suffix(headers))
}

/// A session host's refusal for browsers: what happened, and the way to
/// sign in (at once, with `refresh`) and back.
#[derive(askama::Template)]
#[template(path = "refusal.html")]
struct RefusalPage {
    title: &'static str,
    text: &'static str,
    refresh: bool,
    sign_in_text: &'static str,
    sign_in: String,
    /// The UI's home; empty: no such link.
    home: String,
}
