//! The rules every state-changing request (`POST`, `PUT`, `PATCH`,
//! `DELETE`) passes before any handler (docs/security.md):
//!
//! - **Origin**: absent (scripts), or one of the UI's own hosts
//!   (`Config::is_ui_host`), never a session host and never `null`;
//! - **JSON** on the API: `/api/...` takes `Content-Type: application/json`
//!   (or the login's `X-CSRF-Token`), which a cross-site form cannot send
//!   and a cross-site `fetch` cannot send without a preflight we never
//!   grant.
//!
//! Both refusals are problem documents (403, 415).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medforge_core::host::Host;
use subtle::ConstantTimeEq;

use super::cookie;
use crate::config::Config;
use crate::service::{AppState, Denied, Error, accounts};

pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let changes_state = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if changes_state {
        let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
        if !origin_allowed(origin, &state.config) {
            return Error::Forbidden(Denied::CrossOrigin).into_response();
        }
        if req.uri().path().starts_with("/api/") && !is_json(req.headers()) && !has_csrf_token(&state, req.headers()) {
            return Error::NotJson.into_response();
        }
    }
    next.run(req).await
}

/// No `Origin`, or `http(s)://<a UI host>[:port]` exactly.
pub fn origin_allowed(origin: Option<&str>, config: &Config) -> bool {
    let Some(origin) = origin else { return true };
    let rest = match origin.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => rest,
        _ => return false,
    };
    // An origin is scheme://host[:port] and nothing more: the host parser
    // refuses any path, user or space.
    rest.parse::<Host>().is_ok_and(|host| config.is_ui_host(&host))
}

/// `application/json`, with any parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn has_csrf_token(state: &AppState, headers: &HeaderMap) -> bool {
    let (Some(login), Some(sent)) =
        (cookie::token_from(headers, &state.config), headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))
    else {
        return false;
    };
    bool::from(accounts::csrf_token(state, &login).as_bytes().ct_eq(sent.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_ui_hosts_are_trusted_origins() {
        let config = Config::default();
        for ok in [
            None,
            Some("http://medforge.localhost:8080"),
            Some("https://MedForge.localhost"),
            Some("http://api.medforge.localhost"),
            Some("http://external.medforge.localhost:8080"),
        ] {
            assert!(origin_allowed(ok, &config), "{ok:?}");
        }
        for bad in [
            "http://s-aaaaaaaa.external.medforge.localhost:8080",
            "http://anything.internal.medforge.localhost",
            "http://evil.medforge.localhost",
            "http://medforge.localhost.evil.org",
            "null",
            "http://medforge.localhost/path",
            "ftp://medforge.localhost",
            "https://user@medforge.localhost",
            "https://medforge.localhost:",
            "https://medforge.localhost:80x",
            "https://.medforge.localhost",
            "",
        ] {
            assert!(!origin_allowed(Some(bad), &config), "{bad}");
        }
    }

    #[test]
    fn json_is_the_media_type_with_any_parameters() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        for bad in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert!(!with(bad), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
